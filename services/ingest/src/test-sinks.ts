// Test support for the shipper: real gRPC ArchiveService/IndexService servers on
// 127.0.0.1:0 that record what they receive and can be told to fail, then recover, and
// a real ingest shipping to them.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TestContext } from "node:test";

import * as grpc from "@grpc/grpc-js";

import {
  ArchiveServiceService,
  IndexServiceService,
  StoredEvent,
  type ArchiveServiceServer,
  type EraseTarget,
  type IndexServiceServer,
} from "@sessiontrack/proto";
import { createLogger, generateApiKey, TenantDirectory, writeTenantsFile } from "@sessiontrack/runtime";

import { loadIngestConfig } from "./config.js";
import { startIngestServer, type IngestServer } from "./server.js";

/** How a test sink answers deliveries right now. */
export type SinkMode = "ok" | "unavailable" | "invalid";

/** A recording sink server. */
export interface TestSink {
  address: string;
  mode: SinkMode;
  /** Every delivered event, in arrival order, re-encoded exactly as received. */
  received: Buffer[];
  /** Distinct event ids received. */
  eventIds: Set<string>;
  /** Delivery calls answered (any outcome). */
  calls: number;
  erasures: Array<{ tenant: string; target: EraseTarget | undefined; receiptId?: string }>;
  close(): Promise<void>;
}

function fail(code: grpc.status, details: string): grpc.ServiceError {
  const error = new Error(details) as grpc.ServiceError;
  error.code = code;
  error.details = details;
  error.metadata = new grpc.Metadata();
  return error;
}

/** Starts a sink of `kind` that accepts only service keys of `tenants`. */
export async function startTestSink(
  t: TestContext,
  kind: "archive" | "index",
  tenants: TenantDirectory,
): Promise<TestSink> {
  const sink: TestSink = {
    address: "",
    mode: "ok",
    received: [],
    eventIds: new Set(),
    calls: 0,
    erasures: [],
    close: () => Promise.resolve(),
  };
  const check = (call: { metadata: grpc.Metadata }): grpc.ServiceError | null => {
    try {
      tenants.authorizeService(call.metadata.get("authorization")[0]);
    } catch (error) {
      return fail(grpc.status.UNAUTHENTICATED, (error as Error).message);
    }
    sink.calls += 1;
    if (sink.mode === "unavailable") return fail(grpc.status.UNAVAILABLE, "test sink is down");
    if (sink.mode === "invalid") return fail(grpc.status.INVALID_ARGUMENT, "test sink rejects this batch");
    return null;
  };
  const accept = (events: StoredEvent[]): number => {
    for (const event of events) {
      sink.received.push(Buffer.from(StoredEvent.encode(event).finish()));
      sink.eventIds.add(`${event.tenant}/${event.eventId}`);
    }
    return events.length;
  };
  const unimplemented = (_call: unknown, callback: grpc.sendUnaryData<never>): void =>
    callback(fail(grpc.status.UNIMPLEMENTED, "not in the test sink"));
  const server = new grpc.Server();
  if (kind === "archive") {
    const implementation: ArchiveServiceServer = {
      writeBatch: (call, callback) => {
        const error = check(call);
        if (error !== null) return callback(error);
        callback(null, { written: accept(call.request.events), duplicates: 0, objects: 1 });
      },
      erase: (call, callback) => {
        const error = check(call);
        if (error !== null) return callback(error);
        sink.erasures.push({ ...call.request });
        callback(null, {
          sessions: ["s-erased"],
          dataKeysDestroyed: ["dk-1"],
          objectsDeleted: 2,
          eventsErased: 3,
          auditRecord: `audit/${call.request.receiptId}.json`,
        });
      },
      getSession: unimplemented,
      verify: unimplemented,
      scanEvents: (call) => call.destroy(fail(grpc.status.UNIMPLEMENTED, "not in the test sink")),
    };
    server.addService(ArchiveServiceService, implementation);
  } else {
    const implementation: IndexServiceServer = {
      indexEvents: (call, callback) => {
        const error = check(call);
        if (error !== null) return callback(error);
        callback(null, { indexed: accept(call.request.events) });
      },
      erase: (call, callback) => {
        const error = check(call);
        if (error !== null) return callback(error);
        sink.erasures.push({ ...call.request });
        callback(null, { sessions: ["s-erased"], documentsRemoved: 5 });
      },
      search: unimplemented,
      getSession: unimplemented,
    };
    server.addService(IndexServiceService, implementation);
  }
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (error, bound) =>
      error === null ? resolve(bound) : reject(error),
    ),
  );
  sink.address = `127.0.0.1:${port}`;
  let closed: Promise<void> | undefined;
  sink.close = () => (closed ??= new Promise<void>((resolve) => server.tryShutdown(() => resolve())));
  t.after(() => {
    server.forceShutdown();
  });
  return sink;
}

/** Keys, a tenants file with a service key, and two recording sinks. */
export interface ShippingStack {
  dir: string;
  tenantsFile: string;
  serviceKeyFile: string;
  ingestKey: string;
  adminKey: string;
  readKey: string;
  tenants: TenantDirectory;
  archive: TestSink;
  index: TestSink;
}

/** Sets up a {@link ShippingStack} in a temp dir (removed after the test). */
export async function setUpShippingStack(t: TestContext): Promise<ShippingStack> {
  const dir = mkdtempSync(join(tmpdir(), "sessiontrack-shipper-test-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const ingest = generateApiKey();
  const admin = generateApiKey();
  const read = generateApiKey();
  const service = generateApiKey();
  const tenantsFile = join(dir, "tenants.yaml");
  writeTenantsFile(
    tenantsFile,
    [
      {
        name: "acme",
        keys: [
          { id: "writer", sha256: ingest.sha256, roles: ["ingest"] },
          { id: "admin", sha256: admin.sha256, roles: ["admin"] },
          { id: "reader", sha256: read.sha256, roles: ["read"] },
        ],
      },
    ],
    [{ id: "ingest-shipper", sha256: service.sha256 }],
  );
  const serviceKeyFile = join(dir, "service.key");
  writeFileSync(serviceKeyFile, `${service.key}\n`);
  const tenants = TenantDirectory.load(tenantsFile);
  return {
    dir,
    tenantsFile,
    serviceKeyFile,
    ingestKey: ingest.key,
    adminKey: admin.key,
    readKey: read.key,
    tenants,
    archive: await startTestSink(t, "archive", tenants),
    index: await startTestSink(t, "index", tenants),
  };
}

/** Starts ingest shipping to the stack's sinks; `flags` override or add settings. */
export async function startShippingIngest(
  t: TestContext,
  stack: ShippingStack,
  flags: Record<string, string> = {},
): Promise<{ server: IngestServer; client: grpc.Client }> {
  const config = loadIngestConfig(
    {
      "data-dir": join(stack.dir, "data"),
      tenants: stack.tenantsFile,
      listen: "127.0.0.1:0",
      "metrics-listen": "127.0.0.1:0",
      "shutdown-grace-ms": "2000",
      "archive-url": `grpc://${stack.archive.address}`,
      "index-url": stack.index.address,
      "service-key-file": stack.serviceKeyFile,
      ...flags,
    },
    {},
  );
  const server = await startIngestServer(config, createLogger({ name: "shipper-test", level: "silent" }));
  const client = new grpc.Client(server.address, grpc.credentials.createInsecure());
  t.after(async () => {
    client.close();
    await server.close();
  });
  return { server, client };
}

/** Polls `condition` every 10 ms; fails the test after `limitMs`, naming `what`. */
export async function waitUntil(what: string, condition: () => boolean, limitMs = 10_000): Promise<void> {
  const started = Date.now();
  while (!condition()) {
    if (Date.now() - started > limitMs) assert.fail(`timed out after ${limitMs} ms waiting until ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
