import assert from "node:assert/strict";
import { test } from "node:test";
import { InvalidEventError } from "@sessiontrack/errors";
import type { CaptureInput } from "./types.js";
import { FakeIngest } from "./testing/fake-ingest.js";
import { captureConfig, customPayload, sessionEvents, startHarness } from "./testing/harness.js";

const config = captureConfig;

test("WatchConfig disable stops capture within 2 s; queued events still arrive; re-enable resumes", async (t) => {
  const fake = await FakeIngest.start({ config: config("r1") });
  const { client } = await startHarness(t, {}, fake);
  await fake.waitFor(() => client.config?.revision === "r1", 2000, "first config");
  assert.equal(fake.watchers[0]?.botId, "test-bot");
  for (let i = 0; i < 10; i++) client.capture({ sessionId: "k", payload: customPayload(i) });

  const sentAt = Date.now();
  fake.pushConfig(config("r2", { enabled: false }));
  await fake.waitFor(() => !client.stats().captureEnabled, 2000, "capture disabled");
  const tookMs = Date.now() - sentAt;
  assert.ok(tookMs < 2000, `disable took ${tookMs} ms`);
  for (let i = 10; i < 20; i++) client.capture({ sessionId: "k", payload: customPayload(i) });
  assert.equal(client.stats().disabledSkipped, 10);
  assert.equal(client.stats().configRevision, "r2");
  await client.flush(5000);
  assert.equal(sessionEvents(fake, "k").length, 10, "events queued before the disable were delivered");

  fake.pushConfig(config("r3"));
  await fake.waitFor(() => client.stats().captureEnabled, 2000, "capture re-enabled");
  client.capture({ sessionId: "k", payload: customPayload(99) });
  await client.flush(5000);
  assert.deepEqual(
    sessionEvents(fake, "k").map((e) => e.seq),
    Array.from({ length: 11 }, (_, k) => k + 1),
  );
});

test("sampling follows the config: rate 0 skips sessions, a cohort rule brings a group back", async (t) => {
  const fake = await FakeIngest.start({
    config: config("r1", {
      sampleRate: 0,
      cohorts: [{ name: "beta", botIds: [], userGroups: ["beta"], sampleRate: 1 }],
    }),
  });
  const { client } = await startHarness(t, {}, fake);
  await fake.waitFor(() => client.config?.revision === "r1", 2000, "config");
  const plain = client.session("plain-user");
  const beta = client.session("beta-user", { userGroups: ["beta"] });
  assert.equal(plain.captured, false);
  assert.equal(beta.captured, true);
  plain.start();
  plain.userMessage("hi");
  beta.start();
  beta.userMessage("hi");
  await client.flush(5000);
  assert.equal(client.stats().sampledOut, 2);
  assert.equal(sessionEvents(fake, "plain-user").length, 0);
  assert.equal(sessionEvents(fake, "beta-user").length, 2);
});

test("a non-retryable rejection loses only the bad event: counted, onDrop and onError", async (t) => {
  const { fake, client, drops, errors } = await startHarness(t, { watchConfig: false });
  fake.rejectPolicy = (request) => {
    const index = request.events.findIndex((e) => e.sessionId === "bad");
    if (index < 0) return undefined;
    return { code: 3, message: `events[${index}].session_id: not allowed`, retryable: false };
  };
  for (let i = 0; i < 20; i++)
    client.capture({ sessionId: i === 7 ? "bad" : "good", payload: customPayload(i) });
  assert.equal((await client.flush(5000)).complete, true);
  assert.equal(sessionEvents(fake, "good").length, 19);
  const stats = client.stats();
  assert.equal(stats.rejected, 1);
  assert.equal(stats.acked, 19);
  assert.deepEqual(drops, [{ count: 1, reason: "rejected" }]);
  assert.ok(
    errors.some((e) => e instanceof InvalidEventError && e.message.includes("session_id: not allowed")),
  );
});

test("a retryable rejection (storage full) spools, backs off and delivers later", async (t) => {
  const { fake, client } = await startHarness(t, { watchConfig: false });
  let refusals = 3;
  fake.rejectPolicy = () =>
    refusals-- > 0 ? { code: 8, message: "wal disk full", retryable: true } : undefined;
  for (let i = 0; i < 50; i++) client.capture({ sessionId: "retry", payload: customPayload(i) });
  assert.equal((await client.flush(5000)).complete, true);
  const stats = client.stats();
  assert.equal(stats.rejected, 0);
  assert.ok(stats.spooled >= 50);
  assert.deepEqual(
    sessionEvents(fake, "retry").map((e) => e.seq),
    Array.from({ length: 50 }, (_, k) => k + 1),
  );
});

test("capture() never throws on garbage; bad or oversized events are counted as rejected and reported", async (t) => {
  const { fake, client, drops, errors } = await startHarness(t, { watchConfig: false });
  const circular: Record<string, unknown> = { name: "loop" };
  circular["self"] = circular;
  const garbage: unknown[] = [
    undefined,
    null,
    {},
    { sessionId: "", payload: customPayload(1) },
    { sessionId: "g", payload: null },
    { sessionId: "g", payload: { $case: "custom", value: { name: "c", data: circular } } },
    { sessionId: "g", payload: customPayload(2, 1100 * 1024) },
    { sessionId: "g", seq: -1, payload: customPayload(3) },
    { sessionId: "g", time: new Date(Number.NaN), payload: customPayload(4) },
    { sessionId: "g", time: "yesterday", payload: customPayload(5) },
  ];
  for (const input of garbage) assert.doesNotThrow(() => client.capture(input as CaptureInput));
  // Missing fields inside a payload are proto3 defaults, not errors.
  client.capture({
    sessionId: "g",
    userId: undefined as unknown as string,
    payload: { $case: "message", value: {} },
  });
  await client.flush(5000);
  const stats = client.stats();
  assert.equal(stats.rejected, garbage.length);
  assert.equal(errors.filter((e) => e instanceof InvalidEventError).length, garbage.length);
  assert.equal(drops.filter((d) => d.reason === "rejected").length, garbage.length);
  assert.equal(sessionEvents(fake, "g").length, 1);
});

test("onDrop and onError that throw do not reach the bot", async (t) => {
  const { fake, client } = await startHarness(t, {
    watchConfig: false,
    onDrop: () => {
      throw new Error("bad callback");
    },
    onError: () => {
      throw new Error("bad callback");
    },
  });
  assert.doesNotThrow(() => client.capture(undefined as unknown as CaptureInput));
  client.capture({ sessionId: "ok", payload: customPayload(1) });
  await client.flush(5000);
  assert.equal(fake.stored.size, 1);
});
