// The whole pipeline as real child processes: `sessiontrack index serve`, `archive serve`
// and `ingest serve` (shipping to both), with two tenants, their keys and KEKs in a temp dir.
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";

import * as grpc from "@grpc/grpc-js";

import { generateApiKey, writeTenantsFile } from "@sessiontrack/ingest";
import {
  ArchiveServiceClient,
  IndexServiceClient,
  SearchRequest,
  type ArchiveServiceGetSessionResponse,
  type GetSessionResponse,
  type SearchResponse,
  type StoredEvent,
  type VerifyResponse,
} from "@sessiontrack/proto";

import { SESSIONTRACK_BIN } from "./ingest-process.js";
import { sleep } from "./wal-contents.js";

/** Keys of one tenant. */
export interface TenantKeys {
  ingest: string;
  read: string;
  admin: string;
}

/** A temp dir holding the tenants file (tenants acme and globex + a service key), KEKs and data dirs. */
export interface StackHome {
  root: string;
  tenantsFile: string;
  kekDir: string;
  serviceKeyFile: string;
  captureConfigFile: string;
  ingestDataDir: string;
  indexDataDir: string;
  archiveDataDir: string;
  keys: { acme: TenantKeys; globex: TenantKeys };
  /** Writes `key` to a file under the home and returns its path (for --api-key-file). */
  keyFile(name: string, key: string): string;
  remove(): void;
}

/** Creates a fresh {@link StackHome}. */
export function createStackHome(prefix = "sessiontrack-stack-"): StackHome {
  const root = mkdtempSync(join(tmpdir(), prefix));
  const tenants = ["acme", "globex"] as const;
  const keys = {} as StackHome["keys"];
  const entries = tenants.map((name) => {
    const ingest = generateApiKey();
    const read = generateApiKey();
    const admin = generateApiKey();
    keys[name] = { ingest: ingest.key, read: read.key, admin: admin.key };
    return {
      name,
      keys: [
        { id: `${name}-bot`, sha256: ingest.sha256, roles: ["ingest" as const] },
        { id: `${name}-read`, sha256: read.sha256, roles: ["read" as const] },
        { id: `${name}-admin`, sha256: admin.sha256, roles: ["read" as const, "admin" as const] },
      ],
    };
  });
  const service = generateApiKey();
  const tenantsFile = join(root, "tenants.json");
  writeTenantsFile(tenantsFile, entries, [{ id: "shipper", sha256: service.sha256 }]);
  const kekDir = join(root, "keks");
  mkdirSync(kekDir);
  for (const tenant of tenants) writeFileSync(join(kekDir, tenant), randomBytes(32).toString("hex"));
  const serviceKeyFile = join(root, "service.key");
  writeFileSync(serviceKeyFile, service.key);
  const captureConfigFile = join(root, "capture.yaml");
  writeFileSync(captureConfigFile, "enabled: true\nsampleRate: 1\nstage: full\n");
  return {
    root,
    tenantsFile,
    kekDir,
    serviceKeyFile,
    captureConfigFile,
    ingestDataDir: join(root, "ingest"),
    indexDataDir: join(root, "index"),
    archiveDataDir: join(root, "archive"),
    keys,
    keyFile(name, key) {
      const path = join(root, `${name}.key`);
      writeFileSync(path, key);
      return path;
    },
    remove: () => rmSync(root, { recursive: true, force: true }),
  };
}

/** A `sessiontrack <service> serve` child process. */
export interface ServiceProcess {
  readonly address: string;
  readonly metricsAddress: string;
  readonly child: ChildProcess;
  /** Sends a signal and waits for the process to exit. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/** Starts `sessiontrack <args>` and waits for its "<name> serving" log line. */
export async function startServiceProcess(name: string, args: string[]): Promise<ServiceProcess> {
  const child = spawn(process.execPath, [SESSIONTRACK_BIN, ...args], { stdio: ["ignore", "pipe", "pipe"] });
  const exited = new Promise<number | null>((resolveExit) => child.once("exit", (code) => resolveExit(code)));
  let output = "";
  child.stderr?.on("data", (chunk: Buffer) => {
    output += chunk.toString();
  });
  const ready = await new Promise<{ address: string; metrics: string }>((resolveReady, reject) => {
    const lines = createInterface({ input: child.stdout });
    const timer = setTimeout(() => reject(new Error(`${name} did not start within 20 s\n${output}`)), 20_000);
    lines.on("line", (line) => {
      if (output.length < 20_000) output += `${line}\n`;
      try {
        const entry = JSON.parse(line) as { msg?: string; address?: string; metrics?: string };
        if (entry.msg === `${name} serving` && entry.address !== undefined && entry.metrics !== undefined) {
          clearTimeout(timer);
          resolveReady({ address: entry.address, metrics: entry.metrics });
        }
      } catch {
        // not a log line
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`${name} exited with ${code} before serving\n${output}`));
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

/** S3 settings for an archive on MinIO. */
export interface S3Target {
  endpoint: string;
  accessKey: string;
  secretKey: string;
  bucket?: string;
}

export function startIndex(home: StackHome, listen = "127.0.0.1:0"): Promise<ServiceProcess> {
  return startServiceProcess("index", [
    "index",
    "serve",
    "--tenants",
    home.tenantsFile,
    "--data-dir",
    home.indexDataDir,
    "--listen",
    listen,
    "--metrics-listen",
    "127.0.0.1:0",
    "--log-level",
    "info",
  ]);
}

export function startArchive(home: StackHome, options: { listen?: string; s3?: S3Target } = {}) {
  const store =
    options.s3 === undefined
      ? ["--data-dir", home.archiveDataDir]
      : [
          "--store",
          "s3",
          "--s3-endpoint",
          options.s3.endpoint,
          // "=" joins each key to its flag: a generated key may begin with "-",
          // which the CLI would otherwise refuse as an ambiguous argument.
          `--s3-access-key=${options.s3.accessKey}`,
          `--s3-secret-key=${options.s3.secretKey}`,
          "--s3-bucket",
          options.s3.bucket ?? "sessiontrack-test",
        ];
  return startServiceProcess("archive", [
    "archive",
    "serve",
    "--tenants",
    home.tenantsFile,
    "--kek-dir",
    home.kekDir,
    ...store,
    "--listen",
    options.listen ?? "127.0.0.1:0",
    "--metrics-listen",
    "127.0.0.1:0",
    "--log-level",
    "info",
  ]);
}

export function startShippingIngest(
  home: StackHome,
  sinks: { archive: string; index: string },
  extraArgs: string[] = [],
): Promise<ServiceProcess> {
  return startServiceProcess("ingest", [
    "ingest",
    "serve",
    "--data-dir",
    home.ingestDataDir,
    "--tenants",
    home.tenantsFile,
    "--capture-config",
    home.captureConfigFile,
    "--listen",
    "127.0.0.1:0",
    "--metrics-listen",
    "127.0.0.1:0",
    "--archive-url",
    sinks.archive,
    "--index-url",
    sinks.index,
    "--service-key-file",
    home.serviceKeyFile,
    "--log-level",
    "info",
    ...extraArgs,
  ]);
}

/** The three services, started index and archive first. */
export interface Stack {
  index: ServiceProcess;
  archive: ServiceProcess;
  ingest: ServiceProcess;
  stop(): Promise<void>;
}

export async function startStack(home: StackHome, options: { s3?: S3Target } = {}): Promise<Stack> {
  const index = await startIndex(home);
  const archive = await startArchive(home, options.s3 === undefined ? {} : { s3: options.s3 });
  const ingest = await startShippingIngest(home, { archive: archive.address, index: index.address });
  const stack: Stack = {
    index,
    archive,
    ingest,
    async stop() {
      await stack.ingest.stop();
      await Promise.all([stack.index.stop(), stack.archive.stop()]);
    },
  };
  return stack;
}

function bearer(key: string): grpc.Metadata {
  const metadata = new grpc.Metadata();
  metadata.set("authorization", `Bearer ${key}`);
  return metadata;
}

function unary<Response>(
  start: (
    metadata: grpc.Metadata,
    options: Partial<grpc.CallOptions>,
    callback: (error: grpc.ServiceError | null, response: Response) => void,
  ) => unknown,
  key: string,
): Promise<Response> {
  return new Promise((resolve, reject) => {
    start(bearer(key), { deadline: Date.now() + 20_000 }, (error, response) =>
      error === null ? resolve(response) : reject(error),
    );
  });
}

/** Read-side calls against a running stack, with a given key. */
export class StackReader {
  private readonly index: IndexServiceClient;
  private readonly archive: ArchiveServiceClient;

  constructor(addresses: { index: string; archive: string }) {
    const insecure = grpc.credentials.createInsecure();
    this.index = new IndexServiceClient(addresses.index, insecure);
    this.archive = new ArchiveServiceClient(addresses.archive, insecure);
  }

  search(key: string, request: Partial<SearchRequest>): Promise<SearchResponse> {
    return unary<SearchResponse>(
      (metadata, options, callback) =>
        this.index.search(SearchRequest.fromPartial(request), metadata, options, callback),
      key,
    );
  }

  async indexSession(key: string, sessionId: string): Promise<StoredEvent[]> {
    const response = await unary<GetSessionResponse>(
      (metadata, options, callback) => this.index.getSession({ sessionId }, metadata, options, callback),
      key,
    );
    return response.events;
  }

  async archiveSession(key: string, sessionId: string): Promise<StoredEvent[]> {
    const response = await unary<ArchiveServiceGetSessionResponse>(
      (metadata, options, callback) => this.archive.getSession({ sessionId }, metadata, options, callback),
      key,
    );
    return response.events;
  }

  verify(key: string, sessionId = ""): Promise<VerifyResponse> {
    return unary<VerifyResponse>(
      (metadata, options, callback) => this.archive.verify({ sessionId }, metadata, options, callback),
      key,
    );
  }

  close(): void {
    this.index.close();
    this.archive.close();
  }
}

/** Polls `probe` every 20 ms until it returns true; false after `limitMs`. */
export async function eventually(probe: () => Promise<boolean>, limitMs: number): Promise<boolean> {
  const started = Date.now();
  for (;;) {
    try {
      if (await probe()) return true;
    } catch {
      // a sink restarting: try again
    }
    if (Date.now() - started > limitMs) return false;
    await sleep(20);
  }
}

/** A Prometheus gauge/counter value from a /metrics page (first series matching the labels). */
export async function metricValue(metricsAddress: string, name: string, labels: string): Promise<number> {
  const text = await (await fetch(`http://${metricsAddress}/metrics`)).text();
  const escaped = labels.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  const match = new RegExp(`^${name}\\{${escaped}\\} (\\S+)$`, "m").exec(text);
  return match === null ? Number.NaN : Number(match[1]);
}
