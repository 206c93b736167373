import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import type { KubeClient } from "./k8s/index.js";
import type { SessionStore } from "./spec.js";
import {
  createFakePod,
  createNamespace,
  createStore,
  eventsFor,
  eventsUntil,
  getStore,
  indexMetrics,
  ingestMetrics,
  markWorkloadsReady,
  startMetricsEndpoint,
  startTestCluster,
  startTestOperator,
  storeRef,
  waitFor,
  waitForEvent,
  type FakeMetricsEndpoint,
  type TestCluster,
} from "./test-support.js";

let cluster: TestCluster;
before(async () => {
  cluster = await startTestCluster();
});
after(async () => {
  await cluster?.stop();
});

const OLD = "registry.example/sessiontrack:1.0.0";
const NEW = "registry.example/sessiontrack:1.1.0";
const condition = (store: SessionStore, type: string) =>
  store.status?.conditions?.find((c) => c.type === type);

const deploymentImage = async (admin: KubeClient, namespace: string, name: string) => {
  const deployment = await admin.get({ apiVersion: "apps/v1", kind: "Deployment", namespace, name });
  const spec = deployment?.["spec"] as
    { replicas: number; template: { spec: { containers: { image: string }[] } } } | undefined;
  return spec === undefined
    ? undefined
    : { replicas: spec.replicas, image: spec.template.spec.containers[0]?.image };
};

/** A SessionStore whose index runs OLD, settled (stable revision recorded), with stable and canary metrics endpoints and fake pods. */
async function setUp(
  t: { after(fn: () => Promise<void> | void): void },
  prefix: string,
  rollout: Record<string, unknown>,
  operatorSettings: Record<string, string> = {},
) {
  const { admin } = cluster;
  const namespace = await createNamespace(admin, prefix);
  const operator = await startTestOperator(cluster, namespace, operatorSettings);
  t.after(() => operator.close());
  const stableMetrics = await startMetricsEndpoint(indexMetrics(1000, 0, 8));
  const canaryMetrics = await startMetricsEndpoint(indexMetrics(0, 0, 8));
  t.after(() => stableMetrics.close());
  t.after(() => canaryMetrics.close());
  await createStore(admin, namespace, "st", { index: { image: OLD }, rollout });
  const settled = await waitFor("stable revision", async () => {
    const store = await getStore(admin, namespace, "st");
    return store.status?.stableRevision !== undefined && store.status.stableRevision !== ""
      ? store
      : undefined;
  });
  await markWorkloadsReady(admin, namespace);
  await createFakePod(admin, namespace, "st", "index", "stable", stableMetrics.url);
  await createFakePod(admin, namespace, "st", "index", "canary", canaryMetrics.url);
  return {
    namespace,
    operator,
    stableMetrics,
    canaryMetrics,
    oldRevision: settled.status?.stableRevision ?? "",
  };
}

async function startCanary(namespace: string): Promise<SessionStore> {
  const { admin } = cluster;
  await admin.mergePatch(storeRef(namespace, "st"), { spec: { index: { image: NEW } } });
  await waitFor(
    "canary deployment",
    async () => (await deploymentImage(admin, namespace, "st-index-canary"))?.image === NEW,
  );
  return waitFor("status.canary", async () => {
    const store = await getStore(admin, namespace, "st");
    return store.status?.canary?.revision !== undefined ? store : undefined;
  });
}

test("a healthy canary advances step by step and is promoted to stable", async (t) => {
  const { admin } = cluster;
  const { namespace, canaryMetrics, oldRevision } = await setUp(t, "promote", {
    canary: { steps: [20, 100], interval: "1s" },
  });
  canaryMetrics.set(indexMetrics(500, 0, 8));
  const started = await startCanary(namespace);
  assert.equal(started.status?.canary?.weight, 20);
  assert.equal(started.status?.canary?.component, "index");
  assert.equal(condition(started, "Progressing")?.reason, "CanaryInProgress");
  assert.equal(
    (await deploymentImage(admin, namespace, "st-index"))?.image,
    OLD,
    "stable keeps the old image during the canary",
  );
  const configMap = await admin.get({ apiVersion: "v1", kind: "ConfigMap", namespace, name: "st-capture" });
  assert.match(
    (configMap?.["data"] as Record<string, string>)["capture.yaml"] ?? "",
    /canary:[\s\S]*weight: 20/,
    "the canary cohort is routed through the capture config",
  );

  const promoted = await waitFor(
    "promotion",
    async () => {
      const store = await getStore(admin, namespace, "st");
      return store.status?.stableRevision === started.status?.currentRevision ? store : undefined;
    },
    20_000,
  );
  assert.notEqual(promoted.status?.stableRevision, oldRevision);
  assert.equal(promoted.status?.canary, undefined);
  assert.equal(
    (await deploymentImage(admin, namespace, "st-index"))?.image,
    NEW,
    "stable runs the new image",
  );
  assert.equal(
    (await deploymentImage(admin, namespace, "st-index-canary"))?.replicas,
    0,
    "canary scaled to zero",
  );
  await eventsUntil(admin, namespace, "st", "RolloutStarted, CanaryStep and Promoted events", (events) =>
    ["RolloutStarted", "CanaryStep", "Promoted"].every((reason) =>
      events.some((event) => event.reason === reason),
    ),
  );
});

test("a breaching canary is rolled back by itself with the reason in status and an Event; the annotation restores a named revision", async (t) => {
  const { admin } = cluster;
  const { namespace, canaryMetrics, oldRevision } = await setUp(t, "breach", {
    canary: { steps: [10, 50, 100], interval: "1h" },
    failureLimit: 2,
  });
  canaryMetrics.set(indexMetrics(400, 0, 8));
  const started = await startCanary(namespace);
  const badRevision = started.status?.currentRevision ?? "";
  const breachAt = Date.now();
  canaryMetrics.set(indexMetrics(400, 120, 8)); // 30% errors
  const rolledBack = await waitFor(
    "automatic rollback",
    async () => {
      const store = await getStore(admin, namespace, "st");
      return condition(store, "RolledBack")?.status === "True" ? store : undefined;
    },
    30_000,
  );
  assert.ok(Date.now() - breachAt < 30_000);
  assert.equal(condition(rolledBack, "RolledBack")?.reason, "AnalysisFailed");
  assert.match(condition(rolledBack, "RolledBack")?.message ?? "", /error rate 30\.00% exceeds 1\.00%/);
  assert.equal(rolledBack.status?.phase, "RolledBack");
  assert.equal(rolledBack.status?.stableRevision, oldRevision);
  assert.equal(rolledBack.status?.lastRollback?.revision, badRevision);
  assert.match(rolledBack.status?.lastRollback?.reason ?? "", /error rate/);
  assert.equal(
    (await deploymentImage(admin, namespace, "st-index-canary"))?.replicas,
    0,
    "canary scaled to zero",
  );
  assert.equal((await deploymentImage(admin, namespace, "st-index"))?.image, OLD);
  const revision = await admin.get({
    apiVersion: "apps/v1",
    kind: "ControllerRevision",
    namespace,
    name: badRevision,
  });
  assert.equal(
    revision?.metadata.annotations?.["sessiontrack.io/verdict"],
    "bad",
    "the revision is marked bad",
  );
  await eventsUntil(admin, namespace, "st", "a RolledBack warning naming the error rate", (events) =>
    events.some(
      (event) =>
        event.reason === "RolledBack" && event.type === "Warning" && /error rate/.test(event.message),
    ),
  );

  // SRE: `kubectl annotate sst/st sessiontrack.io/rollback-to=<bad revision>` restores it (an explicit choice).
  const annotated = await cluster.cp.kubectl([
    "annotate",
    "-n",
    namespace,
    "sst/st",
    `sessiontrack.io/rollback-to=${badRevision}`,
  ]);
  assert.equal(annotated.code, 0, annotated.stderr);
  const restored = await waitFor("manual rollback", async () => {
    const store = await getStore(admin, namespace, "st");
    return store.status?.stableRevision === badRevision &&
      store.metadata.annotations?.["sessiontrack.io/rollback-to"] === undefined
      ? store
      : undefined;
  });
  assert.equal((await deploymentImage(admin, namespace, "st-index"))?.image, NEW);
  assert.equal(restored.status?.lastRollback?.restoredRevision, badRevision);
  // …and back to the first revision, by its revision number.
  const annotatedBack = await cluster.cp.kubectl([
    "annotate",
    "-n",
    namespace,
    "sst/st",
    "sessiontrack.io/rollback-to=1",
  ]);
  assert.equal(annotatedBack.code, 0, annotatedBack.stderr);
  await waitFor(
    "rollback to revision 1",
    async () => (await getStore(admin, namespace, "st")).status?.stableRevision === oldRevision,
  );
  assert.equal((await deploymentImage(admin, namespace, "st-index"))?.image, OLD);
  const rolled = await getStore(admin, namespace, "st");
  assert.equal(condition(rolled, "RolledBack")?.reason, "ManualRollback");
});

test("a promoted revision that breaches within the rollback window is rolled back to the one it replaced, across an operator restart", async (t) => {
  const { admin } = cluster;
  const timings = { "analysis-interval-ms": "500" };
  const { namespace, operator, stableMetrics, canaryMetrics, oldRevision } = await setUp(
    t,
    "window",
    { canary: { steps: [100], interval: "1s" }, rollbackWindow: "1h", failureLimit: 3 },
    timings,
  );
  canaryMetrics.set(indexMetrics(400, 0, 8));
  const started = await startCanary(namespace);
  const promoted = started.status?.currentRevision ?? "";
  await waitFor(
    "promotion",
    async () => (await getStore(admin, namespace, "st")).status?.stableRevision === promoted,
  );
  assert.equal((await deploymentImage(admin, namespace, "st-index"))?.image, NEW);
  assert.equal((await getStore(admin, namespace, "st")).status?.promotionCheck, undefined);
  stableMetrics.set(indexMetrics(1000, 200, 8)); // the promoted revision now fails 20% of calls
  await waitFor(
    "one failed check in the window",
    async () => (await getStore(admin, namespace, "st")).status?.promotionCheck?.failures === 1,
  );
  await operator.close();
  assert.deepEqual((await getStore(admin, namespace, "st")).status?.promotionCheck, {
    revision: promoted,
    failures: 1,
  });
  // Only the stored count makes failureLimit - 1 = 2 more checks enough.
  const scrapesAtRestart = stableMetrics.requests();
  const resumed = await startTestOperator(cluster, namespace, timings);
  t.after(() => resumed.close());
  const rolledBack = await waitFor("rollback within the window", async () => {
    const store = await getStore(admin, namespace, "st");
    return store.status?.stableRevision === oldRevision ? store : undefined;
  });
  assert.equal(
    stableMetrics.requests() - scrapesAtRestart,
    2,
    "two checks after the restart completed the three",
  );
  assert.equal(condition(rolledBack, "RolledBack")?.status, "True");
  assert.match(
    rolledBack.status?.lastRollback?.reason ?? "",
    /failed 3 times in a row within the rollback window/,
  );
  assert.equal(rolledBack.status?.promotionCheck, undefined, "the count is cleared with the window");
  assert.equal((await deploymentImage(admin, namespace, "st-index"))?.image, OLD);
});

test("an ingest canary (a StatefulSet) whose p95 ack latency rises too far is rolled back", async (t) => {
  const { admin } = cluster;
  const namespace = await createNamespace(admin, "ingestcanary");
  const operator = await startTestOperator(cluster, namespace);
  t.after(() => operator.close());
  const stable = await startMetricsEndpoint(ingestMetrics(1000, 0, 4));
  const canary = await startMetricsEndpoint(ingestMetrics(100, 0, 4));
  t.after(() => stable.close());
  t.after(() => canary.close());
  await createStore(admin, namespace, "st", { ingest: { image: OLD }, rollout: { failureLimit: 2 } });
  await waitFor(
    "stable revision",
    async () => (await getStore(admin, namespace, "st")).status?.stableRevision,
  );
  await createFakePod(admin, namespace, "st", "ingest", "stable", stable.url);
  await createFakePod(admin, namespace, "st", "ingest", "canary", canary.url);
  await admin.mergePatch(storeRef(namespace, "st"), { spec: { ingest: { image: NEW } } });
  const sts = await waitFor("ingest canary StatefulSet", () =>
    admin.get({ apiVersion: "apps/v1", kind: "StatefulSet", namespace, name: "st-ingest-canary" }),
  );
  const spec = sts["spec"] as {
    replicas: number;
    volumeClaimTemplates: unknown[];
    template: { spec: { containers: { image: string }[] } };
  };
  assert.equal(spec.template.spec.containers[0]?.image, NEW);
  assert.equal(spec.replicas, 1, "10% of 2 replicas, at least one");
  assert.equal(spec.volumeClaimTemplates.length, 1, "the canary keeps its WAL on a volume too");
  assert.ok(await admin.get({ apiVersion: "v1", kind: "Service", namespace, name: "st-ingest-canary" }));
  canary.set(ingestMetrics(100, 0, 40)); // p95 ~10x the stable one
  const rolledBack = await waitFor("rollback on latency", async () => {
    const store = await getStore(admin, namespace, "st");
    return condition(store, "RolledBack")?.status === "True" ? store : undefined;
  });
  assert.match(condition(rolledBack, "RolledBack")?.message ?? "", /ingest: p95 latency .* above stable/);
  const after = await admin.get({
    apiVersion: "apps/v1",
    kind: "StatefulSet",
    namespace,
    name: "st-ingest-canary",
  });
  assert.equal((after?.["spec"] as { replicas: number }).replicas, 0);
});

test("the pause annotation holds a healthy canary; the abort patch stops the rollout", async (t) => {
  const { admin } = cluster;
  const { namespace, canaryMetrics, oldRevision } = await setUp(t, "abort", {
    canary: { steps: [10, 100], interval: "1s" },
  });
  canaryMetrics.set(indexMetrics(400, 0, 8));
  const paused = await cluster.cp.kubectl([
    "patch",
    "-n",
    namespace,
    "sst",
    "st",
    "--type",
    "merge",
    "-p",
    '{"metadata":{"annotations":{"sessiontrack.io/rollout-paused":"true"}}}',
  ]);
  assert.equal(paused.code, 0, paused.stderr);
  await startCanary(namespace);
  await new Promise((r) => setTimeout(r, 2500));
  const held = await getStore(admin, namespace, "st");
  assert.equal(held.status?.canary?.weight, 10, "a paused canary does not advance past its interval");
  const aborted = await cluster.cp.kubectl([
    "patch",
    "-n",
    namespace,
    "sst",
    "st",
    "--type",
    "merge",
    "-p",
    '{"metadata":{"annotations":{"sessiontrack.io/abort-rollout":"true"}}}',
  ]);
  assert.equal(aborted.code, 0, aborted.stderr);
  const done = await waitFor("abort", async () => {
    const store = await getStore(admin, namespace, "st");
    return condition(store, "RolledBack")?.reason === "Aborted" ? store : undefined;
  });
  assert.equal(done.status?.canary, undefined);
  assert.equal(done.status?.stableRevision, oldRevision);
  assert.equal((await deploymentImage(admin, namespace, "st-index-canary"))?.replicas, 0);
  assert.equal((await deploymentImage(admin, namespace, "st-index"))?.image, OLD);
  await waitForEvent(admin, namespace, "st", "RolloutAborted");
});

test("an operator restarted mid-rollout resumes the same canary and finishes it", async (t) => {
  const { admin } = cluster;
  const { namespace, operator, canaryMetrics } = await setUp(t, "restart", {
    canary: { steps: [10, 50, 100], interval: "1s" },
  });
  canaryMetrics.set(indexMetrics(400, 0, 8));
  const started = await startCanary(namespace);
  await operator.close();
  const stepBefore = (await getStore(admin, namespace, "st")).status?.canary?.step ?? 0;
  assert.ok(stepBefore < 2);
  const resumed = await startTestOperator(cluster, namespace);
  t.after(() => resumed.close());
  await waitFor(
    "promotion after restart",
    async () =>
      (await getStore(admin, namespace, "st")).status?.stableRevision === started.status?.currentRevision,
    20_000,
  );
  const starts = (await eventsFor(admin, namespace, "st")).filter(
    (event) => event.reason === "RolloutStarted",
  );
  assert.equal(starts.length, 1, "the restarted operator continued the rollout instead of starting over");
});

test("capture stages advance automatically only while their analysis passes; opt-out is always published", async (t) => {
  const { admin } = cluster;
  const namespace = await createNamespace(admin, "stages");
  const operator = await startTestOperator(cluster, namespace);
  t.after(() => operator.close());
  const ingest = await startMetricsEndpoint(ingestMetrics(1000, 500, 5)); // 50% errors
  t.after(() => ingest.close());
  await createStore(admin, namespace, "st", {
    capture: {
      sampleRate: 0,
      advancement: "Automatic",
      stages: [
        { name: "internal", selector: { userGroups: ["bot-team"] }, bakeTime: "1s" },
        { name: "full", selector: { percentage: 100 }, bakeTime: "1s" },
      ],
      optOut: { users: ["user-4711"], bots: ["legal-assistant"], tenants: ["globex"] },
    },
  });
  await createFakePod(admin, namespace, "st", "ingest", "stable", ingest.url);
  const captureText = async () =>
    (
      (await admin.get({ apiVersion: "v1", kind: "ConfigMap", namespace, name: "st-capture" }))?.["data"] as
        Record<string, string> | undefined
    )?.["capture.yaml"] ?? "";
  await waitFor("stage internal published", async () => /stage: internal/.test(await captureText()));
  const internal = await captureText();
  assert.match(internal, /sampleRate: 0\n/);
  assert.match(internal, /userGroups:\n\s+- bot-team/);
  assert.match(internal, /userIds:\n\s+- user-4711/);
  assert.match(internal, /botIds:\n\s+- legal-assistant/);
  await new Promise((r) => setTimeout(r, 2500));
  assert.equal(
    (await getStore(admin, namespace, "st")).status?.capture?.stage,
    "internal",
    "a failing stage does not advance",
  );

  ingest.set(ingestMetrics(2000, 0, 5));
  await waitFor(
    "stage full",
    async () => (await getStore(admin, namespace, "st")).status?.capture?.stage === "full",
    15_000,
  );
  const full = await captureText();
  assert.match(full, /stage: full/);
  assert.match(full, /sampleRate: 1\n/);
  assert.match(full, /userIds:\n\s+- user-4711/, "opt-out stays published in every stage");
  await waitForEvent(admin, namespace, "st", "CaptureStageAdvanced");
});

test("an operator restarted in the middle of a capture stage judges it against the stored baseline and keeps counting failures", async (t) => {
  const { admin } = cluster;
  const namespace = await createNamespace(admin, "stage-restart");
  const timings = { "analysis-interval-ms": "500" };
  const first = await startTestOperator(cluster, namespace, timings);
  t.after(() => first.close());
  const ingest = await startMetricsEndpoint(ingestMetrics(1000, 0, 5));
  t.after(() => ingest.close());
  await createFakePod(admin, namespace, "st", "ingest", "stable", ingest.url);
  await createStore(admin, namespace, "st", {
    capture: {
      advancement: "Automatic",
      stages: [
        { name: "internal", selector: { userGroups: ["bot-team"] }, bakeTime: "1h" },
        { name: "opt-in", selector: { userGroups: ["beta"] }, bakeTime: "1h" },
      ],
      currentStage: "opt-in",
    },
    rollout: { failureLimit: 3 },
  });
  const captureRollout = async () => (await getStore(admin, namespace, "st")).status?.captureRollout;
  const baseline = await waitFor("the stage's baseline in status", async () => {
    const state = await captureRollout();
    return state?.baselineP95Ms === undefined ? undefined : state;
  });
  assert.equal(baseline.stage, "opt-in");
  assert.equal(baseline.failures, 0);
  const baselineMs = baseline.baselineP95Ms ?? NaN;
  assert.ok(baselineMs > 2.5 && baselineMs <= 5, `baseline ${baselineMs} ms is the 5 ms bucket's p95`);

  // The breach begins: one failed check, then the operator goes away.
  ingest.set(ingestMetrics(2000, 0, 50));
  await waitFor("one failed check", async () => (await captureRollout())?.failures === 1, 10_000);
  await first.close();
  const stored = await captureRollout();
  assert.deepEqual(stored, { ...baseline, failures: 1 }, "status holds the baseline and one failure");

  // A new operator measures 50 ms from its first check on: only the stored baseline makes that a
  // breach, and only the stored count makes failureLimit - 1 = 2 more checks enough.
  const scrapesAtRestart = ingest.requests();
  const second = await startTestOperator(cluster, namespace, timings);
  t.after(() => second.close());
  await waitFor(
    "the stage stepped back",
    async () => (await getStore(admin, namespace, "st")).status?.capture?.stage === "internal",
    15_000,
  );
  assert.equal(ingest.requests() - scrapesAtRestart, 2, "two checks after the restart completed the three");
  const rolledBack = (
    await eventsUntil(admin, namespace, "st", "the CaptureStageRolledBack event", (events) =>
      events.some((event) => event.reason === "CaptureStageRolledBack"),
    )
  ).filter((event) => event.reason === "CaptureStageRolledBack");
  assert.equal(rolledBack.length, 1);
  assert.match(rolledBack[0]?.message ?? "", /capture stage opt-in failed analysis 3 times in a row/);
  assert.match(
    rolledBack[0]?.message ?? "",
    new RegExp(`above stable ${baselineMs.toFixed(1).replace(".", "\\.")} ms`),
    "judged against the baseline measured before the restart",
  );

  // Healthy again: the stage below keeps the baseline measured before opt-in began, and
  // checks that change nothing write nothing.
  ingest.set(ingestMetrics(3000, 0, 5));
  await waitFor("healthy in internal", async () => {
    const state = await captureRollout();
    return state?.stage === "internal" && state.failures === 0;
  });
  assert.equal((await captureRollout())?.baselineP95Ms, baselineMs);
  await new Promise((r) => setTimeout(r, 600)); // the Events of the last transition
  const writes: unknown[] = [];
  const unsubscribe = second.client.onWrite((write) => writes.push(write));
  await new Promise((r) => setTimeout(r, 1600)); // three analysis checks
  unsubscribe();
  assert.ok(ingest.requests() - scrapesAtRestart >= 5, "the checks ran");
  assert.deepEqual(writes, [], "healthy checks of an unchanged stage write nothing");
});

export type { FakeMetricsEndpoint };
