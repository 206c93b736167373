// How the client commands (search, session get, erase, index rebuild) reach the services.
import { existsSync, readFileSync } from "node:fs";

import * as grpc from "@grpc/grpc-js";

import { UsageError } from "./args.js";

/** Default addresses of the three services (see DESIGN.md, "Ports"). */
export const DEFAULT_URLS = {
  ingest: "127.0.0.1:7070",
  index: "127.0.0.1:7071",
  archive: "127.0.0.1:7072",
} as const;

/** A failed call to a service, printed as `sessiontrack: <CODE>: <details>` with exit code 1. */
export class RemoteCallError extends Error {
  constructor(
    message: string,
    readonly code: string,
  ) {
    super(message);
    this.name = "RemoteCallError";
  }
}

/** Where a service is and how to dial it, from a `--x-url` value. */
export interface Target {
  address: string;
  credentials: grpc.ChannelCredentials;
}

/** Parses `host:port`, `grpc://host:port` or `grpcs://host:port`; a bad value is a usage error naming `flag`. */
export function parseTarget(value: string, flag: string, usage: string): Target {
  const match = /^(?:(grpcs?|https?):\/\/)?(\[[0-9a-fA-F:.]+\]|[^:/[\]\s]+):(\d{1,5})\/?$/.exec(value.trim());
  if (match === null || Number(match[3]) > 65535 || Number(match[3]) === 0) {
    throw new UsageError(`--${flag}: "${value}" is not an address like 127.0.0.1:7071`, usage);
  }
  const tls = match[1] === "grpcs" || match[1] === "https";
  return {
    address: `${match[2]}:${match[3]}`,
    credentials: tls ? grpc.credentials.createSsl() : grpc.credentials.createInsecure(),
  };
}

/**
 * The key a command presents: from `--<flag>` (a file holding the key), else the
 * environment variable holding the key itself, else the one naming a file.
 */
export function readKey(
  options: { file: string | undefined; flag: string; envKey: string; envFile: string },
  usage: string,
): string {
  let key: string | undefined;
  let source: string;
  const fromFile = (path: string, what: string): string => {
    if (!existsSync(path)) throw new UsageError(`${what}: ${path} does not exist`, usage);
    return readFileSync(path, "utf8").trim();
  };
  if (options.file !== undefined) {
    source = `--${options.flag}`;
    key = fromFile(options.file, source);
  } else if ((process.env[options.envKey] ?? "") !== "") {
    source = options.envKey;
    key = process.env[options.envKey]!.trim();
  } else if ((process.env[options.envFile] ?? "") !== "") {
    source = options.envFile;
    key = fromFile(process.env[options.envFile]!, source);
  } else {
    throw new UsageError(
      `--${options.flag} is required (or set ${options.envKey} to the key, or ${options.envFile} to a file holding it)`,
      usage,
    );
  }
  if (!/^[A-Za-z0-9_\-.~+/=]{16,512}$/.test(key)) {
    throw new UsageError(`${source}: does not hold a key (expected one line like st_…)`, usage);
  }
  return key;
}

/** The tenant API key of a read/erase command. */
export function readApiKey(file: string | undefined, usage: string): string {
  return readKey(
    { file, flag: "api-key-file", envKey: "SESSIONTRACK_API_KEY", envFile: "SESSIONTRACK_API_KEY_FILE" },
    usage,
  );
}

/** `authorization: Bearer <key>` metadata. */
export function bearer(key: string): grpc.Metadata {
  const metadata = new grpc.Metadata();
  metadata.set("authorization", `Bearer ${key}`);
  return metadata;
}

/** Client options for the CLI: large messages (whole transcripts), fail fast when nothing listens. */
export const CLIENT_OPTIONS: Partial<grpc.ClientOptions> = {
  "grpc.max_receive_message_length": 256 * 1024 * 1024,
  "grpc.max_send_message_length": 256 * 1024 * 1024,
};

/** Turns a failed call into a RemoteCallError that names the service and what to check. */
export function remoteError(service: string, address: string, error: unknown): RemoteCallError {
  const code = (error as { code?: number }).code;
  const details = (error as { details?: string }).details ?? (error as Error).message;
  const name = code === undefined ? "ERROR" : (grpc.status[code] ?? String(code));
  if (code === grpc.status.UNAVAILABLE && /connect|ECONNREFUSED|No connection/i.test(details)) {
    return new RemoteCallError(`cannot reach ${service} at ${address} (${details}); is it running?`, name);
  }
  return new RemoteCallError(`${service} at ${address}: ${details}`, name);
}

/** A unary call as a promise, with a deadline. */
export function call<Response>(
  service: string,
  address: string,
  start: (
    metadata: grpc.Metadata,
    options: Partial<grpc.CallOptions>,
    callback: (error: grpc.ServiceError | null, response: Response) => void,
  ) => grpc.ClientUnaryCall,
  metadata: grpc.Metadata,
  timeoutMs = 60_000,
): Promise<Response> {
  return new Promise((resolve, reject) => {
    start(metadata, { deadline: Date.now() + timeoutMs }, (error, response) => {
      if (error === null) resolve(response);
      else reject(remoteError(service, address, error));
    });
  });
}
