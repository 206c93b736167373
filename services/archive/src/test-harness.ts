// Test support for the archive's service tests: a real server on 127.0.0.1:0 over a
// local store or MinIO, with tenants, keys and KEK files in a temp dir.
import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TestContext } from "node:test";

import * as grpc from "@grpc/grpc-js";

import {
  ArchiveServiceClient,
  Event,
  Role,
  StoredEvent,
  type ArchiveServiceEraseRequest,
  type ArchiveServiceEraseResponse,
  type ArchiveServiceGetSessionRequest,
  type ArchiveServiceGetSessionResponse,
  type VerifyRequest,
  type VerifyResponse,
  type WriteBatchRequest,
  type WriteBatchResponse,
} from "@sessiontrack/proto";
import { createLogger, generateApiKey, writeTenantsFile } from "@sessiontrack/runtime";

import { loadArchiveConfig } from "./config.js";
import { startArchiveServer, type ArchiveServer } from "./server.js";

/** A started archive with its keys, clock and home directory. */
export interface ArchiveHarness {
  server: ArchiveServer;
  dir: string;
  kekDir: string;
  serviceKey: string;
  /** Read keys by tenant (acme, globex, initech). */
  readKeys: Record<string, string>;
  ingestKey: string;
  client: ArchiveServiceClient;
  raw: grpc.Client;
  /** Moves the injected clock. */
  clock: { now: number };
}

/**
 * Starts the archive with tenants acme and globex (each with a KEK file) and initech
 * (no KEK file). `flags` override settings (e.g. the S3 ones).
 */
export async function startArchiveHarness(
  t: TestContext,
  flags: Record<string, string> = {},
  files: { policy?: string } = {},
): Promise<ArchiveHarness> {
  const dir = mkdtempSync(join(tmpdir(), "sessiontrack-archive-test-"));
  const service = generateApiKey();
  const ingest = generateApiKey();
  const readKeys: Record<string, string> = {};
  const tenants = ["acme", "globex", "initech"].map((name) => {
    const read = generateApiKey();
    readKeys[name] = read.key;
    return {
      name,
      keys: [
        { id: `${name}-reader`, sha256: read.sha256, roles: ["read" as const] },
        ...(name === "acme"
          ? [{ id: "acme-ingest", sha256: ingest.sha256, roles: ["ingest" as const] }]
          : []),
      ],
    };
  });
  const tenantsFile = join(dir, "tenants.yaml");
  writeTenantsFile(tenantsFile, tenants, [{ id: "shipper", sha256: service.sha256 }]);
  const kekDir = join(dir, "keks");
  mkdirSync(kekDir);
  writeFileSync(join(kekDir, "acme"), `${randomBytes(32).toString("base64")}\n`);
  writeFileSync(join(kekDir, "globex"), randomBytes(32).toString("hex"));
  const extra: Record<string, string> = {};
  if (files.policy !== undefined) {
    extra["policy-file"] = join(dir, "policy.yaml");
    writeFileSync(extra["policy-file"], files.policy);
  }
  const clock = { now: Date.now() };
  const config = loadArchiveConfig(
    {
      "data-dir": join(dir, "data"),
      tenants: tenantsFile,
      "kek-dir": kekDir,
      listen: "127.0.0.1:0",
      "metrics-listen": "127.0.0.1:0",
      "shutdown-grace-ms": "2000",
      ...extra,
      ...flags,
    },
    {},
  );
  const server = await startArchiveServer(config, createLogger({ name: "archive-test", level: "silent" }), {
    clock: () => clock.now,
  });
  const client = new ArchiveServiceClient(server.address, grpc.credentials.createInsecure());
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
    kekDir,
    serviceKey: service.key,
    readKeys,
    ingestKey: ingest.key,
    client,
    raw,
    clock,
  };
}

/** Metadata carrying `authorization: Bearer <key>` (or nothing). */
export function bearer(key: string | undefined): grpc.Metadata {
  const metadata = new grpc.Metadata();
  if (key !== undefined) metadata.set("authorization", `Bearer ${key}`);
  return metadata;
}

let counter = 0;

const TURNS = [
  "Hi, my order 88213 hasn't arrived yet. It was due on Monday and the tracking page has not moved.",
  "I've checked order 88213: DHL reports a delay at the regional hub and now expects to deliver it on Thursday.",
  "That's the second delay this month. Can I get a refund of the shipping fee, or an upgrade to express?",
  "I'm sorry about the repeated delay. I've refunded the £4.99 shipping fee to your original payment method.",
];

/** A StoredEvent as ingest would ship it: a user or assistant message of a support chat. */
export function storedEvent(
  tenant: string,
  sessionId: string,
  seq: number,
  userId = "user-1",
  text = TURNS[seq % TURNS.length]!,
): StoredEvent {
  counter += 1;
  const eventId = `0193a000-0000-7000-8000-${counter.toString(16).padStart(12, "0")}`;
  const event = Event.fromPartial({
    eventId,
    sessionId,
    seq,
    time: new Date(1_760_000_000_000 + seq * 1000),
    botId: "support-bot",
    userId,
    labels: { channel: "web" },
    payload: {
      $case: "message",
      value: {
        turnId: `turn-${Math.ceil(seq / 2)}`,
        turnIndex: Math.ceil(seq / 2),
        role: seq % 2 === 1 ? Role.ROLE_USER : Role.ROLE_ASSISTANT,
        provider: "openai",
        model: "gpt-4o-mini",
        parts: [{ kind: { $case: "text", value: { text } } }],
      },
    },
  });
  return StoredEvent.fromPartial({
    tenant,
    eventId,
    sessionId,
    seq,
    receivedAt: new Date(1_760_000_000_000 + seq * 1000 + 5),
    event: Buffer.from(Event.encode(event).finish()),
    redactions:
      seq % 3 === 0 ? [{ rule: "email", path: "message.parts[0].text", action: "mask", count: 1 }] : [],
  });
}

/** The bytes WriteBatch receives for an event. */
export const encodeStored = (event: StoredEvent): Buffer => Buffer.from(StoredEvent.encode(event).finish());

const identity = (bytes: Buffer): Buffer => bytes;

/** Calls a unary method with raw request bytes; resolves with the response bytes or the error. */
export function callRaw(
  client: grpc.Client,
  method: string,
  bytes: Buffer,
  metadata: grpc.Metadata,
): Promise<{ error: grpc.ServiceError | null; response?: Buffer }> {
  return new Promise((resolve) => {
    client.makeUnaryRequest(
      `/sessiontrack.v1.ArchiveService/${method}`,
      identity,
      identity,
      bytes,
      metadata,
      (error, response) => resolve(response === undefined ? { error } : { error, response }),
    );
  });
}

type Outcome<T> = { error: grpc.ServiceError | null; response: T | undefined };

function settle<T>(resolve: (outcome: Outcome<T>) => void) {
  return (error: grpc.ServiceError | null, response: T): void =>
    resolve({ error, response: error === null ? response : undefined });
}

/** WriteBatch through the generated client. */
export function writeBatchCall(
  client: ArchiveServiceClient,
  request: WriteBatchRequest,
  metadata: grpc.Metadata,
): Promise<Outcome<WriteBatchResponse>> {
  return new Promise((resolve) => client.writeBatch(request, metadata, settle(resolve)));
}

/** GetSession through the generated client. */
export function getSessionCall(
  client: ArchiveServiceClient,
  request: ArchiveServiceGetSessionRequest,
  metadata: grpc.Metadata,
): Promise<Outcome<ArchiveServiceGetSessionResponse>> {
  return new Promise((resolve) => client.getSession(request, metadata, settle(resolve)));
}

/** Erase through the generated client. */
export function eraseCall(
  client: ArchiveServiceClient,
  request: ArchiveServiceEraseRequest,
  metadata: grpc.Metadata,
): Promise<Outcome<ArchiveServiceEraseResponse>> {
  return new Promise((resolve) => client.erase(request, metadata, settle(resolve)));
}

/** Verify through the generated client. */
export function verifyCall(
  client: ArchiveServiceClient,
  request: VerifyRequest,
  metadata: grpc.Metadata,
): Promise<Outcome<VerifyResponse>> {
  return new Promise((resolve) => client.verify(request, metadata, settle(resolve)));
}
