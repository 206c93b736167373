import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";

import type * as grpc from "@grpc/grpc-js";

import { cohortHash, inCanaryCohort } from "@sessiontrack/cohort";
import { StoredEvent } from "@sessiontrack/proto";

import { splitByCanaryCohort, storedSessionId } from "./shipper-canary.js";
import { encodeStoredEvent } from "./stored-event.js";
import { appendRaw, auth, encodeBatch, encodeEvent, validEvent } from "./test-harness.js";
import { setUpShippingStack, startShippingIngest, startTestSink, waitUntil } from "./test-sinks.js";

const WEIGHT = 30;

/** A random-looking but fixed session id, like the UUIDs bots use. */
function sessionId(prefix: string, n: number): string {
  return `${prefix}-${createHash("sha256").update(`${prefix}${n}`).digest("hex").slice(0, 24)}`;
}

/** The capture-config file as the operator publishes it, with or without a canary route. */
function captureText(canaryAddress: string | undefined, component = "index"): string {
  const route =
    canaryAddress === undefined
      ? ""
      : `canary:\n  component: ${component}\n  revision: sst-${component}-canary-2\n  image: ${component}:2\n  weight: ${WEIGHT}\n  address: "${canaryAddress}"\n`;
  return `enabled: true\nsampleRate: 1\n${route}`;
}

/** Appends one event for each of `sessions` sessions; returns their WAL keys and session ids. */
async function appendSessions(client: grpc.Client, key: string, prefix: string, sessions: number) {
  const events = Array.from({ length: sessions }, (_, i) => validEvent({ sessionId: sessionId(prefix, i) }));
  const { error } = await appendRaw(client, encodeBatch(events.map(encodeEvent)), auth(`Bearer ${key}`));
  assert.equal(error, null);
  return events.map((event) => ({ id: `acme/${event.eventId}`, sessionId: event.sessionId }));
}

const ids = (events: ReadonlyArray<{ id: string }>): Set<string> => new Set(events.map((event) => event.id));

test("storedSessionId reads the header of a WAL record; the split follows inCanaryCohort in WAL order", () => {
  const records = Array.from({ length: 50 }, (_, i) => ({
    data: encodeStoredEvent(
      {
        tenant: "acme",
        eventId: `e${i}`,
        sessionId: sessionId("sess", i),
        seq: 1,
        receivedAt: new Date(),
        redactions: [],
      },
      Buffer.alloc(300, i),
    ),
  }));
  assert.equal(storedSessionId(records[7]!.data), sessionId("sess", 7));
  const { stable, canary } = splitByCanaryCohort(records, WEIGHT);
  const sessionOf = (record: { data: Uint8Array }): string => StoredEvent.decode(record.data).sessionId;
  assert.deepEqual(
    canary.map(sessionOf),
    records.map(sessionOf).filter((id) => inCanaryCohort(id, WEIGHT)),
  );
  assert.deepEqual(
    stable.map(sessionOf),
    records.map(sessionOf).filter((id) => !inCanaryCohort(id, WEIGHT)),
  );
  assert.ok(canary.length > 5 && stable.length > 20, `canary ${canary.length} of 50`);
  const id = sessionId("sess", 7);
  assert.equal(inCanaryCohort(id, WEIGHT), cohortHash(`canary:${id}`) / 2 ** 32 < WEIGHT / 100);
});

test("an index canary gets exactly its cohort, holds the cursor while unreachable, and everything goes to stable once the route is gone", async (t) => {
  const stack = await setUpShippingStack(t);
  const canary = await startTestSink(t, "index", stack.tenants);
  const captureFile = join(stack.dir, "capture.yaml");
  writeFileSync(captureFile, captureText(canary.address));
  const { server, client } = await startShippingIngest(t, stack, { "capture-config": captureFile });

  // 1. Split: the canary cohort to the canary, the rest to the stable index; archive gets all.
  const first = await appendSessions(client, stack.ingestKey, "s", 200);
  const inCohort = first.filter((event) => inCanaryCohort(event.sessionId, WEIGHT));
  const rest = first.filter((event) => !inCanaryCohort(event.sessionId, WEIGHT));
  assert.ok(inCohort.length > 30 && rest.length > 100, `cohort ${inCohort.length} of 200`);
  await waitUntil("the index cursor covers the batch", () => server.wal.getCursor("index") === 200);
  assert.deepEqual(canary.eventIds, ids(inCohort), "the canary received exactly the canary cohort");
  assert.deepEqual(stack.index.eventIds, ids(rest), "the stable index received everything else");
  await waitUntil("archive has everything", () => server.wal.getCursor("archive") === 200);
  assert.deepEqual(stack.archive.eventIds, ids(first), "an index canary does not touch archive shipping");
  const metrics = await (await fetch(`http://${server.metricsAddress}/metrics`)).text();
  assert.match(
    metrics,
    new RegExp(`sessiontrack_shipper_canary_events_total\\{sink="index"\\} ${inCohort.length}\n`),
  );

  // 2. The canary becomes unreachable: the index cursor holds (nothing skipped), archive goes on.
  await canary.close();
  const second = await appendSessions(client, stack.ingestKey, "t", 100);
  await waitUntil("archive ships the second batch", () => server.wal.getCursor("archive") === 300);
  await waitUntil("the shipper saw the canary fail", () =>
    server.shipper!.status().some((s) => s.sink === "index" && s.failures >= 2),
  );
  const held = server.shipper!.status().find((s) => s.sink === "index")!;
  assert.equal(held.cursor, 200, "the index cursor does not pass a batch the canary did not confirm");
  assert.match(held.lastError?.message ?? "", new RegExp(`canary at ${canary.address}`));
  assert.equal(held.lastError?.permanent, false, "an unreachable canary is an outage, retried");

  // 3. Rollback: the route disappears; the held batch goes to the stable index whole.
  writeFileSync(captureFile, captureText(undefined));
  await waitUntil("the index cursor catches up", () => server.wal.getCursor("index") === 300);
  for (const event of second) assert.ok(stack.index.eventIds.has(event.id), `${event.id} reached stable`);
  assert.deepEqual(canary.eventIds, ids(inCohort), "the canary got nothing more");
  const third = await appendSessions(client, stack.ingestKey, "u", 50);
  await waitUntil("later batches ship to stable", () => server.wal.getCursor("index") === 350);
  for (const event of third) assert.ok(stack.index.eventIds.has(event.id), event.id);
});

test("an archive canary that rejects its cohort holds archive; the route's removal retries at once, not after the 30 s hold", async (t) => {
  const stack = await setUpShippingStack(t);
  const canary = await startTestSink(t, "archive", stack.tenants);
  canary.mode = "invalid";
  const captureFile = join(stack.dir, "capture.yaml");
  writeFileSync(captureFile, captureText(canary.address, "archive"));
  const { server, client } = await startShippingIngest(t, stack, { "capture-config": captureFile });

  const events = await appendSessions(client, stack.ingestKey, "r", 100);
  await waitUntil("the canary rejected the cohort", () => canary.calls >= 1);
  await waitUntil("the index (no route) has everything", () => server.wal.getCursor("index") === 100);
  const held = server.shipper!.status().find((s) => s.sink === "archive")!;
  assert.equal(held.cursor, 0, "archive holds the batch its canary rejected");
  assert.equal(held.lastError?.permanent, true);
  assert.equal(held.lastError?.code, "INVALID_ARGUMENT");

  // Rolled back: the next attempt comes with the config change, well inside the 30 s hold.
  writeFileSync(captureFile, captureText(undefined));
  await waitUntil(
    "archive delivers everything to stable",
    () => server.wal.getCursor("archive") === 100,
    5_000,
  );
  assert.deepEqual(stack.archive.eventIds, ids(events));
  assert.equal(canary.eventIds.size, 0);
});
