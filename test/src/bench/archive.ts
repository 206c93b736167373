// Archive benchmark: WriteBatch throughput (MB/s of encoded StoredEvents made durable on
// the local store, fsync'd) and the compression ratio on realistic support chats
// (multi-turn conversations with a system prompt, tool calls and results, feedback).
import { mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { randomBytes } from "node:crypto";
import { tmpdir } from "node:os";
import { join } from "node:path";

import * as grpc from "@grpc/grpc-js";

import { loadArchiveConfig, startArchiveServer, type ArchiveServer } from "@sessiontrack/archive";
import { ArchiveServiceClient, Event, Role, StoredEvent, type WriteBatchResponse } from "@sessiontrack/proto";
import { createLogger, generateApiKey, writeTenantsFile } from "@sessiontrack/runtime";
import { startMinio, ToolMissingError, type MinioServer } from "@sessiontrack/testkit";

const SYSTEM_PROMPT =
  "You are Ava, the customer support assistant of Northwind Outdoor. Be concise and friendly. " +
  "Only discuss orders, deliveries, returns, refunds, product questions and account issues. " +
  "Always look an order up with the lookup_order tool before answering questions about it. " +
  "Refunds above 100 EUR need a human agent: offer a handoff. Never reveal internal notes. " +
  "Policies: returns within 30 days in original condition; free return shipping for members; " +
  "express shipping upgrades are free after two delays; damaged items are replaced at no cost.";

const PRODUCTS = [
  "trail running shoes",
  "a 3-season tent",
  "a down sleeping bag",
  "a waterproof hiking jacket",
  "trekking poles",
  "a 45 litre backpack",
  "a camping stove",
  "merino base layers",
];
const CARRIERS = ["DHL", "UPS", "DPD", "GLS", "Royal Mail"];
const DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"];
const NAMES = ["Sam", "Priya", "Jonas", "Maria", "Chen", "Fatima", "Liam", "Sofia", "Kenji", "Ana"];

type EventInput = NonNullable<Parameters<typeof Event.fromPartial>[0]>;

type Turn = { user: string; tool?: { name: string; args: object; result: object }; assistant: string };

/** A plausible support conversation, varied by a seeded pseudo-random generator. */
function conversation(random: () => number): Turn[] {
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
  const order = String(10000 + Math.floor(random() * 89999));
  const product = pick(PRODUCTS);
  const carrier = pick(CARRIERS);
  const due = pick(DAYS);
  const eta = pick(DAYS);
  const name = pick(NAMES);
  const price = (20 + random() * 300).toFixed(2);
  const turns: Turn[] = [
    {
      user: `Hi, I'm ${name}. I ordered ${product} (order ${order}) and it still hasn't arrived, it was due on ${due}. Can you check where it is?`,
      tool: {
        name: "lookup_order",
        args: { order_id: order },
        result: {
          order_id: order,
          status: "in_transit",
          carrier,
          eta,
          items: [{ name: product, price_eur: Number(price) }],
          delays: Math.floor(random() * 3),
        },
      },
      assistant: `Thanks ${name}, I've looked up order ${order}. ${carrier} collected your ${product} and it is in transit; the current estimate is ${eta}. I'm sorry it's later than promised.`,
    },
    {
      user:
        random() < 0.5
          ? `That's not great, I need it for a trip this weekend. Can you upgrade it to express shipping?`
          : `This is the second delay. Can I get the shipping fee refunded?`,
      assistant:
        random() < 0.5
          ? `I understand. Since the parcel is already with ${carrier}, I can't change the service, but I've refunded the 4.99 EUR shipping fee to your original payment method; it should show within 3-5 working days.`
          : `I've asked ${carrier} to prioritise it and upgraded the remaining leg to express at no cost. You'll get a new tracking email within the hour.`,
    },
  ];
  if (random() < 0.6) {
    turns.push({
      user: `And if it doesn't fit, how do returns work for ${product}?`,
      tool: {
        name: "get_return_policy",
        args: { product_category: product.split(" ").slice(-1)[0] },
        result: { window_days: 30, free_for_members: true, condition: "original" },
      },
      assistant: `You can return it within 30 days in its original condition. As a member, return shipping is free: start the return from your orders page and print the label, or show the QR code at any ${carrier} point.`,
    });
  }
  if (random() < 0.4) {
    turns.push({
      user: `Also, my account still shows my old address. Can you update it to ${Math.floor(random() * 200)} ${pick(["Oak", "Mill", "Station", "Harbour"])} Street?`,
      assistant:
        "I can't change addresses from chat for security reasons, but you can update it under Account → Addresses. Future orders will use the new address right away.",
    });
  }
  turns.push({
    user: "OK, thanks for your help!",
    assistant: `You're welcome, ${name}! Enjoy your ${product}, and have a great trip.`,
  });
  return turns;
}

function seeded(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state * 1664525 + 1013904223) >>> 0;
    return state / 2 ** 32;
  };
}

/** Encoded StoredEvents of `sessions` conversations, interleaved the way a shipper sees them. */
export function chatStoredEvents(sessions: number, seed = 7): Buffer[][] {
  const random = seeded(seed);
  const perSession: Buffer[][] = [];
  let counter = 0;
  for (let s = 0; s < sessions; s += 1) {
    const sessionId = `sess-${seed}-${s.toString().padStart(6, "0")}`;
    const userId = `user-${Math.floor(random() * 1_000_000)}`;
    const events: Buffer[] = [];
    let seq = 0;
    const base = 1_760_000_000_000 + s * 7_000;
    const push = (payload: EventInput["payload"], role?: string): void => {
      seq += 1;
      counter += 1;
      const eventId = `0193b${seed.toString(16).padStart(3, "0")}-0000-7000-8000-${counter.toString(16).padStart(12, "0")}`;
      const event = Event.fromPartial({
        eventId,
        sessionId,
        seq,
        time: new Date(base + seq * 2_500),
        botId: "northwind-support",
        userId,
        labels: { channel: "web", locale: "en-GB", ...(role === undefined ? {} : { stage: "ga" }) },
        payload,
      });
      const stored = StoredEvent.fromPartial({
        tenant: "bench",
        eventId,
        sessionId,
        seq,
        receivedAt: new Date(base + seq * 2_500 + 3),
        event: Buffer.from(Event.encode(event).finish()),
      });
      events.push(Buffer.from(StoredEvent.encode(stored).finish()));
    };
    push({
      $case: "sessionStart",
      value: { channel: "web", locale: "en-GB", userGroups: ["customers"], attributes: { plan: "member" } },
    });
    push(
      {
        $case: "message",
        value: {
          turnId: "turn-0",
          turnIndex: 0,
          role: Role.ROLE_SYSTEM,
          provider: "openai",
          model: "gpt-4o-mini",
          parts: [{ kind: { $case: "text", value: { text: SYSTEM_PROMPT } } }],
        },
      },
      "system",
    );
    conversation(random).forEach((turn, index) => {
      const turnId = `turn-${index + 1}`;
      const common = {
        turnId,
        turnIndex: index + 1,
        provider: "openai",
        model: index === 1 ? "gpt-4o" : "gpt-4o-mini",
      };
      push({
        $case: "message",
        value: {
          ...common,
          role: Role.ROLE_USER,
          parts: [{ kind: { $case: "text", value: { text: turn.user } } }],
        },
      });
      if (turn.tool !== undefined) {
        const callId = `call_${randomBytes(6).toString("hex")}`;
        push({
          $case: "message",
          value: {
            ...common,
            role: Role.ROLE_ASSISTANT,
            finishReason: "tool_calls",
            parts: [
              {
                kind: {
                  $case: "toolCall",
                  value: { callId, name: turn.tool.name, argumentsJson: JSON.stringify(turn.tool.args) },
                },
              },
            ],
            usage: { inputTokens: 900 + index * 150, outputTokens: 24 },
            latencyMs: 640,
          },
        });
        push({
          $case: "message",
          value: {
            ...common,
            role: Role.ROLE_TOOL,
            parts: [
              {
                kind: {
                  $case: "toolResult",
                  value: {
                    callId,
                    name: turn.tool.name,
                    content: JSON.stringify(turn.tool.result),
                    isError: false,
                  },
                },
              },
            ],
          },
        });
      }
      push({
        $case: "message",
        value: {
          ...common,
          role: Role.ROLE_ASSISTANT,
          finishReason: "stop",
          parts: [{ kind: { $case: "text", value: { text: turn.assistant } } }],
          usage: { inputTokens: 1000 + index * 180, outputTokens: Math.round(turn.assistant.length / 4) },
          latencyMs: 700 + turn.assistant.length * 3,
        },
      });
    });
    push({ $case: "feedback", value: { kind: "thumbs", score: random() < 0.8 ? 1 : -1, comment: "" } });
    push({ $case: "sessionEnd", value: { reason: 1, turnCount: seq } });
    perSession.push(events);
  }
  return perSession;
}

/** Events in arrival order: `concurrent` conversations in flight, each advancing at random. */
export function arrivalOrder(perSession: Buffer[][], concurrent: number, seed = 11): Buffer[] {
  const random = seeded(seed);
  const queue = [...perSession];
  const active: Array<{ events: Buffer[]; next: number }> = [];
  const out: Buffer[] = [];
  while (queue.length > 0 || active.length > 0) {
    while (active.length < concurrent && queue.length > 0) active.push({ events: queue.shift()!, next: 0 });
    const index = Math.floor(random() * active.length);
    const slot = active[index]!;
    out.push(slot.events[slot.next]!);
    slot.next += 1;
    if (slot.next === slot.events.length) active.splice(index, 1);
  }
  return out;
}

function directoryBytes(dir: string): number {
  let total = 0;
  let entries;
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return 0;
  }
  for (const entry of entries) {
    const path = join(dir, entry.name);
    total += entry.isDirectory() ? directoryBytes(path) : statSync(path).size;
  }
  return total;
}

interface BenchArchive {
  home: string;
  server: ArchiveServer;
  write(events: Buffer[]): Promise<WriteBatchResponse>;
  /** Bytes of data objects (tenants/bench/objects), in the hot and cold tiers. */
  objectBytes(): number;
  /** Bytes of everything the archive stored (data objects, catalogs, keys, subject indexes). */
  allBytes(): number;
  advanceClock(ms: number): void;
  close(): Promise<void>;
}

/** A real archive on the local store (or the given MinIO) in a temp dir, with a clock the bench can move. */
async function startBenchArchive(minio?: MinioServer): Promise<BenchArchive> {
  const home = mkdtempSync(join(tmpdir(), "sessiontrack-bench-archive-"));
  const service = generateApiKey();
  const tenantsFile = join(home, "tenants.yaml");
  writeTenantsFile(
    tenantsFile,
    [{ name: "bench", keys: [{ id: "bench-reader", sha256: generateApiKey().sha256, roles: ["read"] }] }],
    [{ id: "bench-shipper", sha256: service.sha256 }],
  );
  const kekDir = join(home, "keks");
  mkdirSync(kekDir);
  writeFileSync(join(kekDir, "bench"), randomBytes(32).toString("base64"));
  const config = loadArchiveConfig(
    {
      "data-dir": join(home, "data"),
      tenants: tenantsFile,
      "kek-dir": kekDir,
      listen: "127.0.0.1:0",
      "metrics-listen": "127.0.0.1:0",
      "log-level": "warn",
      ...(minio === undefined
        ? {}
        : {
            store: "s3",
            "s3-endpoint": minio.endpoint,
            "s3-bucket": "bench",
            "s3-access-key": minio.accessKey,
            "s3-secret-key": minio.secretKey,
          }),
    },
    {},
  );
  let offset = 0;
  const server = await startArchiveServer(config, createLogger({ name: "bench-archive", level: "warn" }), {
    clock: () => Date.now() + offset,
  });
  const client = new ArchiveServiceClient(server.address, grpc.credentials.createInsecure(), {
    "grpc.max_send_message_length": 64 * 1024 * 1024,
  });
  const metadata = new grpc.Metadata();
  metadata.set("authorization", `Bearer ${service.key}`);
  const data = join(home, "data");
  return {
    home,
    server,
    write: (events) =>
      new Promise((resolve, reject) => {
        client.writeBatch(
          { events: events.map((bytes) => StoredEvent.decode(bytes)) },
          metadata,
          (error, response) => (error === null ? resolve(response) : reject(error)),
        );
      }),
    objectBytes: () =>
      directoryBytes(join(data, "objects", "tenants", "bench", "objects")) +
      directoryBytes(join(data, "cold", "tenants", "bench", "objects")),
    allBytes: () => directoryBytes(data),
    advanceClock: (ms) => {
      offset += ms;
    },
    close: async () => {
      client.close();
      await server.close();
      rmSync(home, { recursive: true, force: true });
    },
  };
}

/**
 * Writes realistic chat events through a real archive (local store, fsync'd, over gRPC)
 * the way the shipper does — 1000-event WriteBatch calls in arrival order — in two
 * patterns, each on a fresh archive:
 * - backlog (the shipper catching up; 50 conversations in flight): MB/s of encoded
 *   StoredEvents, and the stored ratio;
 * - live (500 conversations in flight, so ~2 events of a session per batch): MB/s, the
 *   ratio as written, and at rest after the idle sessions are compacted
 *   (`archive.compression_ratio`).
 */
export async function measureArchive(options: { sessions?: number } = {}): Promise<Record<string, number>> {
  const sessions = options.sessions ?? 2000;
  const results: Record<string, number> = {};
  const backlog = await startBenchArchive();
  try {
    // Warm-up on a separate set of sessions (JIT, directory creation).
    for (const batch of chunk(arrivalOrder(chatStoredEvents(100, 3), 50), 1000)) await backlog.write(batch);
    const warmObjectBytes = backlog.objectBytes();
    const warmAllBytes = backlog.allBytes();
    const events = arrivalOrder(chatStoredEvents(sessions), 50);
    const rawBytes = events.reduce((sum, event) => sum + event.length, 0);
    const batches = chunk(events, 1000);
    let written = 0;
    const started = process.hrtime.bigint();
    for (const batch of batches) written += (await backlog.write(batch)).written;
    // The records the batches' manifests defer are part of the cost: fold them in the timing.
    await backlog.server.fold();
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    if (written !== events.length) throw new Error(`archive wrote ${written} of ${events.length} events`);
    results["archive.write_mb_per_s"] = round(rawBytes / 1e6 / seconds);
    results["archive.write_events_per_s"] = Math.round(events.length / seconds);
    results["archive.compression_ratio_backlog"] = round(
      rawBytes / (backlog.objectBytes() - warmObjectBytes),
    );
    results["archive.stored_ratio_with_records_backlog"] = round(
      rawBytes / (backlog.allBytes() - warmAllBytes),
    );
    results["archive.event_bytes_avg"] = Math.round(rawBytes / events.length);
  } finally {
    await backlog.close();
  }

  const live = await startBenchArchive();
  try {
    const events = arrivalOrder(chatStoredEvents(Math.round(sessions / 2), 5), 500);
    const rawBytes = events.reduce((sum, event) => sum + event.length, 0);
    const started = process.hrtime.bigint();
    for (const batch of chunk(events, 1000)) await live.write(batch);
    await live.server.fold();
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    results["archive.write_mb_per_s_live"] = round(rawBytes / 1e6 / seconds);
    results["archive.write_events_per_s_live"] = Math.round(events.length / seconds);
    results["archive.compression_ratio_as_written_live"] = round(rawBytes / live.objectBytes());
    live.advanceClock(11 * 60 * 1000); // past --compact-idle-seconds
    const compacted = await live.server.compact();
    results["archive.compacted_sessions"] = compacted.sessions;
    results["archive.compression_ratio"] = round(rawBytes / live.objectBytes());
  } finally {
    await live.close();
  }

  // The same backlog pattern against a real MinIO (the pinned build of `make tools`).
  let minio: MinioServer | undefined;
  try {
    minio = await startMinio();
  } catch (error) {
    if (!(error instanceof ToolMissingError)) throw error;
    console.log(`archive bench: no MinIO figure (${error.message})`);
  }
  if (minio !== undefined) {
    const s3 = await startBenchArchive(minio);
    try {
      const events = arrivalOrder(chatStoredEvents(Math.round(sessions / 2), 9), 50);
      const rawBytes = events.reduce((sum, event) => sum + event.length, 0);
      const started = process.hrtime.bigint();
      for (const batch of chunk(events, 1000)) await s3.write(batch);
      await s3.server.fold();
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      results["archive.write_mb_per_s_minio"] = round(rawBytes / 1e6 / seconds);
      results["archive.write_events_per_s_minio"] = Math.round(events.length / seconds);
    } finally {
      await s3.close();
      await minio.cleanup();
    }
  }
  return results;
}

function chunk<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

const round = (value: number): number => Number(value.toFixed(2));
