import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

import { generateApiKey, writeTenantsFile } from "@sessiontrack/ingest";

/** Absolute path of the `sessiontrack` binary in this checkout. */
export const SESSIONTRACK_BIN = resolve(
  dirname(fileURLToPath(import.meta.url)),
  "../../../packages/cli/bin/sessiontrack.js",
);

/** A temporary ingest home: data dir, tenants file with one key, capture config. */
export interface IngestHome {
  root: string;
  dataDir: string;
  tenantsFile: string;
  captureConfigFile: string;
  apiKey: string;
  tenant: string;
  remove(): void;
}

/** Creates a fresh {@link IngestHome} under the OS temp dir. */
export function createIngestHome(prefix = "sessiontrack-system-"): IngestHome {
  const root = mkdtempSync(join(tmpdir(), prefix));
  const { key, sha256 } = generateApiKey();
  const tenantsFile = join(root, "tenants.yaml");
  writeTenantsFile(tenantsFile, [
    { name: "acme", keys: [{ id: "bot-key", sha256, roles: ["ingest", "read"] }] },
  ]);
  const captureConfigFile = join(root, "capture.yaml");
  writeFileSync(captureConfigFile, "enabled: true\nsampleRate: 1\nstage: full\n");
  return {
    root,
    dataDir: join(root, "data"),
    tenantsFile,
    captureConfigFile,
    apiKey: key,
    tenant: "acme",
    remove: () => rmSync(root, { recursive: true, force: true }),
  };
}

/** A `sessiontrack ingest serve` child process. */
export interface IngestProcess {
  readonly address: string;
  readonly metricsAddress: string;
  readonly child: ChildProcess;
  /** Sends a signal and waits for the process to exit. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/** Starts ingest as a child process and waits until it logs that it serves. */
export async function startIngestProcess(
  home: IngestHome,
  options: { listen?: string; extraArgs?: string[]; logLevel?: string; env?: Record<string, string> } = {},
): Promise<IngestProcess> {
  const child = spawn(
    process.execPath,
    [
      SESSIONTRACK_BIN,
      "ingest",
      "serve",
      "--data-dir",
      home.dataDir,
      "--tenants",
      home.tenantsFile,
      "--capture-config",
      home.captureConfigFile,
      "--listen",
      options.listen ?? "127.0.0.1:0",
      "--metrics-listen",
      "127.0.0.1:0",
      "--log-level",
      options.logLevel ?? "info",
      ...(options.extraArgs ?? []),
    ],
    { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, ...options.env } },
  );
  const exited = new Promise<number | null>((resolveExit) => child.once("exit", (code) => resolveExit(code)));
  let stderr = "";
  child.stderr?.on("data", (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const ready = await new Promise<{ address: string; metrics: string }>((resolveReady, reject) => {
    const lines = createInterface({ input: child.stdout });
    const timer = setTimeout(() => reject(new Error(`ingest did not start within 20 s\n${stderr}`)), 20_000);
    lines.on("line", (line) => {
      try {
        const entry = JSON.parse(line) as { msg?: string; address?: string; metrics?: string };
        if (entry.msg === "ingest serving" && entry.address !== undefined && entry.metrics !== undefined) {
          clearTimeout(timer);
          resolveReady({ address: entry.address, metrics: entry.metrics });
        }
      } catch {
        // not a log line
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`ingest exited with ${code} before serving\n${stderr}`));
    });
  });
  return {
    address: ready.address,
    metricsAddress: ready.metrics,
    child,
    async stop(signal: NodeJS.Signals = "SIGTERM") {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
}
