import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";

import * as grpc from "@grpc/grpc-js";

import {
  IndexEventsRequest,
  PrivacyServiceClient,
  StoredEvent,
  WriteBatchRequest,
  type EraseSubjectResponse,
} from "@sessiontrack/proto";
import { createLogger } from "@sessiontrack/runtime";
import { WriteAheadLog } from "@sessiontrack/wal";

import { loadIngestConfig } from "./config.js";
import { IngestMetrics, ShipperMetrics } from "./metrics.js";
import type { IngestServer } from "./server.js";
import { Shipper } from "./shipper.js";
import { createSinkClients, encodeEventsRequest, sinkTransports } from "./shipper-sinks.js";
import { appendRaw, auth, encodeBatch, encodeEvent, validEvent } from "./test-harness.js";
import { encodeStoredEvent } from "./stored-event.js";
import { setUpShippingStack, startShippingIngest, waitUntil } from "./test-sinks.js";

const silent = createLogger({ name: "shipper-test", level: "silent" });

async function append(client: grpc.Client, key: string, count: number, text = "Where is my order?") {
  const events = Array.from({ length: count }, (_, i) =>
    validEvent({
      seq: i + 1,
      payload: {
        $case: "message",
        value: {
          turnId: "t",
          turnIndex: 0,
          role: 2,
          provider: "",
          model: "",
          parts: [{ kind: { $case: "text", value: { text } } }],
          usage: undefined,
          finishReason: "",
          latencyMs: 0,
        },
      },
    }),
  );
  const { error } = await appendRaw(client, encodeBatch(events.map(encodeEvent)), auth(`Bearer ${key}`));
  assert.equal(error, null);
  return events;
}

async function metricsText(server: IngestServer): Promise<string> {
  return (await fetch(`http://${server.metricsAddress}/metrics`)).text();
}

test("every acknowledged event reaches both sinks byte for byte, and the cursors follow", async (t) => {
  const stack = await setUpShippingStack(t);
  const { server, client } = await startShippingIngest(t, stack);
  await append(client, stack.ingestKey, 5);
  await append(client, stack.ingestKey, 3);
  const last = server.wal.lastDurableLsn();
  assert.equal(last, 8);
  await waitUntil("both cursors reach the last lsn", () =>
    ["archive", "index"].every((sink) => server.wal.getCursor(sink) === last),
  );
  const inWal = (await server.wal.readFrom(1)).map((record) => Buffer.from(record.data));
  assert.deepEqual(stack.archive.received, inWal, "archive got the WAL's StoredEvents unchanged, in order");
  assert.deepEqual(stack.index.received, inWal, "index got the WAL's StoredEvents unchanged, in order");

  const metrics = await metricsText(server);
  assert.match(metrics, /sessiontrack_shipper_lag_records\{sink="archive"\} 0/);
  assert.match(metrics, /sessiontrack_shipper_lag_records\{sink="index"\} 0/);
  assert.match(metrics, /sessiontrack_shipper_events_total\{sink="index"\} 8/);
  assert.match(metrics, /sessiontrack_shipper_last_success_timestamp_seconds\{sink="archive"\} \d{10}/);
});

test("one sink down stalls nobody else; segments go only after both confirmed; it catches up", async (t) => {
  const stack = await setUpShippingStack(t);
  stack.index.mode = "unavailable";
  const { server, client } = await startShippingIngest(t, stack, {
    "wal-segment-bytes": String(1024 * 1024),
  });
  const text = "x".repeat(2000);
  for (let i = 0; i < 6; i += 1) await append(client, stack.ingestKey, 200, text);
  const last = server.wal.lastDurableLsn();
  await waitUntil("archive is caught up", () => server.wal.getCursor("archive") === last);
  assert.equal(stack.archive.eventIds.size, 1200);
  assert.equal(server.wal.getCursor("index"), 0, "the index confirmed nothing while down");
  assert.ok(server.wal.stats().segments >= 2, "segments are retained for the index");
  const down = await metricsText(server);
  assert.match(down, /sessiontrack_shipper_lag_records\{sink="index"\} 1200/);
  assert.match(down, /sessiontrack_shipper_errors_total\{sink="index",code="UNAVAILABLE"\} [1-9]/);
  const backlog = /sessiontrack_shipper_backlog_bytes\{sink="index"\} (\d+)/.exec(down);
  assert.ok(backlog !== null && Number(backlog[1]) > 2_000_000, `backlog bytes ${backlog?.[1]}`);

  stack.index.mode = "ok";
  await waitUntil("index catches up", () => server.wal.getCursor("index") === last, 15_000);
  assert.equal(stack.index.eventIds.size, 1200);
  await waitUntil("confirmed sealed segments are deleted", () => server.wal.stats().segments === 1);
  const walFiles = readdirSync(join(stack.dir, "data", "wal")).filter((name) => name.endsWith(".wal"));
  assert.equal(walFiles.length, 1, "only the active segment remains on disk");
});

test("cursors survive a restart: only unconfirmed records are sent again", async (t) => {
  const stack = await setUpShippingStack(t);
  const first = await startShippingIngest(t, stack);
  await append(first.client, stack.ingestKey, 4);
  await waitUntil("shipped", () => first.server.wal.getCursor("index") === 4);
  stack.archive.mode = "unavailable";
  await append(first.client, stack.ingestKey, 2);
  await waitUntil("index shipped the rest", () => first.server.wal.getCursor("index") === 6);
  first.client.close();
  await first.server.close();
  assert.equal(stack.archive.received.length, 4);

  stack.archive.mode = "ok";
  const second = await startShippingIngest(t, stack);
  await waitUntil("archive catches up after restart", () => second.server.wal.getCursor("archive") === 6);
  assert.equal(stack.archive.received.length, 6, "the 4 confirmed records were not sent again");
  assert.equal(stack.archive.eventIds.size, 6);
  assert.equal(stack.index.received.length, 6, "nothing more for the index");
});

test("a permanently rejected batch is held and retried, never skipped", async (t) => {
  const stack = await setUpShippingStack(t);
  const wal = await WriteAheadLog.open({ dir: join(stack.dir, "wal"), sinks: ["archive", "index"] });
  t.after(() => wal.close());
  const metrics = new IngestMetrics(wal);
  const clients = createSinkClients(
    {
      archive: { address: stack.archive.address, tls: false },
      index: { address: stack.index.address, tls: false },
      serviceKey: readFileSync(stack.serviceKeyFile, "utf8").trim(),
    },
    5_000,
  );
  t.after(() => clients.close());
  const shipper = new Shipper({
    wal,
    sinks: sinkTransports(clients),
    metrics: new ShipperMetrics(metrics.registry, wal, ["archive", "index"]),
    logger: silent,
    batch: { maxRecords: 100, maxBytes: 1024 * 1024 },
    backoff: { baseMs: 5, maxMs: 20, permanentMs: 50 },
  });
  stack.archive.mode = "invalid";
  shipper.start();
  t.after(() => shipper.stop(0));
  await wal.append(
    [1, 2, 3].map((seq) => {
      const event = validEvent({ seq });
      const header = {
        tenant: "acme",
        eventId: event.eventId,
        sessionId: "s",
        seq,
        receivedAt: new Date(),
        redactions: [],
      };
      return { key: `acme/${event.eventId}`, data: encodeStoredEvent(header, encodeEvent(event)) };
    }),
  );
  await waitUntil("the index has everything", () => wal.getCursor("index") === 3);
  await waitUntil("the archive rejected it a few times", () => stack.archive.calls >= 3);
  assert.equal(wal.getCursor("archive"), 0, "the rejected batch was not skipped");
  const status = shipper.status().find((entry) => entry.sink === "archive");
  assert.equal(status?.lastError?.code, "INVALID_ARGUMENT");
  assert.equal(status?.lastError?.permanent, true);
  const text = await metrics.registry.metrics();
  assert.match(text, /sessiontrack_shipper_stalled\{sink="archive"\} 1/);
  assert.match(text, /sessiontrack_shipper_errors_total\{sink="archive",code="INVALID_ARGUMENT"\} [1-9]/);

  stack.archive.mode = "ok";
  await waitUntil(
    "the held batch is delivered once the sink accepts it",
    () => wal.getCursor("archive") === 3,
  );
  assert.equal(stack.archive.received.length, 3);
  assert.match(await metrics.registry.metrics(), /sessiontrack_shipper_stalled\{sink="archive"\} 0/);
});

test("a new append wakes the shipper at once (no polling interval)", async (t) => {
  const stack = await setUpShippingStack(t);
  const { server, client } = await startShippingIngest(t, stack);
  await append(client, stack.ingestKey, 1);
  await waitUntil("first shipped", () => server.wal.getCursor("index") === 1);
  // Idle now; the next append must be shipped well within the wait below.
  await new Promise((resolve) => setTimeout(resolve, 300));
  await append(client, stack.ingestKey, 1);
  await waitUntil("second shipped promptly", () => server.wal.getCursor("index") === 2, 1_000);
});

function eraseSubject(
  address: string,
  key: string,
  userId: string,
): Promise<{ error: grpc.ServiceError | null; response?: EraseSubjectResponse }> {
  const client = new PrivacyServiceClient(address, grpc.credentials.createInsecure());
  return new Promise((resolve) => {
    client.eraseSubject({ userId }, auth(`Bearer ${key}`), (error, response) => {
      client.close();
      resolve(error === null ? { error, response } : { error });
    });
  });
}

test("EraseSubject ships the WAL first, erases from index then archive, and returns a receipt", async (t) => {
  const stack = await setUpShippingStack(t);
  const { server, client } = await startShippingIngest(t, stack, { "erase-wait-ms": "2000" });

  const denied = await eraseSubject(server.address, stack.readKey, "user-1");
  assert.equal(denied.error?.code, grpc.status.PERMISSION_DENIED, "a read key may not erase");
  const empty = await eraseSubject(server.address, stack.adminKey, "");
  assert.equal(empty.error?.code, grpc.status.INVALID_ARGUMENT);
  assert.match(empty.error?.details ?? "", /user_id/);

  stack.index.mode = "unavailable";
  await append(client, stack.ingestKey, 3);
  const blocked = await eraseSubject(server.address, stack.adminKey, "user-1");
  assert.equal(blocked.error?.code, grpc.status.UNAVAILABLE);
  assert.match(blocked.error?.details ?? "", /index has confirmed up to lsn 0/);
  assert.equal(stack.index.erasures.length + stack.archive.erasures.length, 0, "nothing erased");

  stack.index.mode = "ok";
  const { error, response } = await eraseSubject(server.address, stack.adminKey, "user-1");
  assert.equal(error, null);
  assert.equal(stack.index.eventIds.size, 3, "the WAL's events were shipped before erasing");
  const receipt = response?.receipt;
  assert.ok(receipt !== undefined);
  assert.match(receipt.receiptId, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  assert.equal(receipt.tenant, "acme");
  assert.deepEqual(receipt.target, { target: { $case: "userId", value: "user-1" } });
  assert.equal(receipt.walLsn, 3);
  assert.deepEqual(receipt.sessions, ["s-erased"]);
  assert.equal(receipt.indexDocumentsRemoved, 5);
  assert.deepEqual(receipt.dataKeysDestroyed, ["dk-1"]);
  assert.equal(receipt.archiveObjectsDeleted, 2);
  assert.equal(receipt.auditRecord, `audit/${receipt.receiptId}.json`);
  assert.ok(receipt.erasedAt instanceof Date);
  assert.deepEqual(stack.archive.erasures, [
    {
      tenant: "acme",
      target: { target: { $case: "userId", value: "user-1" } },
      receiptId: receipt.receiptId,
    },
  ]);
  assert.deepEqual(stack.index.erasures, [
    { tenant: "acme", target: { target: { $case: "userId", value: "user-1" } } },
  ]);
});

test("shipping settings fail fast and name the bad flag", () => {
  const base = { "data-dir": "/tmp/x", tenants: "/tmp/t.yaml" };
  assert.throws(() => loadIngestConfig({ ...base, "index-url": "127.0.0.1:7071" }, {}), /service-key-file/);
  assert.throws(
    () => loadIngestConfig({ ...base, "archive-url": "not a url", "service-key-file": "/nope" }, {}),
    /archiveUrl: .*not an address/,
  );
  assert.throws(
    () => loadIngestConfig({ ...base, "archive-url": "127.0.0.1:7072", "service-key-file": "/nope/key" }, {}),
    /service-key-file: cannot read \/nope\/key/,
  );
  assert.equal(loadIngestConfig(base, {}).shipping, undefined, "shipping is off without sink addresses");
});

test("with a sink down the WAL is bounded: ingest fails closed, then accepts again once it catches up", async (t) => {
  const stack = await setUpShippingStack(t);
  stack.index.mode = "unavailable";
  const { server, client } = await startShippingIngest(t, stack, {
    "wal-segment-bytes": String(1024 * 1024),
    "wal-max-retained-bytes": String(3 * 1024 * 1024),
  });
  const text = "y".repeat(4000);
  const batch = (): Buffer =>
    encodeBatch(
      Array.from({ length: 100 }, (_, i) =>
        encodeEvent(
          validEvent({
            seq: i + 1,
            payload: {
              $case: "message",
              value: {
                turnId: "t",
                turnIndex: 0,
                role: 2,
                provider: "",
                model: "",
                parts: [{ kind: { $case: "text", value: { text } } }],
                usage: undefined,
                finishReason: "",
                latencyMs: 0,
              },
            },
          }),
        ),
      ),
    );
  let refused: grpc.ServiceError | null = null;
  for (let i = 0; i < 20 && refused === null; i += 1) {
    refused = (await appendRaw(client, batch(), auth(`Bearer ${stack.ingestKey}`))).error;
  }
  assert.equal(refused?.code, grpc.status.RESOURCE_EXHAUSTED, "ingest refuses once the WAL bound is reached");
  assert.match(refused?.details ?? "", /full/);
  assert.ok(server.wal.stats().retainedBytes <= 3 * 1024 * 1024);

  stack.index.mode = "ok";
  await waitUntil(
    "the index catches up",
    () => server.wal.getCursor("index") === server.wal.lastDurableLsn(),
  );
  await waitUntil("segments are freed", () => server.wal.stats().segments === 1);
  const again = await appendRaw(client, batch(), auth(`Bearer ${stack.ingestKey}`));
  assert.equal(again.error, null, "appends succeed again");
});

test("close() ships what is durable before stopping, and does not hang on a dead sink", async (t) => {
  const stack = await setUpShippingStack(t);
  const { server, client } = await startShippingIngest(t, stack, { "shutdown-grace-ms": "1000" });
  stack.archive.mode = "unavailable";
  await append(client, stack.ingestKey, 50);
  const started = Date.now();
  await server.close();
  const took = Date.now() - started;
  assert.ok(took < 5_000, `close took ${took} ms`);
  assert.equal(stack.index.eventIds.size, 50, "the healthy sink received everything before shutdown");
  assert.equal(stack.archive.received.length, 0);
});

test("a batch is framed from the WAL's bytes: it decodes as WriteBatchRequest and IndexEventsRequest unchanged", () => {
  const records = [10, 127, 128, 300, 20_000, 70_000].map((size, index) => ({
    data: encodeStoredEvent(
      {
        tenant: "acme",
        eventId: `e${index}`,
        sessionId: "s",
        seq: index + 1,
        receivedAt: new Date(),
        redactions: [],
      },
      Buffer.alloc(size, index + 1),
    ),
  }));
  const body = encodeEventsRequest(records);
  for (const decoded of [WriteBatchRequest.decode(body), IndexEventsRequest.decode(body)]) {
    assert.deepEqual(
      decoded.events.map((event) => Buffer.from(StoredEvent.encode(event).finish())),
      records.map((record) => record.data),
    );
  }
  assert.deepEqual(encodeEventsRequest([]), Buffer.alloc(0));
});
