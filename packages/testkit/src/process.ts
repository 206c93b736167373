import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from "node:fs";
import { request as httpsRequest } from "node:https";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";

// Safety net for tests that crash before their t.after(): servers never outlive the test
// process, and the temp dirs testkit created are removed when it exits.
const liveChildren = new Set<ChildProcess>();
const ownedDirs = new Set<string>();
let exitHookInstalled = false;

function cleanUpNow(): void {
  for (const child of liveChildren) child.kill("SIGKILL");
  for (const dir of ownedDirs) rmSync(dir, { recursive: true, force: true });
}

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on("exit", cleanUpNow);
  // A signal (Ctrl-C, the test runner's timeout) skips "exit": clean up, then let the
  // signal do what it would have done had we not listened.
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    const onSignal = (): void => {
      cleanUpNow();
      process.removeListener(signal, onSignal);
      if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
    };
    process.on(signal, onSignal);
  }
}

/** A fresh temp dir that is removed when the process exits (or earlier by {@link removeDir}). */
export function makeTempDir(prefix: string): string {
  installExitHook();
  const dir = mkdtempSync(join(tmpdir(), `sessiontrack-${prefix}-`));
  ownedDirs.add(dir);
  return dir;
}

/** Removes a dir now; forgets it if testkit created it. */
export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
  ownedDirs.delete(dir);
}

/** A TCP port on 127.0.0.1 that was free a moment ago (the OS picks it). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => {
        if (address !== null && typeof address === "object") resolve(address.port);
        else reject(new Error("could not read the port the OS picked"));
      });
    });
  });
}

/** `count` distinct free ports (asked one after another, so the OS cannot hand one out twice). */
export async function freePorts(count: number): Promise<number[]> {
  const ports = new Set<number>();
  while (ports.size < count) ports.add(await freePort());
  return [...ports];
}

export interface ServerProcessOptions {
  /** Name used in errors, e.g. "minio". */
  name: string;
  command: string;
  args: readonly string[];
  env?: NodeJS.ProcessEnv;
  /** stdout and stderr are appended here (a file, so a chatty server never blocks on a pipe). */
  logPath: string;
}

/** A long-running server child process whose output goes to a log file. */
export class ServerProcess {
  readonly name: string;
  readonly logPath: string;
  readonly pid: number;
  private readonly child: ChildProcess;
  private readonly exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private exitStatus: { code: number | null; signal: NodeJS.Signals | null } | undefined;

  private constructor(options: ServerProcessOptions) {
    installExitHook();
    this.name = options.name;
    this.logPath = options.logPath;
    const log = openSync(options.logPath, "a");
    try {
      this.child = spawn(options.command, options.args, {
        env: options.env ?? process.env,
        stdio: ["ignore", log, log],
      });
    } finally {
      closeSync(log);
    }
    if (this.child.pid === undefined) throw new Error(`${this.name}: could not start ${options.command}`);
    this.pid = this.child.pid;
    liveChildren.add(this.child);
    // A server someone forgot to stop must not keep the test process alive; the exit hook kills it.
    this.child.unref();
    this.exit = new Promise((resolve) => {
      this.child.once("exit", (code, signal) => {
        liveChildren.delete(this.child);
        this.exitStatus = { code, signal };
        resolve({ code, signal });
      });
    });
  }

  static start(options: ServerProcessOptions): ServerProcess {
    return new ServerProcess(options);
  }

  get running(): boolean {
    return this.exitStatus === undefined;
  }

  /** The last lines of the server's log, for error messages. */
  logTail(lines = 25): string {
    try {
      return readFileSync(this.logPath, "utf8").trimEnd().split("\n").slice(-lines).join("\n");
    } catch {
      return "(no log)";
    }
  }

  /**
   * Polls `probe` until it returns true. Fails with the server's log tail if the process
   * exits first or `timeoutMs` passes (and then stops the process).
   */
  async waitUntil(probe: () => Promise<boolean>, what: string, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    this.child.ref();
    try {
      for (;;) {
        if (!this.running) {
          const status = this.exitStatus;
          throw new Error(
            `${this.name} exited (code ${String(status?.code)}, signal ${String(status?.signal)}) ` +
              `before ${what}; log ${this.logPath}:\n${this.logTail()}`,
          );
        }
        if (await probe().catch(() => false)) return;
        if (Date.now() > deadline) {
          await this.stop();
          throw new Error(
            `${this.name} did not reach ${what} within ${timeoutMs} ms; log ${this.logPath}:\n${this.logTail()}`,
          );
        }
        await sleep(50);
      }
    } finally {
      this.child.unref();
    }
  }

  /** SIGTERM, then SIGKILL after `graceMs`; resolves once the process is gone. Idempotent. */
  async stop(graceMs = 5000): Promise<void> {
    if (!this.running) return;
    this.child.ref();
    this.child.kill("SIGTERM");
    const timer = setTimeout(() => this.child.kill("SIGKILL"), graceMs);
    try {
      await this.exit;
    } finally {
      clearTimeout(timer);
    }
  }

  /** SIGKILL (a crash, not a shutdown); resolves once the process is gone. */
  async kill(): Promise<void> {
    if (!this.running) return;
    this.child.ref();
    this.child.kill("SIGKILL");
    await this.exit;
  }
}

/** What a command printed and how it ended. */
export interface CommandResult {
  /** Exit code; -1 when it was killed by a signal (e.g. the timeout). */
  code: number;
  stdout: string;
  stderr: string;
}

export interface RunCommandOptions {
  env?: NodeJS.ProcessEnv;
  /** Written to the command's stdin (e.g. a manifest for `kubectl apply -f -`). */
  input?: string;
  /** Killed after this long; default 60 s. */
  timeoutMs?: number;
}

/** Runs a command to completion. Never throws for a non-zero exit: callers assert on `code`. */
export async function runCommand(
  command: string,
  args: readonly string[],
  options: RunCommandOptions = {},
): Promise<CommandResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      env: options.env ?? process.env,
      stdio: ["pipe", "pipe", "pipe"],
      timeout: options.timeoutMs ?? 60_000,
      killSignal: "SIGKILL",
    });
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    child.stdout.on("data", (chunk: Buffer) => stdout.push(chunk));
    child.stderr.on("data", (chunk: Buffer) => stderr.push(chunk));
    child.once("error", reject);
    child.once("close", (code) => {
      resolve({
        code: code ?? -1,
        stdout: Buffer.concat(stdout).toString("utf8"),
        stderr: Buffer.concat(stderr).toString("utf8"),
      });
    });
    child.stdin.on("error", () => {
      // The command may exit without reading its input; its exit code tells the story.
    });
    child.stdin.end(options.input ?? "");
  });
}

/** GET over plain HTTP; resolves to the status code. */
export async function httpStatus(url: string, timeoutMs = 2000): Promise<number> {
  const response = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
  await response.arrayBuffer();
  return response.status;
}

/** GET over HTTPS trusting `ca`, with an optional bearer token; resolves to status and body. */
export async function httpsGet(
  url: string,
  options: { ca: string; token?: string; timeoutMs?: number },
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const request = httpsRequest(
      url,
      {
        ca: options.ca,
        headers: options.token === undefined ? {} : { authorization: `Bearer ${options.token}` },
        timeout: options.timeoutMs ?? 2000,
      },
      (response) => {
        const chunks: Buffer[] = [];
        response.on("data", (chunk: Buffer) => chunks.push(chunk));
        response.on("end", () =>
          resolve({ status: response.statusCode ?? 0, body: Buffer.concat(chunks).toString("utf8") }),
        );
        response.on("error", reject);
      },
    );
    request.on("timeout", () => request.destroy(new Error(`GET ${url} timed out`)));
    request.on("error", reject);
    request.end();
  });
}
