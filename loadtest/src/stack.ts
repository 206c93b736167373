// Starts the real SessionTrack processes the load test runs against (`sessiontrack <service>
// serve` children on loopback ports with temp dirs) and the two reference bots.
import { generateApiKey, writeTenantsFile } from "@sessiontrack/runtime";
import { startMinio, type MinioServer } from "@sessiontrack/testkit";
import { randomBytes } from "node:crypto";
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";

import { trackChild } from "./children.js";
import { minioAvailable } from "./config.js";
import { createServer } from "node:net";
import { dirname, join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

const HERE = dirname(fileURLToPath(import.meta.url));
/** Root of the repository checkout. */
export const REPO_ROOT = resolve(HERE, "../..");
/** The `sessiontrack` command of this checkout. */
export const SESSIONTRACK_BIN = join(REPO_ROOT, "packages/cli/bin/sessiontrack.js");
/** The compiled reference bot. */
export const BOT_MAIN = join(HERE, "bot/main.js");

/** A child process that logged a JSON line announcing its address. */
export interface ServedProcess {
  readonly name: string;
  readonly address: string;
  /** The whole JSON line it announced itself with. */
  readonly announced: Record<string, unknown>;
  readonly child: ChildProcess;
  /** Sends `signal` (default SIGTERM) and resolves with the exit code once it exited. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/** Resolves with a free loopback TCP port (bound then released; the caller binds it next). */
export function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address !== null ? address.port : 0;
      server.close(() => resolvePort(port));
    });
  });
}

/**
 * Spawns `node args…` and waits (up to 30 s) for a JSON stdout line whose `msg` matches
 * `ready` and that carries an `address`. Stderr and the log are kept in `logFile`.
 */
export async function spawnServed(
  name: string,
  args: readonly string[],
  ready: RegExp,
  logFile: string,
): Promise<ServedProcess> {
  mkdirSync(dirname(logFile), { recursive: true });
  const child = trackChild(spawn(process.execPath, args, { stdio: ["ignore", "pipe", "pipe"] }));
  const exited = new Promise<number | null>((resolveExit) => child.once("exit", (code) => resolveExit(code)));
  const log: string[] = [];
  const flushLog = (): void => writeFileSync(logFile, log.join(""), { flag: "a" });
  child.stderr?.on("data", (chunk: Buffer) => log.push(chunk.toString()));
  const lines = createInterface({ input: child.stdout });
  const announced = await new Promise<Record<string, unknown>>((resolveReady, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      flushLog();
      reject(new Error(`${name} did not announce itself within 30 s; log in ${logFile}`));
    }, 30_000);
    lines.on("line", (line) => {
      log.push(`${line}\n`);
      if (log.length > 5000) log.splice(0, 2500);
      try {
        const entry = JSON.parse(line) as Record<string, unknown>;
        if (
          typeof entry["msg"] === "string" &&
          ready.test(entry["msg"]) &&
          typeof entry["address"] === "string"
        ) {
          clearTimeout(timer);
          resolveReady(entry);
        }
      } catch {
        // not a JSON log line
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      flushLog();
      reject(
        new Error(
          `${name} exited with ${String(code)} before serving; log in ${logFile}:\n${log.join("").slice(-2000)}`,
        ),
      );
    });
  });
  void exited.then(flushLog);
  return {
    name,
    address: announced["address"] as string,
    announced,
    child,
    async stop(signal: NodeJS.Signals = "SIGTERM") {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      const timer = setTimeout(() => child.kill("SIGKILL"), 20_000);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
  };
}

/** The files one SessionTrack stack shares: tenants with a bot key and a service key. */
export interface StackHome {
  root: string;
  tenantsFile: string;
  captureConfigFile: string;
  apiKeyFile: string;
  apiKey: string;
  serviceKey: string;
  tenant: string;
}

/** Writes tenants (one ingest+read key for the bots, one service key) and a capture config. */
export function createStackHome(root: string): StackHome {
  mkdirSync(root, { recursive: true });
  const bot = generateApiKey();
  const service = generateApiKey();
  const tenantsFile = join(root, "tenants.json");
  writeTenantsFile(
    tenantsFile,
    [{ name: "acme", keys: [{ id: "loadtest-bot", sha256: bot.sha256, roles: ["ingest", "read"] }] }],
    [{ id: "loadtest-shipper", sha256: service.sha256 }],
  );
  const captureConfigFile = join(root, "capture.yaml");
  writeFileSync(captureConfigFile, "enabled: true\nsampleRate: 1\nstage: full\n");
  const apiKeyFile = join(root, "bot.key");
  writeFileSync(apiKeyFile, `${bot.key}\n`, { mode: 0o600 });
  return {
    root,
    tenantsFile,
    captureConfigFile,
    apiKeyFile,
    apiKey: bot.key,
    serviceKey: service.key,
    tenant: "acme",
  };
}

/** Whether this checkout's CLI has `sessiontrack <service> serve`. */
export function cliHasServe(service: "archive" | "index"): boolean {
  return existsSync(join(REPO_ROOT, `packages/cli/dist/commands/${service}-serve.js`));
}

/** The sinks the shipper feeds, as far as this checkout has them, and ingest's flags for them. */
export interface Sinks {
  index: ServedProcess | undefined;
  archive: ServedProcess | undefined;
  minio: MinioServer | undefined;
  processes: ServedProcess[];
  /** `--index-url`, `--archive-url`, `--service-key-file` for ingest (empty: no shipping). */
  sinkArgs: string[];
}

/**
 * Starts the index (SQLite FTS5, the embedded default) and the archive (on real MinIO when
 * `make tools` built it, else a local directory) when this checkout's CLI serves them.
 */
export async function startSinks(options: {
  home: StackHome;
  workDir: string;
  logs: string;
  log: (line: string) => void;
}): Promise<Sinks> {
  const processes: ServedProcess[] = [];
  let minio: MinioServer | undefined;
  try {
    return await startSinksInto(processes, (server) => (minio = server), options);
  } catch (err) {
    await Promise.all(processes.map((p) => p.stop("SIGKILL")));
    await minio?.cleanup();
    throw err;
  }
}

async function startSinksInto(
  processes: ServedProcess[],
  onMinio: (server: MinioServer) => void,
  options: { home: StackHome; workDir: string; logs: string; log: (line: string) => void },
): Promise<Sinks> {
  const { home, workDir, logs, log } = options;
  let minio: MinioServer | undefined;
  let index: ServedProcess | undefined;
  const sinkArgs: string[] = [];
  if (cliHasServe("index")) {
    index = await spawnServed(
      "index",
      [
        SESSIONTRACK_BIN,
        "index",
        "serve",
        "--tenants",
        home.tenantsFile,
        "--data-dir",
        join(workDir, "index-data"),
        "--listen",
        "127.0.0.1:0",
        "--metrics-listen",
        "127.0.0.1:0",
      ],
      /^index serving$/,
      join(logs, "index.log"),
    );
    processes.push(index);
    sinkArgs.push("--index-url", index.address);
    log(`loadtest: index at ${index.address}`);
  }
  // The archive when this checkout's CLI can serve it: on real MinIO (S3) when `make tools`
  // built it, so the MinIO-down mode can run, else on a local directory.
  let archive: ServedProcess | undefined;
  if (cliHasServe("archive")) {
    const kekDir = join(home.root, "keks");
    mkdirSync(kekDir, { mode: 0o700 });
    writeFileSync(join(kekDir, home.tenant), randomBytes(32).toString("hex"), { mode: 0o600 });
    let store = ["--data-dir", join(workDir, "archive-data")];
    if (minioAvailable()) {
      minio = await startMinio();
      onMinio(minio);
      store = [
        "--store",
        "s3",
        "--s3-endpoint",
        minio.endpoint,
        // "=" joins each key to its flag: a generated key may begin with "-",
        // which the CLI would otherwise refuse as an ambiguous argument.
        `--s3-access-key=${minio.accessKey}`,
        `--s3-secret-key=${minio.secretKey}`,
        "--s3-bucket",
        "sessiontrack-loadtest",
      ];
      log(`loadtest: MinIO at ${minio.endpoint}`);
    }
    archive = await spawnServed(
      "archive",
      [
        SESSIONTRACK_BIN,
        "archive",
        "serve",
        "--tenants",
        home.tenantsFile,
        "--kek-dir",
        kekDir,
        ...store,
        "--listen",
        "127.0.0.1:0",
        "--metrics-listen",
        "127.0.0.1:0",
      ],
      /^archive serving$/,
      join(logs, "archive.log"),
    );
    processes.push(archive);
    sinkArgs.push("--archive-url", archive.address);
    log(`loadtest: archive at ${archive.address}`);
  }
  if (sinkArgs.length > 0) {
    const serviceKeyFile = join(home.root, "service.key");
    writeFileSync(serviceKeyFile, `${home.serviceKey}\n`, { mode: 0o600 });
    sinkArgs.push("--service-key-file", serviceKeyFile);
  }
  return { index, archive, minio, processes, sinkArgs };
}
