// Test support for ingest's service tests: a real server on 127.0.0.1:0 with a real
// WAL in a temp dir, and a raw client that can send arbitrary bytes.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TestContext } from "node:test";

import * as grpc from "@grpc/grpc-js";

import { BinaryWriter, Event, Role } from "@sessiontrack/proto";
import { createLogger, generateApiKey, writeTenantsFile } from "@sessiontrack/runtime";

import { loadIngestConfig } from "./config.js";
import { startIngestServer, type IngestServer } from "./server.js";

/** A started ingest with its keys and home directory. */
export interface Harness {
  server: IngestServer;
  dir: string;
  ingestKey: string;
  readKey: string;
  captureConfigFile: string;
  client: grpc.Client;
}

/** Starts ingest with an `acme` tenant holding an ingest key and a read-only key. */
export async function startHarness(t: TestContext, flags: Record<string, string> = {}): Promise<Harness> {
  const dir = mkdtempSync(join(tmpdir(), "sessiontrack-ingest-test-"));
  const ingest = generateApiKey();
  const read = generateApiKey();
  const tenantsFile = join(dir, "tenants.yaml");
  writeTenantsFile(tenantsFile, [
    {
      name: "acme",
      keys: [
        { id: "writer", sha256: ingest.sha256, roles: ["ingest"] },
        { id: "reader", sha256: read.sha256, roles: ["read"] },
      ],
    },
  ]);
  const captureConfigFile = join(dir, "capture.yaml");
  writeFileSync(captureConfigFile, "enabled: true\nsampleRate: 1\n");
  const config = loadIngestConfig(
    {
      "data-dir": join(dir, "data"),
      tenants: tenantsFile,
      "capture-config": captureConfigFile,
      listen: "127.0.0.1:0",
      "metrics-listen": "127.0.0.1:0",
      "shutdown-grace-ms": "2000",
      ...flags,
    },
    {},
  );
  const server = await startIngestServer(config, createLogger({ name: "ingest-test", level: "silent" }));
  const client = new grpc.Client(server.address, grpc.credentials.createInsecure());
  t.after(async () => {
    client.close();
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return { server, dir, ingestKey: ingest.key, readKey: read.key, captureConfigFile, client };
}

/** Metadata carrying `authorization: <value>`. */
export function auth(value: string | undefined): grpc.Metadata {
  const metadata = new grpc.Metadata();
  if (value !== undefined) metadata.set("authorization", value);
  return metadata;
}

let counter = 0;

/** A new valid UUIDv7-shaped event id. */
export function newEventId(): string {
  counter += 1;
  return `01934b7e-0000-7000-8000-${counter.toString(16).padStart(12, "0")}`;
}

/** A valid user-message event, with overrides. */
export function validEvent(overrides: Partial<Event> = {}): Event {
  return Event.fromPartial({
    eventId: newEventId(),
    sessionId: "session-1",
    seq: 1,
    time: new Date(),
    botId: "support-bot",
    userId: "user-1",
    payload: {
      $case: "message",
      value: {
        turnId: "turn-1",
        role: Role.ROLE_USER,
        parts: [{ kind: { $case: "text", value: { text: "Where is my order?" } } }],
      },
    },
    ...overrides,
  });
}

/** Encodes an event. */
export function encodeEvent(event: Event): Buffer {
  return Buffer.from(Event.encode(event).finish());
}

/** Encodes events as AppendRequest (field 1) or StreamRequest (batch_seq 1, field 2) bytes. */
export function encodeBatch(events: readonly Uint8Array[], batchSeq?: number): Buffer {
  const writer = new BinaryWriter();
  if (batchSeq !== undefined) writer.uint32(8).uint64(batchSeq);
  const field = batchSeq === undefined ? 1 : 2;
  for (const event of events) writer.uint32((field << 3) | 2).bytes(event);
  return Buffer.from(writer.finish());
}

/** Appends raw extra fields to an encoded message (a later field value overrides an earlier one). */
export function withExtraField(message: Uint8Array, build: (writer: BinaryWriter) => void): Buffer {
  const writer = new BinaryWriter();
  build(writer);
  return Buffer.concat([message, writer.finish()]);
}

const identity = (bytes: Buffer): Buffer => bytes;

/** Sends raw bytes to Append; resolves with the response bytes or the error. */
export function appendRaw(
  client: grpc.Client,
  bytes: Buffer,
  metadata: grpc.Metadata,
): Promise<{ error: grpc.ServiceError | null; response?: Buffer }> {
  return new Promise((resolve) => {
    client.makeUnaryRequest(
      "/sessiontrack.v1.IngestService/Append",
      identity,
      identity,
      bytes,
      metadata,
      (error, response) => resolve(response === undefined ? { error } : { error, response }),
    );
  });
}

/** Opens a raw Stream call. */
export function openStream(
  client: grpc.Client,
  metadata: grpc.Metadata,
): grpc.ClientDuplexStream<Buffer, Buffer> {
  return client.makeBidiStreamRequest("/sessiontrack.v1.IngestService/Stream", identity, identity, metadata);
}
