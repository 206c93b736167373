import assert from "node:assert/strict";
import { readdirSync } from "node:fs";
import { test } from "node:test";
import { uuidv7 } from "./uuidv7.js";
import { customPayload, sessionEvents, sleep, startHarness } from "./testing/harness.js";

test("ingest down mid-stream: events spool, are replayed in order after restart, none lost", async (t) => {
  const { fake, client, spoolDir, errors } = await startHarness(t, {
    watchConfig: false,
    ackTimeoutMs: 1000,
  });
  const sessions = ["s1", "s2", "s3", "s4"];
  let i = 0;
  const captureSome = (): void => {
    for (let k = 0; k < 20; k++, i++)
      client.capture({ sessionId: sessions[i % 4]!, payload: customPayload(i) });
  };
  const ticker = setInterval(captureSome, 5);
  t.after(() => clearInterval(ticker));
  await sleep(500);
  fake.stop();
  const capturedAtStop = i;
  await sleep(2000);
  assert.ok(client.stats().spooled > 0, "events captured while ingest was down went to the spool");
  await fake.restart();
  await sleep(1000);
  clearInterval(ticker);
  const result = await client.flush(10_000);
  assert.equal(result.complete, true, JSON.stringify(client.stats()));
  assert.ok(i > capturedAtStop + 1000, `kept capturing while down (${capturedAtStop} → ${i})`);

  const stats = client.stats();
  assert.equal(stats.captured, i);
  assert.equal(stats.acked, i);
  assert.equal(fake.stored.size, i, "every captured event is stored once");
  assert.ok(stats.replayed > 0);
  assert.equal(stats.dropped + stats.rejected, 0);
  for (const sessionId of sessions) {
    assert.deepEqual(
      sessionEvents(fake, sessionId).map((e) => e.seq),
      Array.from({ length: i / 4 }, (_, k) => k + 1),
      `session ${sessionId} has no gap`,
    );
  }
  // Capture order survives the outage: each session's events first reached ingest in seq order.
  const firstArrival = new Map<string, number>();
  fake.receivedIds.forEach((id, at) => firstArrival.has(id) || firstArrival.set(id, at));
  for (const sessionId of sessions) {
    const arrivals = sessionEvents(fake, sessionId).map((e) => firstArrival.get(e.eventId)!);
    assert.ok(
      arrivals.every((at, k) => k === 0 || at > arrivals[k - 1]!),
      `session ${sessionId} arrived in order`,
    );
  }
  t.diagnostic(
    `captured=${i} spooled=${stats.spooled} replayed=${stats.replayed} wire duplicates=${fake.duplicatesReceived} reported duplicates=${stats.duplicates}`,
  );
  assert.equal(stats.duplicates, fake.duplicatesReceived);
  assert.ok(
    errors.some((e) => /ended|ack/.test(e.message)),
    "the outage was reported through onError",
  );
  await client.close(2000);
  assert.deepEqual(readdirSync(spoolDir), [], "spool files are deleted once acked");
});

test("slow acks (> ackTimeoutMs) spool instead of blocking, and deliver once ingest is fast again", async (t) => {
  const { fake, client } = await startHarness(t, { watchConfig: false, ackTimeoutMs: 200 });
  fake.ackDelayMs = 1500;
  const started = process.hrtime.bigint();
  for (let i = 0; i < 200; i++) client.capture({ sessionId: "slow", payload: customPayload(i) });
  const captureMs = Number(process.hrtime.bigint() - started) / 1e6;
  assert.ok(captureMs < 100, `200 captures took ${captureMs} ms while ingest was slow`);
  await fake.waitFor(() => client.stats().spooled >= 200, 3000, "events spooled after the ack timeout");
  fake.ackDelayMs = 0;
  const result = await client.flush(10_000);
  assert.equal(result.complete, true);
  assert.deepEqual(
    sessionEvents(fake, "slow").map((e) => e.seq),
    Array.from({ length: 200 }, (_, k) => k + 1),
  );
});

test("a new client on the same spool directory replays what an earlier one spooled, with the same ids", async (t) => {
  const h = await startHarness(t, { watchConfig: false });
  h.fake.stop();
  const ids: string[] = [];
  for (let i = 0; i < 120; i++) {
    const eventId = uuidv7();
    ids.push(eventId);
    h.client.capture({ sessionId: `r${i % 3}`, eventId, payload: customPayload(i) });
  }
  await h.client.close(300);
  assert.equal(h.client.stats().spooled, 120);
  assert.ok(readdirSync(h.spoolDir).some((name) => name.endsWith(".spool")));

  await h.fake.restart();
  const second = h.newClient();
  await h.fake.waitFor(() => h.fake.stored.size === 120, 5000, "replay of the earlier spool");
  assert.deepEqual([...h.fake.stored.keys()].sort(), [...ids].sort());
  await h.fake.waitFor(() => second.stats().replayed === 120, 2000, "replayed count");
  assert.equal(second.stats().acked, 120);
  await second.close(2000);
  assert.deepEqual(readdirSync(h.spoolDir), []);
});

test("a full spool drops the newest events, counts each and calls onDrop", async (t) => {
  const { fake, client, drops } = await startHarness(t, { watchConfig: false, spoolMaxBytes: 8 * 1024 });
  fake.stop();
  for (let i = 0; i < 200; i++) client.capture({ sessionId: "full", payload: customPayload(i, 200) });
  const result = await client.flush(300);
  const stats = client.stats();
  assert.equal(result.timedOut, true);
  assert.ok(stats.dropped > 0 && stats.spooled > 0, JSON.stringify(stats));
  assert.equal(stats.dropped + stats.spooled, 200);
  assert.ok(stats.spoolBytes <= 8 * 1024);
  assert.equal(
    drops.filter((d) => d.reason === "spool_full").reduce((n, d) => n + d.count, 0),
    stats.dropped,
  );
  await fake.restart();
  assert.equal((await client.flush(5000)).complete, true);
  // The oldest events were kept: what is stored is exactly seq 1..spooled.
  assert.deepEqual(
    sessionEvents(fake, "full").map((e) => e.seq),
    Array.from({ length: stats.spooled }, (_, k) => k + 1),
  );
});

test("while ingest refuses for now, each retry sends one small probe batch, not the whole backlog", async (t) => {
  const { fake, client } = await startHarness(t, { watchConfig: false, ackTimeoutMs: 1000 });
  const batchSizes: number[] = [];
  let refusing = true;
  fake.rejectPolicy = (request) => {
    batchSizes.push(request.events.length);
    return refusing ? { code: 14, message: "ingest is busy", retryable: true } : undefined;
  };
  const total = 2000;
  for (let i = 0; i < total; i++) client.capture({ sessionId: `probe-${i % 10}`, payload: customPayload(i) });
  await fake.waitFor(() => batchSizes.length >= 3, 10_000, "three attempts while ingest refuses");
  const duringOutage = batchSizes.length;
  assert.ok(
    batchSizes.every((n) => n >= 1 && n <= 64),
    `every attempt while refused was one small batch: ${batchSizes.join(",")}`,
  );
  await fake.waitFor(() => client.stats().spooled > 0, 2000, "the backlog waiting in the spool");

  refusing = false;
  assert.equal((await client.flush(15_000)).complete, true, JSON.stringify(client.stats()));
  assert.equal(fake.stored.size, total, "every event is stored once the probe is acked");
  assert.ok(Math.max(...batchSizes.slice(duringOutage)) > 64, "after the first ack, full batches flow again");
});
