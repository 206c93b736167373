// The whole path as real processes: SDK → ingest (WAL) → shipper → archive + index.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { cpSync, existsSync, rmSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";

import * as grpc from "@grpc/grpc-js";

import { SessionTrackClient } from "@sessiontrack/client";
import { Event, IngestServiceClient, StoredEvent, type AppendResponse } from "@sessiontrack/proto";
import { scanWal } from "@sessiontrack/wal";

import { SESSIONTRACK_BIN } from "./support/ingest-process.js";
import {
  createStackHome,
  eventually,
  metricValue,
  startIndex,
  startStack,
  StackReader,
  type Stack,
  type StackHome,
} from "./support/stack.js";
import { sleep } from "./support/wal-contents.js";

async function withStack(
  prefix: string,
  t: { after(fn: () => unknown): void },
): Promise<{ home: StackHome; stack: Stack; reader: StackReader }> {
  const home = createStackHome(prefix);
  let stack: Stack;
  try {
    stack = await startStack(home);
  } catch (error) {
    home.remove();
    throw error;
  }
  const reader = new StackReader({ index: stack.index.address, archive: stack.archive.address });
  // One hook, so the processes are down before their directories go.
  t.after(async () => {
    reader.close();
    await stack.stop();
    home.remove();
  });
  return { home, stack, reader };
}

function sdk(
  address: string,
  apiKey: string,
  home: StackHome,
  name: string,
  onAck?: (ids: readonly string[]) => void,
) {
  return new SessionTrackClient({
    target: address,
    apiKey,
    botId: `${name}-bot`,
    spoolDir: join(home.root, `spool-${name}`),
    ...(onAck === undefined ? {} : { onAck }),
  });
}

function sessiontrack(args: string[], env: Record<string, string> = {}) {
  return spawnSync(process.execPath, [SESSIONTRACK_BIN, ...args], {
    encoding: "utf8",
    timeout: 60_000,
    env: { ...process.env, ...env },
  });
}

/** StoredEvents of the ingest WAL by event id, read from disk. */
async function walEvents(home: StackHome): Promise<Map<string, Buffer>> {
  const byId = new Map<string, Buffer>();
  for await (const entry of scanWal(join(home.ingestDataDir, "wal"))) {
    if (entry.checksumOk && entry.data !== null) {
      byId.set(StoredEvent.decode(entry.data).eventId, Buffer.from(entry.data));
    }
  }
  return byId;
}

const encoded = (event: StoredEvent): Buffer => Buffer.from(StoredEvent.encode(event).finish());

test("end to end: an acked event is searchable within 1 s, both GetSessions return it byte for byte, tenants stay apart", async (t) => {
  const { home, stack, reader } = await withStack("sessiontrack-e2e-", t);
  const acked = new Map<string, number>();
  const client = sdk(stack.ingest.address, home.keys.acme.ingest, home, "acme", (ids) => {
    for (const id of ids) acked.set(id, Date.now());
  });
  t.after(() => client.close(1_000));

  const session = client.session("e2e-acme-1", { userId: "user-7" });
  session.start({ channel: "web", locale: "en-GB" });
  session.userMessage("My parcel with the marmalade jars arrived broken.");
  session.assistantMessage({
    text: "Sorry about the marmalade! I have arranged a replacement.",
    provider: "anthropic",
    model: "claude-sonnet-4",
  });
  await client.flush(10_000);
  const firstAck = Math.min(...acked.values());
  assert.equal(acked.size, 3, "every event acknowledged");
  const visible = await eventually(async () => {
    const found = await reader.search(home.keys.acme.read, { query: "marmalade" });
    return found.totalHits === 2;
  }, 1_000);
  t.diagnostic(`searchable ${Date.now() - firstAck} ms after the first ack`);
  assert.ok(visible, "the new events are searchable within 1 s of their acknowledgement");

  // Byte for byte: what ingest wrote to its WAL is what both sinks return.
  await eventually(
    async () => (await reader.archiveSession(home.keys.acme.read, "e2e-acme-1")).length === 3,
    5_000,
  );
  const wal = await walEvents(home);
  for (const source of ["archive", "index"] as const) {
    const events =
      source === "archive"
        ? await reader.archiveSession(home.keys.acme.read, "e2e-acme-1")
        : await reader.indexSession(home.keys.acme.read, "e2e-acme-1");
    assert.deepEqual(
      events.map((event) => event.seq),
      [1, 2, 3],
      `${source} returns the transcript in seq order`,
    );
    for (const event of events) {
      assert.deepEqual(
        encoded(event),
        wal.get(event.eventId),
        `${source} returns ${event.eventId} as stored`,
      );
    }
  }

  // An event sent as raw bytes comes back with exactly those bytes in StoredEvent.event.
  const raw = Event.fromPartial({
    eventId: "01934b7e-1111-7000-8000-000000000001",
    sessionId: "e2e-acme-raw",
    seq: 1,
    time: new Date(),
    botId: "raw-bot",
    userId: "user-8",
    labels: { env: "test", locale: "de" },
    payload: {
      $case: "message",
      value: {
        turnId: "t1",
        role: 2,
        parts: [
          { kind: { $case: "text", value: { text: "Wo bleibt meine Bestellung? ünïcödé ✓" } } },
          { kind: { $case: "toolCall", value: { callId: "c", name: "track", argumentsJson: '{"id":1}' } } },
        ],
      },
    },
  });
  const rawBytes = Buffer.from(Event.encode(raw).finish());
  const ingestClient = new IngestServiceClient(stack.ingest.address, grpc.credentials.createInsecure());
  t.after(() => ingestClient.close());
  const metadata = new grpc.Metadata();
  metadata.set("authorization", `Bearer ${home.keys.acme.ingest}`);
  await new Promise<AppendResponse>((resolve, reject) =>
    ingestClient.append({ events: [raw], captureOverheadPct: 0 }, metadata, (error, response) =>
      error === null ? resolve(response) : reject(error),
    ),
  );
  assert.ok(
    await eventually(
      async () => (await reader.indexSession(home.keys.acme.read, "e2e-acme-raw")).length === 1,
      5_000,
    ),
  );
  await eventually(
    async () => (await reader.archiveSession(home.keys.acme.read, "e2e-acme-raw")).length === 1,
    5_000,
  );
  const [fromIndex] = await reader.indexSession(home.keys.acme.read, "e2e-acme-raw");
  const [fromArchive] = await reader.archiveSession(home.keys.acme.read, "e2e-acme-raw");
  assert.deepEqual(Buffer.from(fromIndex!.event), rawBytes, "index returns the event bytes as sent");
  assert.deepEqual(Buffer.from(fromArchive!.event), rawBytes, "archive returns the event bytes as sent");
  assert.equal(fromArchive!.tenant, "acme");

  // Tenant isolation across Search and GetSession.
  const globex = sdk(stack.ingest.address, home.keys.globex.ingest, home, "globex");
  t.after(() => globex.close(1_000));
  globex
    .session("e2e-globex-1", { userId: "user-7" })
    .userMessage("Globex order about marmalade and quince.");
  await globex.flush(10_000);
  assert.ok(
    await eventually(
      async () => (await reader.search(home.keys.globex.read, { query: "quince" })).totalHits === 1,
      5_000,
    ),
  );
  const globexSees = await reader.search(home.keys.globex.read, { query: "marmalade" });
  assert.deepEqual(
    globexSees.sessions.map((hits) => hits.sessionId),
    ["e2e-globex-1"],
    "globex finds only its own session",
  );
  const acmeSees = await reader.search(home.keys.acme.read, { query: "marmalade quince" });
  assert.equal(acmeSees.totalHits, 0, "acme never sees globex's text");
  const acmeByUser = await reader.search(home.keys.acme.read, { userIds: ["user-7"] });
  assert.deepEqual(
    acmeByUser.sessions.map((hits) => hits.sessionId),
    ["e2e-acme-1"],
    "the same user id in another tenant is another subject",
  );
  for (const source of ["archive", "index"] as const) {
    const read =
      source === "archive"
        ? reader.archiveSession(home.keys.globex.read, "e2e-acme-1")
        : reader.indexSession(home.keys.globex.read, "e2e-acme-1");
    const events = await read.catch((error: grpc.ServiceError) => {
      assert.equal(error.code, grpc.status.NOT_FOUND, `${source}: ${error.details}`);
      return [];
    });
    assert.equal(events.length, 0, `globex cannot read acme's session from the ${source}`);
  }
});

test("erasure removes a subject from both sinks, leaves backups undecryptable, and prints a receipt", async (t) => {
  const { home, stack, reader } = await withStack("sessiontrack-erase-", t);
  const client = sdk(stack.ingest.address, home.keys.acme.ingest, home, "acme");
  t.after(() => client.close(1_000));
  for (const [sessionId, userId] of [
    ["erase-a", "user-gone"],
    ["erase-b", "user-gone"],
    ["keep-c", "user-stays"],
  ] as const) {
    const session = client.session(sessionId, { userId });
    session.userMessage(`Please cancel my subscription, session ${sessionId}.`);
    session.assistantMessage({
      text: "Your subscription is cancelled.",
      provider: "openai",
      model: "gpt-4o",
    });
  }
  await client.flush(10_000);
  assert.ok(
    await eventually(
      async () => (await reader.search(home.keys.acme.read, { query: "subscription" })).sessions.length === 3,
      10_000,
    ),
  );
  assert.ok(
    await eventually(
      async () => (await reader.archiveSession(home.keys.acme.read, "erase-b")).length === 2,
      10_000,
    ),
  );
  // A backup of the archived objects, taken before the erasure.
  const objects = join(home.archiveDataDir, "objects", "tenants", "acme", "objects");
  assert.ok(existsSync(objects), `archive objects under ${objects}`);
  const backup = join(home.root, "backup-objects");
  cpSync(objects, backup, { recursive: true });

  // One more event of the subject still on its way when the erasure is asked for.
  client.session("erase-b", { userId: "user-gone" }).userMessage("One more thing about my subscription.");
  await client.flush(10_000);

  const adminKeyFile = home.keyFile("admin", home.keys.acme.admin);
  const denied = sessiontrack([
    "erase",
    "--user",
    "user-gone",
    "--ingest-url",
    stack.ingest.address,
    "--api-key-file",
    home.keyFile("read", home.keys.acme.read),
  ]);
  assert.equal(denied.status, 1);
  assert.match(denied.stderr, /PERMISSION_DENIED/);

  const erased = sessiontrack(
    ["erase", "--user", "user-gone", "--ingest-url", stack.ingest.address, "--json"],
    {
      SESSIONTRACK_API_KEY_FILE: adminKeyFile,
    },
  );
  assert.equal(erased.status, 0, erased.stderr);
  const receipt = JSON.parse(erased.stdout) as Record<string, unknown>;
  t.diagnostic(`receipt: ${erased.stdout}`);
  assert.match(String(receipt["receiptId"]), /^[0-9a-f-]{36}$/);
  assert.equal(receipt["tenant"], "acme");
  assert.deepEqual(receipt["target"], { userId: "user-gone" });
  assert.deepEqual(receipt["sessions"], ["erase-a", "erase-b"]);
  assert.equal(receipt["indexDocumentsRemoved"], 5, "2 + 3 events, the last one shipped before erasing");
  assert.equal((receipt["dataKeysDestroyed"] as string[]).length, 2);
  assert.match(String(receipt["auditRecord"]), /audit/);
  assert.ok(Number(receipt["walLsn"]) >= 7);

  assert.equal((await reader.search(home.keys.acme.read, { userIds: ["user-gone"] })).totalHits, 0);
  assert.deepEqual(
    (await reader.search(home.keys.acme.read, { query: "subscription" })).sessions.map((s) => s.sessionId),
    ["keep-c"],
  );
  for (const sessionId of ["erase-a", "erase-b"]) {
    assert.equal((await reader.indexSession(home.keys.acme.read, sessionId).catch(() => [])).length, 0);
    assert.equal((await reader.archiveSession(home.keys.acme.read, sessionId).catch(() => [])).length, 0);
  }
  assert.equal((await reader.archiveSession(home.keys.acme.read, "keep-c")).length, 2, "others are kept");

  // Put the pre-erasure objects back: their sections of the erased subject no longer decrypt.
  cpSync(backup, objects, { recursive: true });
  const verified = await reader.verify(home.keys.acme.read);
  t.diagnostic(`verify after restoring the backup: ${JSON.stringify(verified)}`);
  const destroyed = verified.problems.filter((problem) => /data key destroyed/.test(problem.reason));
  assert.ok(
    destroyed.length >= 2,
    "every restored section of the erased subject fails: its data key is gone",
  );
  assert.equal(
    verified.problems.length,
    destroyed.length,
    "nothing else is wrong: the kept session still decrypts",
  );

  // Human-readable receipt, for a session.
  const bySession = sessiontrack([
    "erase",
    "--session",
    "keep-c",
    "--ingest-url",
    stack.ingest.address,
    "--api-key-file",
    adminKeyFile,
  ]);
  assert.equal(bySession.status, 0, bySession.stderr);
  assert.match(bySession.stdout, /Erasure receipt [0-9a-f-]{36}/);
  assert.match(bySession.stdout, /erased {17}session keep-c/);
  assert.match(bySession.stdout, /index documents gone {3}2/);
});

test("index rebuild from the archive restores a deleted index to the same search results", async (t) => {
  const { home, stack, reader } = await withStack("sessiontrack-rebuild-", t);
  const client = sdk(stack.ingest.address, home.keys.acme.ingest, home, "acme");
  t.after(() => client.close(1_000));
  for (let i = 0; i < 12; i += 1) {
    const session = client.session(`rebuild-${i}`, { userId: `user-${i % 4}` });
    session.start({ channel: i % 2 === 0 ? "web" : "slack" });
    session.userMessage(i % 3 === 0 ? `I want a refund for order ${i}` : `Where is order ${i}?`);
    session.assistantMessage({
      text: `Order ${i} is on its way.`,
      provider: "openai",
      model: i % 2 === 0 ? "gpt-4o" : "gpt-4o-mini",
    });
  }
  await client.flush(10_000);
  const queries = [
    { query: "refund" },
    { query: "order", models: ["gpt-4o"] },
    { query: "", userIds: ["user-1"] },
    { query: "way", pageSize: 100, hitsPerSession: 10 },
  ];
  const snapshot = async () =>
    Promise.all(
      queries.map(async (query) => {
        const response = await reader.search(home.keys.acme.read, query);
        return {
          totalHits: response.totalHits,
          sessions: response.sessions.map((s) => ({ ...s, hits: s.hits.map((hit) => ({ ...hit })) })),
        };
      }),
    );
  assert.ok(
    await eventually(async () => (await reader.search(home.keys.acme.read, {})).totalHits === 36, 10_000),
  );
  assert.ok(
    await eventually(async () => {
      const lag = await metricValue(
        stack.ingest.metricsAddress,
        "sessiontrack_shipper_lag_records",
        'sink="archive"',
      );
      return lag === 0;
    }, 10_000),
  );
  const before = await snapshot();

  // Lose the index completely.
  const listen = stack.index.address;
  await stack.index.stop();
  rmSync(home.indexDataDir, { recursive: true, force: true });
  stack.index = await startIndex(home, listen);
  assert.equal((await reader.search(home.keys.acme.read, {})).totalHits, 0, "the new index is empty");

  const rebuilt = sessiontrack(
    ["index", "rebuild", "--archive-url", stack.archive.address, "--index-url", stack.index.address],
    { SESSIONTRACK_SERVICE_KEY_FILE: home.serviceKeyFile },
  );
  assert.equal(rebuilt.status, 0, rebuilt.stderr);
  assert.match(rebuilt.stdout, /36 events of 12 sessions scanned, 36 indexed/);
  const after = await snapshot();
  assert.deepEqual(after, before, "the same search results as before the loss");
});

test("a sink down: ingest keeps accepting, the other sink keeps up, and it catches up afterwards", async (t) => {
  const { home, stack, reader } = await withStack("sessiontrack-sinkdown-", t);
  const client = sdk(stack.ingest.address, home.keys.acme.ingest, home, "acme");
  t.after(() => client.close(1_000));
  const listen = stack.index.address;
  await stack.index.stop();

  let sent = 0;
  for (let round = 0; round < 20; round += 1) {
    for (let i = 0; i < 25; i += 1) {
      client
        .session(`down-${sent % 10}`, { userId: "user-d" })
        .userMessage(`while the index is down ${sent}`);
      sent += 1;
    }
    await sleep(25);
  }
  const flushed = await client.flush(15_000);
  assert.equal(flushed.complete, true);
  assert.equal(client.stats().acked, sent, "ingest acknowledged everything while the index was down");
  assert.equal(client.stats().spooled, 0, "nothing had to be spooled: ingest never slowed down");
  assert.ok(
    await eventually(
      async () =>
        (await metricValue(
          stack.ingest.metricsAddress,
          "sessiontrack_shipper_lag_records",
          'sink="archive"',
        )) === 0,
      10_000,
    ),
    "the archive kept up",
  );
  const lag = await metricValue(
    stack.ingest.metricsAddress,
    "sessiontrack_shipper_lag_records",
    'sink="index"',
  );
  assert.equal(lag, sent, "the index's backlog is every event");
  assert.ok(
    (await metricValue(
      stack.ingest.metricsAddress,
      "sessiontrack_shipper_errors_total",
      'sink="index",code="UNAVAILABLE"',
    )) >= 1,
  );

  stack.index = await startIndex(home, listen);
  assert.ok(
    await eventually(
      async () =>
        (await metricValue(
          stack.ingest.metricsAddress,
          "sessiontrack_shipper_lag_records",
          'sink="index"',
        )) === 0,
      20_000,
    ),
    "the index caught up",
  );
  assert.equal((await reader.search(home.keys.acme.read, { userIds: ["user-d"] })).totalHits, sent);
});
