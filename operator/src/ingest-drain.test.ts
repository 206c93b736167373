// Drain-before-scale-down of ingest on a real kube-apiserver: no kubelet, so the tests create
// the StatefulSet's pods themselves and serve each pod's /metrics from a real HTTP endpoint.
import assert from "node:assert/strict";
import { test } from "node:test";

import type { SessionStore } from "./spec.js";
import {
  createFakePod,
  createNamespace,
  createStore,
  eventsFor,
  eventsUntil,
  getStore,
  markWorkloadsReady,
  startMetricsEndpoint,
  startTestOperator,
  storeRef,
  useTestCluster,
  waitFor,
  waitForEvent,
  type FakeMetricsEndpoint,
} from "./test-support.js";

const shared = useTestCluster();

/** An ingest pod's drain-related metrics, as prom-client writes them. */
function ingestPodMetrics(state: {
  draining: 0 | 1;
  streams: number;
  archive: number;
  index: number;
  batchesInFlight?: number;
}): string {
  const sink = (name: string, records: number) => [
    `sessiontrack_shipper_lag_records{sink="${name}"} ${records}`,
    `sessiontrack_shipper_backlog_bytes{sink="${name}"} ${records * 700}`,
  ];
  return `${[
    "# TYPE sessiontrack_ingest_draining gauge",
    `sessiontrack_ingest_draining ${state.draining}`,
    "# TYPE sessiontrack_ingest_open_streams gauge",
    `sessiontrack_ingest_open_streams ${state.streams}`,
    "# TYPE sessiontrack_ingest_batches_in_flight gauge",
    `sessiontrack_ingest_batches_in_flight ${state.batchesInFlight ?? 0}`,
    "# TYPE sessiontrack_shipper_lag_records gauge",
    ...sink("archive", state.archive),
    ...sink("index", state.index),
  ].join("\n")}\n`;
}
const IDLE = ingestPodMetrics({ draining: 0, streams: 2, archive: 0, index: 0 });

const condition = (store: SessionStore, type: string) =>
  store.status?.conditions?.find((c) => c.type === type);

/**
 * A settled SessionStore `st` with `replicas` ingest replicas (default 3) and the pods
 * st-ingest-N for the ordinals in `pods` (default 0..2), each with a /metrics endpoint.
 */
async function setUp(
  t: { after(fn: () => Promise<void> | void): void },
  prefix: string,
  options: { ingest?: Record<string, unknown>; replicas?: number; pods?: number[] } = {},
) {
  const { admin } = shared.current;
  const namespace = await createNamespace(admin, prefix);
  let operator = await startTestOperator(shared.current, namespace);
  t.after(() => operator.close());
  const count = options.replicas ?? 3;
  await createStore(admin, namespace, "st", { ingest: { replicas: count, ...options.ingest } });
  await waitFor(
    `the ingest StatefulSet at ${count} replicas`,
    async () => (await replicas(namespace)) === count,
  );
  await markWorkloadsReady(admin, namespace);
  const endpoints = new Map<number, FakeMetricsEndpoint>();
  for (const ordinal of options.pods ?? [0, 1, 2]) {
    const endpoint = await startMetricsEndpoint(IDLE);
    t.after(() => endpoint.close());
    endpoints.set(ordinal, endpoint);
    await createFakePod(admin, namespace, "st", "ingest", "stable", endpoint.url, `st-ingest-${ordinal}`);
  }
  return {
    namespace,
    leaving: endpoints.get(2)!,
    restartOperator: async () => {
      await operator.close();
      operator = await startTestOperator(shared.current, namespace);
    },
  };
}

async function replicas(namespace: string, name = "st-ingest"): Promise<number | undefined> {
  const set = await shared.current.admin.get({ apiVersion: "apps/v1", kind: "StatefulSet", namespace, name });
  return (set?.["spec"] as { replicas?: number } | undefined)?.replicas;
}

/**
 * Reports the leaving pod behind `endpoint` drained, then expects `set` at `target` replicas,
 * the drain gone from status and Progressing, and an IngestScaledDown Event matching `scaled`.
 */
async function expectDrained(
  namespace: string,
  endpoint: FakeMetricsEndpoint,
  set: "st-ingest" | "st-ingest-canary",
  target: number,
  scaled: RegExp,
) {
  const { admin } = shared.current;
  endpoint.set(ingestPodMetrics({ draining: 1, streams: 0, archive: 0, index: 0 }));
  await waitFor(`${set} at ${target} replicas`, async () => (await replicas(namespace, set)) === target);
  const field = set === "st-ingest" ? "ingestDrain" : "canaryIngestDrain";
  const store = await waitFor("the drain leaves status", async () => {
    const current = await getStore(admin, namespace, "st");
    return current.status?.[field] === undefined ? current : undefined;
  });
  assert.notEqual(condition(store, "Progressing")?.reason, "DrainingIngest");
  return eventsUntil(
    admin,
    namespace,
    "st",
    `an IngestScaledDown event matching ${String(scaled)}`,
    (events) => events.some((event) => event.reason === "IngestScaledDown" && scaled.test(event.message)),
  );
}

async function drainAnnotation(namespace: string, pod: string): Promise<string | undefined> {
  const object = await shared.current.admin.get({ apiVersion: "v1", kind: "Pod", namespace, name: pod });
  return object?.metadata.annotations?.["sessiontrack.io/drain"];
}

const scaleTo = (namespace: string, count: number) =>
  shared.current.admin.mergePatch(storeRef(namespace, "st"), { spec: { ingest: { replicas: count } } });

/** Waits until the operator has read the leaving pod's metrics `scrapes` more times, then returns the store. */
async function afterScrapes(namespace: string, endpoint: FakeMetricsEndpoint, scrapes = 3) {
  const target = endpoint.requests() + scrapes;
  await waitFor(`${scrapes} more scrapes of the leaving pod`, () => endpoint.requests() >= target);
  return getStore(shared.current.admin, namespace, "st");
}

test("scale-down 3→2 drains st-ingest-2 first: replicas stay 3 while it has backlog or streams, across an operator restart, then drop to 2", async (t) => {
  const { admin } = shared.current;
  const { namespace, leaving, restartOperator } = await setUp(t, "drain");
  await scaleTo(namespace, 2);
  await waitFor(
    "st-ingest-2 annotated",
    async () => (await drainAnnotation(namespace, "st-ingest-2")) === "true",
  );
  assert.equal(await drainAnnotation(namespace, "st-ingest-0"), undefined, "the staying pods are left alone");
  assert.equal(await drainAnnotation(namespace, "st-ingest-1"), undefined);

  // Not yet seen by ingest (the kubelet refreshes the downward-API file with a delay): no lag, yet held.
  let store = await afterScrapes(namespace, leaving);
  assert.equal(await replicas(namespace), 3);
  assert.match(condition(store, "Progressing")?.message ?? "", /st-ingest-2: has not closed its intake yet/);

  // An Append accepted before the drain still waits on fsync: held for it as well.
  leaving.set(ingestPodMetrics({ draining: 1, streams: 0, archive: 0, index: 5, batchesInFlight: 1 }));
  store = await waitFor("Progressing DrainingIngest naming the backlog", async () => {
    const current = await getStore(admin, namespace, "st");
    const progressing = condition(current, "Progressing");
    return progressing?.reason === "DrainingIngest" &&
      /1 batch not acked yet, index 5 records/.test(progressing.message)
      ? current
      : undefined;
  });
  assert.equal(condition(store, "Progressing")?.status, "True");
  assert.match(condition(store, "Progressing")?.message ?? "", /holding ingest at 3 replicas \(spec: 2\)/);
  assert.deepEqual(store.status?.ingestDrain?.pods, ["st-ingest-2"]);
  assert.equal(store.status?.ingestDrain?.replicas, 2);
  const startedAt = store.status?.ingestDrain?.startedAt;
  assert.ok(startedAt !== undefined);
  assert.equal(await replicas(namespace), 3, "held while the leaving replica has unshipped WAL");
  await waitForEvent(admin, namespace, "st", "DrainStarted");

  // A restart mid-drain goes on with the same drain (same start, still held).
  await restartOperator();
  store = await afterScrapes(namespace, leaving);
  assert.equal(store.status?.ingestDrain?.startedAt, startedAt, "the drain's start survives a restart");
  assert.equal(await replicas(namespace), 3);

  // Shipped, but a stream is still open: still held.
  leaving.set(ingestPodMetrics({ draining: 1, streams: 1, archive: 0, index: 0 }));
  await waitFor("the open stream is reported", async () => {
    const current = await getStore(admin, namespace, "st");
    return /st-ingest-2: 1 open stream/.test(condition(current, "Progressing")?.message ?? "")
      ? current
      : undefined;
  });
  assert.equal(await replicas(namespace), 3);

  await expectDrained(
    namespace,
    leaving,
    "st-ingest",
    2,
    /from 3 to 2; .*st-ingest-2 \(drained: WAL shipped/,
  );
});

test("scaling back up before the drain finished cancels it and removes the annotation", async (t) => {
  const { admin } = shared.current;
  const { namespace, leaving } = await setUp(t, "cancel");
  leaving.set(ingestPodMetrics({ draining: 1, streams: 0, archive: 7, index: 7 }));
  await scaleTo(namespace, 2);
  await waitFor(
    "st-ingest-2 annotated",
    async () => (await drainAnnotation(namespace, "st-ingest-2")) === "true",
  );
  await waitFor(
    "status.ingestDrain",
    async () => (await getStore(admin, namespace, "st")).status?.ingestDrain,
  );

  await scaleTo(namespace, 3);
  await waitFor(
    "the annotation is removed",
    async () => (await drainAnnotation(namespace, "st-ingest-2")) === undefined,
  );
  const store = await waitFor("the drain leaves status", async () => {
    const current = await getStore(admin, namespace, "st");
    return current.status?.ingestDrain === undefined &&
      condition(current, "Progressing")?.reason !== "DrainingIngest"
      ? current
      : undefined;
  });
  assert.equal(store.status?.observedGeneration, store.metadata.generation);
  assert.equal(await replicas(namespace), 3);
  await waitForEvent(admin, namespace, "st", "DrainCancelled");
});

test("a drain past drainTimeoutSeconds is Degraded (DrainTimeout) and still never scales down with data left", async (t) => {
  const { admin } = shared.current;
  const { namespace, leaving } = await setUp(t, "timeout", { ingest: { drainTimeoutSeconds: 1 } });
  leaving.set(ingestPodMetrics({ draining: 1, streams: 0, archive: 3, index: 0 }));
  await scaleTo(namespace, 2);
  const degraded = await waitFor("Degraded DrainTimeout", async () => {
    const current = await getStore(admin, namespace, "st");
    return condition(current, "Degraded")?.reason === "DrainTimeout" ? current : undefined;
  });
  assert.equal(condition(degraded, "Degraded")?.status, "True");
  assert.match(
    condition(degraded, "Degraded")?.message ?? "",
    /st-ingest-2: archive 3 records \(2100 bytes\) unshipped/,
  );
  assert.equal(degraded.status?.phase, "Degraded");
  await afterScrapes(namespace, leaving);
  assert.equal(await replicas(namespace), 3, "past the timeout, still no scale-down");
  await eventsUntil(admin, namespace, "st", "a DrainTimeout warning", (events) =>
    events.some((event) => event.type === "Warning" && /DrainTimeout/.test(event.message)),
  );

  // Once shipped it goes on: scaled down, Degraded cleared.
  leaving.set(ingestPodMetrics({ draining: 1, streams: 0, archive: 0, index: 0 }));
  await waitFor("scaled down to 2", async () => (await replicas(namespace)) === 2);
  await waitFor("Degraded cleared", async () => {
    const current = await getStore(admin, namespace, "st");
    return condition(current, "Degraded")?.status === "False";
  });
});

test("a leaving replica that never ran (no pod, no WAL volume) does not hold the scale-down; one whose WAL volume exists does", async (t) => {
  const { admin } = shared.current;
  // st-ingest-2 has a WAL volume but no pod to read; st-ingest-3 never ran at all.
  const { namespace } = await setUp(t, "missing", { replicas: 4, pods: [0, 1] });
  await admin.create({
    apiVersion: "v1",
    kind: "PersistentVolumeClaim",
    metadata: { name: "wal-st-ingest-2", namespace },
    spec: { accessModes: ["ReadWriteOnce"], resources: { requests: { storage: "1Gi" } } },
  });
  await scaleTo(namespace, 2);
  await waitFor("lowered past st-ingest-3 to 3", async () => (await replicas(namespace)) === 3);
  const store = await waitFor("st-ingest-2 reported as held", async () => {
    const current = await getStore(admin, namespace, "st");
    return /st-ingest-2: no pod to read its metrics, and its WAL volume wal-st-ingest-2 may hold unshipped records/.test(
      condition(current, "Progressing")?.message ?? "",
    )
      ? current
      : undefined;
  });
  assert.deepEqual(store.status?.ingestDrain?.pods, ["st-ingest-2"]);
  assert.equal(await replicas(namespace), 3, "not past st-ingest-2, whose WAL nobody has confirmed shipped");
  await eventsUntil(
    admin,
    namespace,
    "st",
    "an IngestScaledDown event naming st-ingest-3 as never run",
    (events) =>
      events.some(
        (event) =>
          event.reason === "IngestScaledDown" && /from 4 to 3; .*st-ingest-3 \(never ran/.test(event.message),
      ),
  );
});

test("a rolled-back ingest canary with backlog stays at its replicas, across an operator restart, until its pod has drained, then goes to 0", async (t) => {
  const { admin } = shared.current;
  const { namespace, restartOperator } = await setUp(t, "canarydrain");
  const canaryReplicas = () => replicas(namespace, "st-ingest-canary");
  await admin.mergePatch(storeRef(namespace, "st"), {
    spec: { ingest: { image: "registry.example/sessiontrack:9.9.9" } },
  });
  await waitFor("the ingest canary at 1 replica", async () => (await canaryReplicas()) === 1);
  // The canary acknowledged events it has not shipped yet, and a bot still streams to it.
  const canary = await startMetricsEndpoint(
    ingestPodMetrics({ draining: 0, streams: 1, archive: 4, index: 0 }),
  );
  t.after(() => canary.close());
  await createFakePod(admin, namespace, "st", "ingest", "canary", canary.url, "st-ingest-canary-0");
  await admin.mergePatch(storeRef(namespace, "st"), {
    metadata: { annotations: { "sessiontrack.io/abort-rollout": "true" } },
  });

  let store = await waitFor("the canary ended and its pod drains", async () => {
    const current = await getStore(admin, namespace, "st");
    return condition(current, "RolledBack")?.reason === "Aborted" &&
      current.status?.canaryIngestDrain !== undefined
      ? current
      : undefined;
  });
  assert.equal(store.status?.canary, undefined, "the canary route is withdrawn first");
  assert.deepEqual(store.status?.canaryIngestDrain?.pods, ["st-ingest-canary-0"]);
  assert.equal(store.status?.canaryIngestDrain?.replicas, 0);
  const startedAt = store.status?.canaryIngestDrain?.startedAt;
  assert.equal(await drainAnnotation(namespace, "st-ingest-canary-0"), "true");
  assert.equal(await drainAnnotation(namespace, "st-ingest-0"), undefined, "stable pods are left alone");
  store = await afterScrapes(namespace, canary);
  assert.equal(await canaryReplicas(), 1, "held while the canary has unshipped WAL");
  assert.equal(condition(store, "Progressing")?.reason, "DrainingIngest");
  assert.match(
    condition(store, "Progressing")?.message ?? "",
    /holding the ingest canary at 1 replicas \(target: 0\).*st-ingest-canary-0: has not closed its intake yet, 1 open stream, archive 4 records/,
  );

  // Intake closed and the stream ended, but the WAL is not shipped yet: a restart keeps holding.
  canary.set(ingestPodMetrics({ draining: 1, streams: 0, archive: 4, index: 0 }));
  await restartOperator();
  store = await afterScrapes(namespace, canary);
  assert.equal(store.status?.canaryIngestDrain?.startedAt, startedAt, "the drain's start survives a restart");
  assert.equal(await canaryReplicas(), 1);

  const events = await expectDrained(
    namespace,
    canary,
    "st-ingest-canary",
    0,
    /the ingest canary scaled from 1 to 0; .*st-ingest-canary-0 \(drained: WAL shipped/,
  );
  assert.ok(
    !events.some((event) => event.reason === "DrainCancelled"),
    "a finished drain is not reported cancelled",
  );
});

test("a drain left in status after its last scale-down (the status write failed) is cleared without a false DrainCancelled", async (t) => {
  const { admin } = shared.current;
  const { namespace } = await setUp(t, "leftover", { replicas: 2, pods: [0, 1] });
  // What a failed status write after the final 3→2 step leaves: the StatefulSet at the target, the drain still recorded.
  await admin.mergePatch(
    storeRef(namespace, "st"),
    {
      status: {
        ingestDrain: { replicas: 2, pods: ["st-ingest-2"], startedAt: new Date().toISOString() },
      },
    },
    { subresource: "status" },
  );
  await waitFor("the leftover drain cleared", async () => {
    const current = await getStore(admin, namespace, "st");
    return current.status?.ingestDrain === undefined;
  });
  assert.equal(await replicas(namespace), 2);
  // Events are recorded after the status write: give them time to land.
  await new Promise((resolve) => setTimeout(resolve, 1_000));
  const events = await eventsFor(admin, namespace, "st");
  assert.ok(!events.some((event) => event.reason === "DrainCancelled"), JSON.stringify(events));
});
