import assert from "node:assert/strict";
import { test } from "node:test";
import { EndReason, Role } from "@sessiontrack/proto";
import { customPayload, sessionEvents, sleep, startHarness } from "./testing/harness.js";
import { uuidv7Time } from "./uuidv7.js";

const UUID_V7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

test("delivers every event with a UUIDv7 id, per-session seq from 1, time and bot id", async (t) => {
  const { fake, client } = await startHarness(t);
  const sessions = ["s-a", "s-b", "s-c"];
  const before = Date.now();
  for (let i = 0; i < 1500; i++) client.capture({ sessionId: sessions[i % 3]!, payload: customPayload(i) });
  const result = await client.flush(5000);
  assert.deepEqual(result, { complete: true, pendingEvents: 0, timedOut: false });
  assert.equal(fake.stored.size, 1500);
  for (const sessionId of sessions) {
    const events = sessionEvents(fake, sessionId);
    assert.deepEqual(
      events.map((e) => e.seq),
      Array.from({ length: 500 }, (_, i) => i + 1),
    );
    for (const e of events) {
      assert.match(e.eventId, UUID_V7);
      assert.equal(e.botId, "test-bot");
      assert.ok(e.time !== undefined && e.time.getTime() >= before - 1000 && e.time.getTime() <= Date.now());
    }
  }
  const stats = client.stats();
  assert.equal(stats.captured, 1500);
  assert.equal(stats.acked, 1500);
  assert.equal(stats.inFlight, 0);
  assert.equal(stats.queueDepth, 0);
  assert.equal(stats.spooled, 0);
  assert.equal(stats.dropped + stats.rejected, 0);
});

test("session helper fills turns, roles, providers, user, labels and the end", async (t) => {
  const { fake, client } = await startHarness(t);
  const session = client.session("conv-1", {
    userId: "user-7",
    userGroups: ["beta"],
    labels: { env: "test" },
  });
  assert.equal(session.captured, true);
  session.start({ channel: "web", locale: "en-GB" });
  session.userMessage("What's the weather?");
  session.assistantMessage({
    provider: "openai",
    model: "gpt-4o",
    toolCalls: [{ callId: "c1", name: "weather", argumentsJson: '{"city":"Oslo"}' }],
    usage: { inputTokens: 12, outputTokens: 5 },
    latencyMs: 340,
    finishReason: "tool_calls",
  });
  session.toolResult({ callId: "c1", name: "weather", content: '{"temp":3}' });
  session.assistantMessage({ text: "3 °C in Oslo.", provider: "anthropic", model: "claude-sonnet-4" });
  session.feedback({ score: 1, kind: "thumbs" });
  session.custom("retrieval", { docs: 2, source: "kb" });
  session.end(EndReason.END_REASON_USER_LEFT);
  await client.flush(5000);

  const events = sessionEvents(fake, "conv-1");
  assert.deepEqual(
    events.map((e) => [e.seq, e.payload?.$case]),
    [
      [1, "sessionStart"],
      [2, "message"],
      [3, "message"],
      [4, "message"],
      [5, "message"],
      [6, "feedback"],
      [7, "custom"],
      [8, "sessionEnd"],
    ],
  );
  for (const e of events) {
    assert.equal(e.userId, "user-7");
    assert.deepEqual(e.labels, { env: "test" });
  }
  const start = events[0]!.payload;
  assert.deepEqual(start, {
    $case: "sessionStart",
    value: { channel: "web", locale: "en-GB", userGroups: ["beta"], attributes: {} },
  });
  const messages = events.flatMap((e) => (e.payload?.$case === "message" ? [e.payload.value] : []));
  assert.deepEqual(
    messages.map((m) => [m.role, m.turnIndex, m.provider, m.model]),
    [
      [Role.ROLE_USER, 0, "", ""],
      [Role.ROLE_ASSISTANT, 0, "openai", "gpt-4o"],
      [Role.ROLE_TOOL, 0, "", ""],
      [Role.ROLE_ASSISTANT, 0, "anthropic", "claude-sonnet-4"],
    ],
  );
  assert.equal(new Set(messages.map((m) => m.turnId)).size, 1);
  assert.deepEqual(messages[1]!.parts[0]!.kind, {
    $case: "toolCall",
    value: { callId: "c1", name: "weather", argumentsJson: '{"city":"Oslo"}' },
  });
  assert.deepEqual(messages[1]!.usage, { inputTokens: 12, outputTokens: 5 });
  assert.equal(messages[1]!.latencyMs, 340);
  assert.deepEqual(messages[2]!.parts[0]!.kind, {
    $case: "toolResult",
    value: { callId: "c1", name: "weather", content: '{"temp":3}', isError: false },
  });
  assert.deepEqual(events[5]!.payload, {
    $case: "feedback",
    value: { score: 1, kind: "thumbs", comment: "", targetEventId: "" },
  });
  assert.deepEqual(events[6]!.payload, {
    $case: "custom",
    value: { name: "retrieval", data: { docs: 2, source: "kb" } },
  });
  assert.deepEqual(events[7]!.payload, {
    $case: "sessionEnd",
    value: { reason: EndReason.END_REASON_USER_LEFT, turnCount: 1 },
  });
});

test("recorder calls are encoded later, as they were made: turns, a session id reused after end(), ids dated at the call", async (t) => {
  const { fake, client } = await startHarness(t, { flushIntervalMs: 60_000, watchConfig: false });
  const first = client.session("reuse", { userId: "u-1" });
  first.start();
  const calledFrom = Date.now();
  first.userMessage("where is my parcel?");
  first.assistantMessage({ text: "on its way", provider: "openai", model: "gpt-4o-mini" });
  first.userMessage("thanks");
  const calledTo = Date.now();
  first.end();
  // The same id again before anything was encoded: a new session, numbered from 1.
  const second = client.session("reuse", { userId: "u-2" });
  second.assistantMessage({ text: "hello again", provider: "openai", model: "gpt-4o-mini" });
  second.end();
  await sleep(100);
  assert.equal(fake.stored.size, 0, "nothing is sent before the flush interval");
  assert.equal((await client.flush(5000)).complete, true);

  const events = sessionEvents(fake, "reuse");
  const ofUser = (userId: string) => events.filter((e) => e.userId === userId);
  const kinds = (list: typeof events) => list.map((e) => [e.seq, e.payload?.$case]);
  assert.deepEqual(kinds(ofUser("u-1")), [
    [1, "sessionStart"],
    [2, "message"],
    [3, "message"],
    [4, "message"],
    [5, "sessionEnd"],
  ]);
  assert.deepEqual(kinds(ofUser("u-2")), [
    [1, "message"],
    [2, "sessionEnd"],
  ]);
  const messages = [...ofUser("u-1"), ...ofUser("u-2")].flatMap((e) =>
    e.payload?.$case === "message" ? [e.payload.value] : [],
  );
  const [ask, answer, thanks, hello] = messages;
  assert.deepEqual(
    [ask, answer, thanks, hello].map((m) => m!.turnIndex),
    [0, 0, 1, 0],
  );
  assert.equal(ask!.turnId, answer!.turnId);
  assert.notEqual(thanks!.turnId, ask!.turnId);
  assert.notEqual(hello!.turnId, ask!.turnId);
  for (const m of [ask, thanks]) {
    const at = uuidv7Time(m!.turnId);
    assert.ok(
      at >= calledFrom && at <= calledTo,
      `turn id dated ${at}, called in ${calledFrom}..${calledTo}`,
    );
  }
  for (const e of ofUser("u-1").slice(1, 4)) {
    const at = e.time!.getTime();
    assert.ok(at >= calledFrom && at <= calledTo, `event time ${at}, called in ${calledFrom}..${calledTo}`);
  }
  assert.deepEqual(
    [...ofUser("u-1"), ...ofUser("u-2")].flatMap((e) =>
      e.payload?.$case === "sessionEnd" ? [e.payload.value.turnCount] : [],
    ),
    [2, 1],
  );
});

test("close() acks everything first, then capture() drops with reason closed; close is idempotent", async (t) => {
  const { fake, client, drops } = await startHarness(t);
  for (let i = 0; i < 300; i++) client.capture({ sessionId: "s", payload: customPayload(i) });
  await client.close(5000);
  assert.equal(fake.stored.size, 300);
  client.capture({ sessionId: "s", payload: customPayload(301) });
  assert.deepEqual(drops, [{ count: 1, reason: "closed" }]);
  assert.equal(client.stats().dropped, 1);
  await client.close(5000);
});

test("flush() with ingest down times out with the pending events spooled, and never rejects", async (t) => {
  const { fake, client } = await startHarness(t, { watchConfig: false });
  fake.stop();
  for (let i = 0; i < 40; i++) client.capture({ sessionId: "s", payload: customPayload(i) });
  const result = await client.flush(300);
  assert.deepEqual(result, { complete: false, pendingEvents: 40, timedOut: true });
  const stats = client.stats();
  assert.equal(stats.spooled, 40);
  assert.equal(stats.queueDepth, 0);
  assert.ok(stats.spoolBytes > 40 * 100, `spoolBytes ${stats.spoolBytes}`);
});

test("stats() reports capture cost and config state", async (t) => {
  const { client } = await startHarness(t, { watchConfig: false });
  for (let i = 0; i < 640; i++) client.capture({ sessionId: `s${i % 7}`, payload: customPayload(i, 10) });
  const stats = client.stats();
  assert.ok(stats.captureCallUsP50 > 0 && stats.captureCallUsP99 >= stats.captureCallUsP50);
  assert.equal(stats.captureEnabled, true);
  assert.equal(stats.configRevision, "");
  assert.equal(client.config, undefined);
  await client.flush(5000);
});

test("large events are split into batches under gRPC's 4 MiB message limit", async (t) => {
  const { fake, client, errors } = await startHarness(t, { watchConfig: false });
  for (let i = 0; i < 12; i++) client.capture({ sessionId: "big", payload: customPayload(i, 600 * 1024) });
  assert.equal((await client.flush(10_000)).complete, true, errors.map((e) => e.message).join("; "));
  assert.equal(sessionEvents(fake, "big").length, 12);
  assert.ok(fake.batchesAcked >= 3, `${fake.batchesAcked} batches`);
});

test("onAck reports the id of every acknowledged event exactly once", async (t) => {
  const acked: string[] = [];
  const { fake, client } = await startHarness(t, { onAck: (ids) => acked.push(...ids) });
  for (let i = 0; i < 700; i++) client.capture({ sessionId: `s-${i % 7}`, payload: customPayload(i) });
  await client.flush(5000);
  assert.equal(acked.length, 700);
  assert.deepEqual(new Set(acked), new Set(fake.stored.keys()));
});
