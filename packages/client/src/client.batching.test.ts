import assert from "node:assert/strict";
import { test } from "node:test";
import { customPayload, sleep, startHarness } from "./testing/harness.js";
import { uuidv7Time } from "./uuidv7.js";

async function waitFor(what: string, condition: () => boolean, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

test("a full batch (batchMaxEvents) is sent at once; the rest waits for the flush interval", async (t) => {
  const { fake, client } = await startHarness(t, {
    watchConfig: false,
    flushIntervalMs: 60_000,
    batchMaxEvents: 10,
  });
  for (let i = 0; i < 25; i++) client.capture({ sessionId: "size", payload: customPayload(i) });
  await waitFor("two full batches", () => fake.stored.size === 20);
  assert.equal(fake.batchesAcked, 2);
  // stats() of a worker client is its worker's last report, up to half a second old.
  await waitFor("the rest counted as queued", () => client.stats().queueDepth === 5);
  assert.equal((await client.flush(5000)).complete, true);
  assert.equal(fake.stored.size, 25);
  assert.equal(fake.batchesAcked, 3);
});

test("a batch of batchMaxBytes is sent at once", async (t) => {
  const { fake, client } = await startHarness(t, {
    watchConfig: false,
    flushIntervalMs: 60_000,
    batchMaxBytes: 4096,
  });
  // ~1.1 KiB each: the fourth one crosses 4 KiB.
  for (let i = 0; i < 4; i++) client.capture({ sessionId: "bytes", payload: customPayload(i, 1000) });
  await waitFor("the byte-full batch", () => fake.stored.size === 4);
  assert.equal(fake.batchesAcked, 1);
});

test("a partial batch goes out after flushIntervalMs without a flush() call", async (t) => {
  const { fake, client } = await startHarness(t, { watchConfig: false, flushIntervalMs: 150 });
  client.capture({ sessionId: "delay", payload: customPayload(1) });
  client.capture({ sessionId: "delay", payload: customPayload(2) });
  client.capture({ sessionId: "delay", payload: customPayload(3) });
  assert.equal(client.stats().queueDepth, 3);
  await waitFor("the timed batch", () => fake.stored.size === 3, 2000);
  assert.equal(fake.batchesAcked, 1);
});

test("an ack does not send a partial batch early: acks do not turn into many tiny batches", async (t) => {
  const { fake, client } = await startHarness(t, {
    watchConfig: false,
    flushIntervalMs: 60_000,
    batchMaxEvents: 5,
  });
  for (let i = 0; i < 5; i++) client.capture({ sessionId: "acks", payload: customPayload(i) });
  client.capture({ sessionId: "acks", payload: customPayload(5) });
  await waitFor("the full batch", () => fake.stored.size === 5);
  await waitFor("the sixth event counted as queued", () => client.stats().queueDepth === 1);
  await sleep(100);
  assert.equal(client.stats().queueDepth, 1);
  assert.equal(fake.batchesAcked, 1);
  assert.equal((await client.flush(5000)).complete, true);
  assert.equal(fake.stored.size, 6);
});

test("batchMaxBytes must be a positive number", async (t) => {
  const harness = await startHarness(t, { watchConfig: false });
  assert.throws(() => harness.newClient({ batchMaxBytes: 0 }), /batchMaxBytes must be a positive number/);
});

test("event ids are stamped with the capture time and increase in capture order, though encoded later", async (t) => {
  const { fake, client } = await startHarness(t, { watchConfig: false, flushIntervalMs: 300 });
  const times: number[] = [];
  for (let i = 0; i < 20; i++) {
    times.push(Date.now());
    client.capture({ sessionId: "ids", payload: customPayload(i) });
    await sleep(5);
  }
  assert.equal((await client.flush(5000)).complete, true);
  const events = [...fake.stored.values()].sort((a, b) => a.seq - b.seq);
  assert.equal(events.length, 20);
  events.forEach((e, i) => {
    const idMs = uuidv7Time(e.eventId);
    assert.ok(idMs >= times[i]! && idMs <= times[i]! + 50, `id ms ${idMs} vs captured at ${times[i]}`);
    if (i > 0) assert.ok(events[i - 1]!.eventId < e.eventId);
  });
});

test("over its CPU budget the client sends later, not never: a late-taken event goes out without a flush() call", async (t) => {
  // A budget no work fits in: after the first one-second window every send is deferred.
  const { fake, client } = await startHarness(t, {
    watchConfig: false,
    flushIntervalMs: 5,
    cpuBudgetPct: 1e-9,
  });
  const startedAt = Date.now();
  for (let i = 0; Date.now() - startedAt < 1500; i++) {
    client.capture({ sessionId: "busy", payload: customPayload(i) });
    await sleep(20);
  }
  await waitFor(
    "the events captured while deferring",
    () => fake.stored.size === client.stats().captured,
    3000,
  );
  // The bot blocks its event loop right after a capture: the call is taken long after it
  // was made, already due, while sends are deferred. It must still go out on its own.
  client.capture({ sessionId: "late", payload: customPayload(1) });
  const blockedUntil = Date.now() + 200;
  while (Date.now() < blockedUntil) {
    // busy, as a bot doing synchronous work
  }
  await waitFor(
    "the late-taken event",
    () => [...fake.stored.values()].some((e) => e.sessionId === "late"),
    3000,
  );
});
