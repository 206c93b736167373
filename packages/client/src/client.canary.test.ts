import assert from "node:assert/strict";
import { test } from "node:test";
import { inCanaryCohort } from "@sessiontrack/cohort";
import { StreamRequest, type CanaryRoute, type CaptureConfig } from "@sessiontrack/proto";
import { FakeIngest } from "./testing/fake-ingest.js";
import { captureConfig, customPayload, sessionEvents, startHarness } from "./testing/harness.js";
import { serializeEncodedBatch } from "./wire.js";

const WEIGHT = 30;
const SESSIONS = 120;

function config(revision: string, canary?: CanaryRoute): CaptureConfig {
  return captureConfig(revision, { canary });
}

function route(address: string, weightPercent = WEIGHT, component = "ingest"): CanaryRoute {
  return { component, revision: "ingest-rev-2", weightPercent, address };
}

/** Three events for each of `SESSIONS` sessions, numbered from `first`. */
function captureSessions(
  client: { capture(input: { sessionId: string; payload: ReturnType<typeof customPayload> }): void },
  round: number,
): void {
  for (let s = 0; s < SESSIONS; s++) {
    for (let i = 0; i < 3; i++)
      client.capture({ sessionId: `session-${s}`, payload: customPayload(round * 10 + i) });
  }
}

test("an ingest canary route sends its sticky cohort to the canary and the rest to stable; withdrawing it sends everything to stable", async (t) => {
  const stable = await FakeIngest.start({ config: config("r1") });
  const canary = await FakeIngest.start();
  t.after(() => canary.stop());
  const { client, errors } = await startHarness(t, {}, stable);
  await stable.waitFor(() => client.config?.revision === "r1", 2000, "first config");
  // Sessions already running when the route appears keep their lane (stable) for life.
  for (let s = 0; s < 40; s++) client.capture({ sessionId: `early-${s}`, payload: customPayload(s) });

  stable.pushConfig(config("r2", route(canary.target)));
  await stable.waitFor(() => client.config?.revision === "r2", 2000, "config with the route");
  for (let s = 0; s < 40; s++) client.capture({ sessionId: `early-${s}`, payload: customPayload(100 + s) });
  captureSessions(client, 0);
  assert.equal((await client.flush(5000)).complete, true);

  let inCanary = 0;
  for (let s = 0; s < SESSIONS; s++) {
    const id = `session-${s}`;
    const cohort = inCanaryCohort(id, WEIGHT);
    if (cohort) inCanary++;
    assert.equal(sessionEvents(canary, id).length, cohort ? 3 : 0, `${id} at the canary`);
    assert.equal(sessionEvents(stable, id).length, cohort ? 0 : 3, `${id} at stable`);
  }
  assert.ok(inCanary > 10 && inCanary < 70, `a ${WEIGHT}% cohort of ${SESSIONS} sessions has ${inCanary}`);
  for (let s = 0; s < 40; s++) {
    assert.equal(sessionEvents(stable, `early-${s}`).length, 2, `early-${s} stayed on stable`);
    assert.equal(sessionEvents(canary, `early-${s}`).length, 0);
  }

  // Rollback: the next config has no route; the cohort's later events go to stable.
  stable.pushConfig(config("r3"));
  await stable.waitFor(() => client.config?.revision === "r3", 2000, "config without the route");
  captureSessions(client, 1);
  assert.equal((await client.flush(5000)).complete, true);
  for (let s = 0; s < SESSIONS; s++) {
    const id = `session-${s}`;
    const cohort = inCanaryCohort(id, WEIGHT);
    assert.equal(sessionEvents(canary, id).length, cohort ? 3 : 0, `${id}: nothing new at the canary`);
    assert.equal(sessionEvents(stable, id).length, cohort ? 3 : 6, `${id}: later events at stable`);
  }
  assert.deepEqual(errors, []);
  assert.equal(client.stats().acked, SESSIONS * 6 + 80);
});

test("a canary that is down strands nothing: the cohort spools, and a withdrawn route delivers it to stable", async (t) => {
  const stable = await FakeIngest.start({ config: config("r1") });
  const canary = await FakeIngest.start();
  const canaryTarget = canary.target;
  canary.stop();
  const { client } = await startHarness(t, { ackTimeoutMs: 300 }, stable);
  stable.pushConfig(config("r2", route(canaryTarget)));
  await stable.waitFor(() => client.config?.revision === "r2", 2000, "config with the route");
  captureSessions(client, 0);
  const first = await client.flush(1500);
  assert.equal(first.complete, false, "the canary's cohort cannot be acked while it is down");
  assert.ok(client.stats().spooled > 0, "the cohort's events went to the canary lane's spool");

  stable.pushConfig(config("r3"));
  await stable.waitFor(() => client.config?.revision === "r3", 2000, "config without the route");
  assert.equal((await client.flush(5000)).complete, true);
  for (let s = 0; s < SESSIONS; s++) {
    assert.equal(sessionEvents(stable, `session-${s}`).length, 3, `session-${s} at stable`);
  }
  const stats = client.stats();
  assert.equal(stats.dropped, 0);
  assert.equal(stats.spoolBytes, 0);
});

test("routes for index or archive, weight 0 or no address leave every session on stable", async (t) => {
  const stable = await FakeIngest.start({ config: config("r1") });
  const canary = await FakeIngest.start();
  t.after(() => canary.stop());
  const { client } = await startHarness(t, {}, stable);
  const ignored: CanaryRoute[] = [
    route(canary.target, WEIGHT, "index"),
    route(canary.target, WEIGHT, "archive"),
    route(canary.target, 0),
    route("", WEIGHT),
  ];
  for (const [i, r] of ignored.entries()) {
    stable.pushConfig(config(`r${i + 2}`, r));
    await stable.waitFor(() => client.config?.revision === `r${i + 2}`, 2000, `config ${i + 2}`);
    captureSessions(client, i);
  }
  assert.equal((await client.flush(5000)).complete, true);
  assert.equal(canary.receivedIds.length, 0);
  assert.equal(stable.stored.size, SESSIONS * 3 * ignored.length);
});

test("the SDK reports its measured overhead to ingest once per window as capture_overhead_pct", async (t) => {
  const { fake, client } = await startHarness(t, { watchConfig: false, flushIntervalMs: 50 });
  const until = Date.now() + 2500;
  let i = 0;
  while (Date.now() < until && fake.overheadReports.length === 0) {
    // The bot's own work between captures: a window where the process barely ran is not reported.
    const busyUntil = performance.now() + 6;
    while (performance.now() < busyUntil);
    for (let k = 0; k < 20; k++) client.capture({ sessionId: "metered", payload: customPayload(i++) });
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  await client.flush(5000);
  assert.ok(fake.overheadReports.length > 0, "at least one window closed and was reported");
  for (const pct of fake.overheadReports) assert.ok(pct > 0 && pct <= 100, `report ${pct}`);
  // At most one report per second of capture: the field rides on one batch per window.
  assert.ok(fake.overheadReports.length <= Math.ceil((Date.now() - until + 2500) / 1000) + 1);
});

test("serializeEncodedBatch writes capture_overhead_pct as field 3 only when set", () => {
  const frame = new Uint8Array([10, 1, 65]);
  const withReport = StreamRequest.decode(
    serializeEncodedBatch({ batchSeq: 7, frames: [frame], overheadPct: 2.75 }),
  );
  assert.equal(withReport.batchSeq, 7);
  assert.equal(withReport.events.length, 1);
  assert.equal(withReport.captureOverheadPct, 2.75);
  const plain = serializeEncodedBatch({ batchSeq: 7, frames: [frame] });
  assert.equal(StreamRequest.decode(plain).captureOverheadPct, 0);
  assert.equal(plain.length, serializeEncodedBatch({ batchSeq: 7, frames: [frame], overheadPct: 0 }).length);
});
