import assert from "node:assert/strict";
import { test } from "node:test";

import { histogramQuantile, judge, measure, parsePrometheusText } from "./analysis.js";
import { buildCaptureDocument } from "./capture.js";
import { WorkQueue } from "./queue.js";
import { parseDuration, parseSessionStoreSpec } from "./spec.js";
import { settleConditions } from "./status.js";
import { indexMetrics, ingestMetrics, silentLogger } from "./test-support.js";

test("work queue: dedupes waiting keys, never runs one key twice at once, reruns a key added while it ran", async () => {
  const runs: string[] = [];
  let active = 0;
  let maxActivePerKey = 0;
  const running = new Map<string, number>();
  let release: (() => void) | undefined;
  const queue = new WorkQueue(
    async (key) => {
      runs.push(key);
      active += 1;
      running.set(key, (running.get(key) ?? 0) + 1);
      maxActivePerKey = Math.max(maxActivePerKey, running.get(key) ?? 0);
      if (key === "a" && runs.filter((k) => k === "a").length === 1)
        await new Promise<void>((r) => (release = r));
      running.set(key, (running.get(key) ?? 1) - 1);
      active -= 1;
    },
    { concurrency: 4, baseBackoffMs: 5, maxBackoffMs: 50 },
    silentLogger,
  );
  queue.add("a");
  queue.add("b");
  queue.add("b");
  queue.start();
  await new Promise((r) => setTimeout(r, 20));
  queue.add("a"); // while "a" runs: runs once more afterwards
  queue.add("a");
  release?.();
  await queue.idle();
  assert.deepEqual(runs.sort(), ["a", "a", "b"]);
  assert.equal(maxActivePerKey, 1);
  assert.equal(active, 0);
});

test("work queue: a failing key is retried with growing backoff until it succeeds", async () => {
  const attempts: number[] = [];
  const queue = new WorkQueue(
    () => {
      attempts.push(Date.now());
      if (attempts.length < 4) return Promise.reject(new Error("transient"));
      return Promise.resolve();
    },
    { concurrency: 1, baseBackoffMs: 20, maxBackoffMs: 1000 },
    silentLogger,
  );
  queue.start();
  queue.add("k");
  while (attempts.length < 4) await new Promise((r) => setTimeout(r, 10));
  const gaps = attempts.slice(1).map((at, i) => at - (attempts[i] ?? at));
  assert.ok((gaps[0] ?? 0) >= 9, `first retry waits at least half the base backoff (${gaps.join(",")})`);
  assert.ok((gaps[2] ?? 0) >= 39, `third retry waits at least half of 4x the base (${gaps.join(",")})`);
  await queue.close();
});

test("analysis: parses prom-client text, computes p95 and judges error rate, latency and overhead", () => {
  const samples = parsePrometheusText(ingestMetrics(100, 3, 8));
  assert.ok(
    samples.some((sample) => sample.name === "sessiontrack_ingest_batches_total" && sample.value === 100),
  );
  const buckets = new Map<number, number>([
    [0.01, 90],
    [0.02, 100],
    [Infinity, 100],
  ]);
  const p95 = histogramQuantile(0.95, buckets) ?? 0;
  assert.ok(p95 > 0.01 && p95 <= 0.02, String(p95));
  const thresholds = { maxErrorRate: 0.01, maxP95AckLatencyIncreasePct: 20, maxBotOverheadPct: 5 };
  const stable = measure("ingest", [ingestMetrics(1000, 0, 8)], 1);
  assert.equal(judge(measure("ingest", [ingestMetrics(100, 0, 8)], 1), stable, thresholds).healthy, true);
  const errors = judge(measure("ingest", [ingestMetrics(100, 5, 8)], 1), stable, thresholds);
  assert.equal(errors.healthy, false);
  assert.match(errors.reason, /error rate 5\.00% exceeds 1\.00%/);
  const slow = judge(measure("ingest", [ingestMetrics(100, 0, 40)], 1), stable, thresholds);
  assert.equal(slow.healthy, false);
  assert.match(slow.reason, /p95 latency/);
  const overhead = judge(
    measure("ingest", [`${ingestMetrics(100, 0, 8)}sessiontrack_bot_capture_overhead_pct 7\n`], 1),
    stable,
    thresholds,
  );
  assert.match(overhead.reason, /bot overhead 7\.00% exceeds 5%/);
  assert.equal(
    judge(measure("index", [], 1), stable, thresholds).inconclusive,
    true,
    "no metrics: no verdict",
  );
  const index = measure("index", [indexMetrics(100, 2, 5)], 1);
  assert.equal(index.errorRate, 0.02);
});

test("capture config: cumulative stages, tenant stages never widen capture, opt-out and kill switch", () => {
  const parsed = parseSessionStoreSpec({
    tenantsSecretRef: { name: "t" },
    capture: {
      sampleRate: 0,
      stages: [
        { name: "internal", selector: { userGroups: ["bot-team"] } },
        { name: "tenant", selector: { tenants: ["acme"], percentage: 50 } },
        { name: "full", selector: { percentage: 100 } },
      ],
      optOut: { users: ["u1"], bots: ["legal"], tenants: ["globex"] },
    },
  });
  assert.ok("spec" in parsed);
  const first = buildCaptureDocument(parsed.spec, 0, undefined);
  assert.equal(first.stage, "internal");
  assert.equal(first.sampleRate, 0);
  assert.deepEqual(first.cohorts, [
    { name: "internal", botIds: [], userGroups: ["bot-team"], sampleRate: 1 },
  ]);
  const second = buildCaptureDocument(parsed.spec, 1, undefined);
  assert.equal(second.cohorts.length, 1, "a tenant stage is not a plain cohort (it would match everyone)");
  assert.deepEqual(second.tenantCohorts[0]?.tenants, ["acme"]);
  const full = buildCaptureDocument(parsed.spec, 2, undefined);
  assert.equal(full.sampleRate, 1);
  assert.deepEqual(full.optOut, { userIds: ["u1"], botIds: ["legal"], tenantIds: ["globex"] });
  const off = parseSessionStoreSpec({ tenantsSecretRef: { name: "t" }, capture: { enabled: false } });
  assert.ok("spec" in off);
  assert.equal(buildCaptureDocument(off.spec, -1, undefined).enabled, false);
});

test("conditions: lastTransitionTime moves only when the status changes", () => {
  const t0 = new Date("2026-01-01T00:00:00Z");
  const t1 = new Date("2026-01-01T00:01:00Z");
  const first = settleConditions(
    undefined,
    [{ type: "Ready", status: "False", reason: "ReplicasNotReady", message: "x" }],
    1,
    t0,
  );
  assert.equal(first.transitions.length, 1);
  const same = settleConditions(
    first.conditions,
    [{ type: "Ready", status: "False", reason: "ReplicasNotReady", message: "y" }],
    2,
    t1,
  );
  assert.equal(same.transitions.length, 0);
  assert.equal(same.conditions[0]?.lastTransitionTime, "2026-01-01T00:00:00Z");
  const flipped = settleConditions(
    same.conditions,
    [{ type: "Ready", status: "True", reason: "AllReplicasReady", message: "" }],
    2,
    t1,
  );
  assert.equal(flipped.transitions.length, 1);
  assert.equal(flipped.conditions[0]?.lastTransitionTime, "2026-01-01T00:01:00Z");
});

test("spec: durations parse; a bad spec names the field", () => {
  assert.equal(parseDuration("1h30m"), 5_400_000);
  assert.equal(parseDuration("250ms"), 250);
  assert.throws(() => parseDuration("5 minutes"));
  const bad = parseSessionStoreSpec({ tenantsSecretRef: { name: "t" }, ingest: { replicas: "three" } });
  assert.ok("error" in bad);
  assert.match(bad.error, /spec\.ingest\.replicas/);
});
