import { randomBytes } from "node:crypto";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { ServerProcess, freePort, httpStatus, makeTempDir, removeDir } from "./process.js";
import { toolPath } from "./tools.js";

export interface StartMinioOptions {
  /** Where MinIO keeps its objects; default a fresh temp dir. */
  dataDir?: string;
  /** Port on 127.0.0.1; default a free one. */
  port?: number;
  /** Root credentials; default random. */
  accessKey?: string;
  secretKey?: string;
  /**
   * Whether {@link MinioServer.cleanup} (and process exit) deletes `dataDir`. Default: true
   * when testkit created the dir, false for a dir the caller passed in.
   */
  removeDataDir?: boolean;
  /** How long to wait for /minio/health/live and /ready; default 30 s. */
  startTimeoutMs?: number;
}

/** A real MinIO server on 127.0.0.1, started from the build of `make tools`. */
export interface MinioServer {
  /** `http://127.0.0.1:PORT`, the S3 endpoint. */
  readonly endpoint: string;
  readonly host: string;
  readonly port: number;
  readonly accessKey: string;
  readonly secretKey: string;
  readonly dataDir: string;
  /** MinIO's stdout and stderr, appended across restarts. */
  readonly logPath: string;
  readonly running: boolean;
  /** Shuts MinIO down (SIGTERM, then SIGKILL after 5 s). Keeps the data. Idempotent. */
  stop(): Promise<void>;
  /** Kills MinIO with SIGKILL, like a crash. Keeps the data. */
  kill(): Promise<void>;
  /** Starts it again on the same port and data dir; resolves once it is healthy. */
  start(): Promise<void>;
  /** {@link stop}, then deletes the data dir if `removeDataDir` says so. */
  cleanup(): Promise<void>;
}

/**
 * Starts a real MinIO server (single drive, console off) and resolves once
 * /minio/health/live and /minio/health/ready answer 200. The caller stops it:
 * `t.after(() => minio.cleanup())` (or `stop()`; testkit's own temp dirs go at exit anyway).
 */
export async function startMinio(options: StartMinioOptions = {}): Promise<MinioServer> {
  const binary = toolPath("minio");
  const workDir = makeTempDir("minio");
  const dataDir = options.dataDir ?? join(workDir, "data");
  const removeData = options.removeDataDir ?? options.dataDir === undefined;
  mkdirSync(dataDir, { recursive: true });
  const certsDir = join(workDir, "certs");
  mkdirSync(certsDir, { recursive: true });
  const logPath = join(workDir, "minio.log");
  const host = "127.0.0.1";
  const port = options.port ?? (await freePort());
  const accessKey = options.accessKey ?? `testkit${randomBytes(6).toString("hex")}`;
  const secretKey = options.secretKey ?? randomBytes(18).toString("base64url");
  const endpoint = `http://${host}:${port}`;
  const timeoutMs = options.startTimeoutMs ?? 30_000;
  let process_: ServerProcess | undefined;

  const start = async (): Promise<void> => {
    if (process_?.running === true) return;
    let consolePort = await freePort();
    while (consolePort === port) consolePort = await freePort();
    const server = ServerProcess.start({
      name: "minio",
      command: binary,
      args: [
        "server",
        dataDir,
        "--address",
        `${host}:${port}`,
        "--console-address",
        `${host}:${consolePort}`,
        "--certs-dir",
        certsDir,
        "--quiet",
      ],
      env: {
        PATH: process.env["PATH"],
        HOME: workDir,
        MINIO_ROOT_USER: accessKey,
        MINIO_ROOT_PASSWORD: secretKey,
        MINIO_BROWSER: "off",
        MINIO_UPDATE: "off",
        // Allows a data dir on the root disk, as every test's temp dir is.
        MINIO_CI_CD: "on",
      },
      logPath,
    });
    process_ = server;
    await server.waitUntil(
      async () =>
        (await httpStatus(`${endpoint}/minio/health/live`)) === 200 &&
        (await httpStatus(`${endpoint}/minio/health/ready`)) === 200,
      `health (${endpoint}/minio/health/live)`,
      timeoutMs,
    );
  };

  const stop = async (): Promise<void> => {
    await process_?.stop();
  };

  await start();
  return {
    endpoint,
    host,
    port,
    accessKey,
    secretKey,
    dataDir,
    logPath,
    get running() {
      return process_?.running === true;
    },
    stop,
    async kill() {
      await process_?.kill();
    },
    start,
    async cleanup() {
      await stop();
      if (removeData) removeDir(dataDir);
      removeDir(workDir);
    },
  };
}
