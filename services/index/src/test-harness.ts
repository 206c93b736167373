// Test support for the index's service tests: a real server on 127.0.0.1:0 with the
// SQLite backend in a temp dir, keys for two tenants and a service key.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TestContext } from "node:test";

import * as grpc from "@grpc/grpc-js";

import { IndexServiceClient } from "@sessiontrack/proto";
import { createLogger, generateApiKey, writeTenantsFile } from "@sessiontrack/runtime";

import { loadIndexConfig } from "./config.js";
import { startIndexServer, type IndexServer } from "./server.js";

/** A started index service with its keys. */
export interface IndexHarness {
  server: IndexServer;
  dir: string;
  client: IndexServiceClient;
  /** Raw client for sending arbitrary bytes. */
  raw: grpc.Client;
  keys: { acmeRead: string; acmeIngest: string; globexAdmin: string; service: string };
}

/** Starts the index with tenants `acme` (read and ingest keys) and `globex` (admin key). */
export async function startIndexHarness(t: TestContext): Promise<IndexHarness> {
  const dir = mkdtempSync(join(tmpdir(), "sessiontrack-index-test-"));
  const acmeRead = generateApiKey();
  const acmeIngest = generateApiKey();
  const globexAdmin = generateApiKey();
  const service = generateApiKey();
  const tenantsFile = join(dir, "tenants.yaml");
  writeTenantsFile(
    tenantsFile,
    [
      {
        name: "acme",
        keys: [
          { id: "acme-reader", sha256: acmeRead.sha256, roles: ["read"] },
          { id: "acme-writer", sha256: acmeIngest.sha256, roles: ["ingest"] },
        ],
      },
      { name: "globex", keys: [{ id: "globex-admin", sha256: globexAdmin.sha256, roles: ["admin"] }] },
    ],
    [{ id: "shipper", sha256: service.sha256 }],
  );
  const config = loadIndexConfig(
    {
      backend: "sqlite",
      "data-dir": join(dir, "data"),
      tenants: tenantsFile,
      listen: "127.0.0.1:0",
      "metrics-listen": "127.0.0.1:0",
      "shutdown-grace-ms": "2000",
    },
    {},
  );
  const server = await startIndexServer(config, createLogger({ name: "index-test", level: "silent" }));
  const client = new IndexServiceClient(server.address, grpc.credentials.createInsecure());
  const raw = new grpc.Client(server.address, grpc.credentials.createInsecure());
  t.after(async () => {
    client.close();
    raw.close();
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return {
    server,
    dir,
    client,
    raw,
    keys: {
      acmeRead: acmeRead.key,
      acmeIngest: acmeIngest.key,
      globexAdmin: globexAdmin.key,
      service: service.key,
    },
  };
}

/** Metadata carrying `authorization: Bearer <key>`. */
export function bearer(key: string): grpc.Metadata {
  const metadata = new grpc.Metadata();
  metadata.set("authorization", `Bearer ${key}`);
  return metadata;
}

/** Calls a unary method of the generated client as a promise. */
export function call<Request, Response>(
  method: (
    request: Request,
    metadata: grpc.Metadata,
    callback: (error: grpc.ServiceError | null, response: Response) => void,
  ) => unknown,
  request: Request,
  metadata: grpc.Metadata,
): Promise<Response> {
  return new Promise((resolve, reject) => {
    method(request, metadata, (error, response) => (error === null ? resolve(response) : reject(error)));
  });
}

const identity = (bytes: Buffer): Buffer => bytes;

/** Sends raw request bytes to an IndexService method; resolves with the response bytes or the error. */
export function callRaw(
  client: grpc.Client,
  method: "IndexEvents" | "Search" | "GetSession" | "Erase",
  bytes: Buffer,
  metadata: grpc.Metadata,
): Promise<{ error: grpc.ServiceError | null; response?: Buffer }> {
  return new Promise((resolve) => {
    client.makeUnaryRequest(
      `/sessiontrack.v1.IndexService/${method}`,
      identity,
      identity,
      bytes,
      metadata,
      (error, response) => resolve(response === undefined ? { error } : { error, response }),
    );
  });
}
