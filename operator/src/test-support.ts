/* Test-only helpers for the operator's service tests (compiled to dist, not exported). */
import { once } from "node:events";
import { createServer, type Server } from "node:http";
import { createServer as createTcpServer, connect, type AddressInfo, type Socket } from "node:net";
import { dirname, resolve } from "node:path";
import { after, before } from "node:test";
import { fileURLToPath } from "node:url";

import { createLogger, type Logger } from "@sessiontrack/runtime";
import { startControlPlane, type ControlPlane } from "@sessiontrack/testkit";

import { loadOperatorConfig } from "./config.js";
import { KubeClient, type KubeObject } from "./k8s/index.js";
import { startOperator, type RunningOperator } from "./operator.js";
import type { SessionStore } from "./spec.js";

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
export const CRD_PATH = resolve(REPO_ROOT, "crds/sessionstores.sessiontrack.io.yaml");

export const silentLogger: Logger = createLogger({
  name: "operator-test",
  level: process.env["OPERATOR_TEST_LOG"] ?? "silent",
});

/** A control plane with the SessionStore CRD installed and an admin client. */
export interface TestCluster {
  cp: ControlPlane;
  admin: KubeClient;
  stop(): Promise<void>;
}

export async function startTestCluster(): Promise<TestCluster> {
  const cp = await startControlPlane();
  try {
    const applied = await cp.kubectl(["apply", "--server-side", "-f", CRD_PATH]);
    if (applied.code !== 0) throw new Error(`applying the CRD failed: ${applied.stderr}`);
    const established = await cp.kubectl([
      "wait",
      "--for=condition=established",
      "--timeout=60s",
      "crd/sessionstores.sessiontrack.io",
    ]);
    if (established.code !== 0) throw new Error(`CRD not established: ${established.stderr}`);
  } catch (error) {
    await cp.stop();
    throw error;
  }
  const admin = new KubeClient({ kubeconfigPath: cp.kubeconfigPath }, silentLogger);
  return { cp, admin, stop: () => cp.stop() };
}

/** One control plane for the whole test file: started before its tests, stopped after them. */
export function useTestCluster(): { readonly current: TestCluster } {
  let cluster: TestCluster | undefined;
  before(async () => {
    cluster = await startTestCluster();
  });
  after(async () => {
    await cluster?.stop();
  });
  return {
    get current(): TestCluster {
      if (cluster === undefined) throw new Error("the test cluster is not started (use it inside a test)");
      return cluster;
    },
  };
}

let namespaceCounter = 0;
/** A fresh namespace (namespaces are never finalized without a controller-manager, so never reused). */
export async function createNamespace(admin: KubeClient, prefix: string): Promise<string> {
  namespaceCounter += 1;
  const name = `${prefix}-${process.pid}-${namespaceCounter}`;
  await admin.create({ apiVersion: "v1", kind: "Namespace", metadata: { name } });
  // No controller-manager makes the default ServiceAccount that Pod admission looks up.
  await admin.create({
    apiVersion: "v1",
    kind: "ServiceAccount",
    metadata: { name: "default", namespace: name },
  });
  return name;
}

/** Starts an operator watching `namespace`, with short timings for tests. */
export async function startTestOperator(
  cluster: TestCluster,
  namespace: string,
  overrides: Record<string, string> = {},
  kubeconfigPath = cluster.cp.kubeconfigPath,
): Promise<RunningOperator> {
  const config = loadOperatorConfig(
    {
      kubeconfig: kubeconfigPath,
      namespace,
      "metrics-listen": "127.0.0.1:0",
      "leader-election": "false",
      "lease-namespace": namespace,
      "analysis-interval-ms": "200",
      "watch-silence-ms": "30000",
      "resync-ms": "60000",
      "log-level": "silent",
      ...overrides,
    },
    {},
  );
  return startOperator(config, silentLogger);
}

/** Polls `probe` until it returns a value other than undefined/false, or fails after `timeoutMs`. */
export async function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined | false> | T | undefined | false,
  timeoutMs = 20_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined && value !== false) return value;
    } catch (error) {
      lastError = error;
    }
    if (Date.now() > deadline) {
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${what}${lastError === undefined ? "" : ` (last error: ${lastError instanceof Error ? lastError.message : JSON.stringify(lastError)})`}`,
      );
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

export const storeRef = (namespace: string, name: string) => ({
  apiVersion: "sessiontrack.io/v1alpha1",
  kind: "SessionStore",
  namespace,
  name,
});

export async function getStore(admin: KubeClient, namespace: string, name: string): Promise<SessionStore> {
  const store = await admin.get<SessionStore>(storeRef(namespace, name));
  if (store === undefined) throw new Error(`SessionStore ${namespace}/${name} is missing`);
  return store;
}

/** Creates the tenants Secret and a SessionStore with `spec` (tenantsSecretRef filled in). */
export async function createStore(
  admin: KubeClient,
  namespace: string,
  name: string,
  spec: Record<string, unknown>,
): Promise<SessionStore> {
  await admin.create({
    apiVersion: "v1",
    kind: "Secret",
    metadata: { name: `${name}-tenants`, namespace },
    stringData: { "tenants.yaml": "tenants: []\n" },
  });
  return admin.create<SessionStore>({
    apiVersion: "sessiontrack.io/v1alpha1",
    kind: "SessionStore",
    metadata: { name, namespace },
    spec: { tenantsSecretRef: { name: `${name}-tenants` }, ...spec },
  });
}

/** Plays the StatefulSet/Deployment controller: reports every replica ready and updated. */
export async function markWorkloadsReady(admin: KubeClient, namespace: string): Promise<void> {
  for (const kind of ["StatefulSet", "Deployment"]) {
    const { items } = await admin.list("apps/v1", kind, namespace);
    for (const item of items) {
      const replicas = (item["spec"] as { replicas?: number }).replicas ?? 0;
      const status = item["status"] as { readyReplicas?: number; updatedReplicas?: number } | undefined;
      if (status?.readyReplicas === replicas && status.updatedReplicas === replicas) continue;
      await admin.mergePatch(
        { apiVersion: "apps/v1", kind, namespace, name: item.metadata.name ?? "" },
        {
          status: {
            observedGeneration: item.metadata.generation,
            replicas,
            readyReplicas: replicas,
            updatedReplicas: replicas,
            availableReplicas: replicas,
            ...(kind === "StatefulSet" ? { currentReplicas: replicas } : {}),
          },
        },
        { subresource: "status" },
      );
    }
  }
}

/** A /metrics endpoint on 127.0.0.1 whose exposition the test sets. */
export interface FakeMetricsEndpoint {
  url: string;
  set(text: string): void;
  /** How many scrapes it has answered. */
  requests(): number;
  close(): Promise<void>;
}

export async function startMetricsEndpoint(initial: string): Promise<FakeMetricsEndpoint> {
  let text = initial;
  let requests = 0;
  const server: Server = createServer((_request, response) => {
    requests += 1;
    response.writeHead(200, { "content-type": "text/plain; version=0.0.4" }).end(text);
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}/metrics`,
    set: (next) => {
      text = next;
    },
    requests: () => requests,
    close: () =>
      new Promise<void>((done) => {
        server.close(() => done());
        server.closeAllConnections();
      }),
  };
}

/** Ingest metrics as prom-client writes them: `batches` batches, `rejected` of them refused, ack latencies around `latencyMs`. */
export function ingestMetrics(batches: number, rejected: number, latencyMs: number): string {
  const bounds = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5];
  const seconds = latencyMs / 1000;
  const lines = [
    "# TYPE sessiontrack_ingest_batches_total counter",
    `sessiontrack_ingest_batches_total{rpc="Stream"} ${batches}`,
    "# TYPE sessiontrack_ingest_rejected_batches_total counter",
    `sessiontrack_ingest_rejected_batches_total{code="INTERNAL"} ${rejected}`,
    "# TYPE sessiontrack_ingest_ack_latency_seconds histogram",
    ...bounds.map(
      (le) => `sessiontrack_ingest_ack_latency_seconds_bucket{le="${le}"} ${le >= seconds ? batches : 0}`,
    ),
    `sessiontrack_ingest_ack_latency_seconds_bucket{le="+Inf"} ${batches}`,
    `sessiontrack_ingest_ack_latency_seconds_sum ${batches * seconds}`,
    `sessiontrack_ingest_ack_latency_seconds_count ${batches}`,
  ];
  return `${lines.join("\n")}\n`;
}

/** Index metrics: `requests` calls, `failed` of them with a non-OK code, searches around `latencyMs`. */
export function indexMetrics(requests: number, failed: number, latencyMs: number): string {
  const bounds = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1];
  const seconds = latencyMs / 1000;
  return `${[
    "# TYPE sessiontrack_index_requests_total counter",
    `sessiontrack_index_requests_total{rpc="Search",code="OK"} ${requests - failed}`,
    `sessiontrack_index_requests_total{rpc="Search",code="INTERNAL"} ${failed}`,
    "# TYPE sessiontrack_index_search_duration_seconds histogram",
    ...bounds.map(
      (le) => `sessiontrack_index_search_duration_seconds_bucket{le="${le}"} ${le >= seconds ? requests : 0}`,
    ),
    `sessiontrack_index_search_duration_seconds_bucket{le="+Inf"} ${requests}`,
    `sessiontrack_index_search_duration_seconds_count ${requests}`,
  ].join("\n")}\n`;
}

/**
 * Creates a Pod object (no kubelet runs it) labelled like the operator's pods, whose metrics
 * live at `metricsUrl`; named `name` (a StatefulSet pod's name, say) or a random one.
 */
export async function createFakePod(
  admin: KubeClient,
  namespace: string,
  store: string,
  component: string,
  track: "stable" | "canary",
  metricsUrl: string,
  name = `${store}-${component}-${track}-${Math.random().toString(36).slice(2, 8)}`,
): Promise<KubeObject> {
  return admin.create({
    apiVersion: "v1",
    kind: "Pod",
    metadata: {
      name,
      namespace,
      labels: {
        "app.kubernetes.io/name": "sessiontrack",
        "app.kubernetes.io/instance": store,
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/managed-by": "sessiontrack-operator",
        "sessiontrack.io/track": track,
      },
      annotations: { "sessiontrack.io/metrics-url": metricsUrl },
    },
    spec: {
      automountServiceAccountToken: false,
      containers: [{ name: component, image: "registry.invalid/fake:1" }],
    },
  });
}

/** One Kubernetes Event about an object, as the tests read it. */
export interface RecordedEvent {
  reason: string;
  message: string;
  type: string;
}

/** Events recorded about a SessionStore. */
export async function eventsFor(
  admin: KubeClient,
  namespace: string,
  name: string,
): Promise<RecordedEvent[]> {
  const { items } = await admin.list("v1", "Event", namespace);
  return items
    .filter((event) => (event["involvedObject"] as { name?: string; kind?: string }).name === name)
    .map((event) => ({
      reason: String(event["reason"]),
      message: String(event["message"]),
      type: String(event["type"]),
    }));
}

/**
 * Waits until `name`'s Events pass `check` and returns them: the operator records a
 * reconcile's Events after its status write, so a test that saw the status may look too early.
 */
export async function eventsUntil(
  admin: KubeClient,
  namespace: string,
  name: string,
  what: string,
  check: (events: RecordedEvent[]) => boolean,
): Promise<RecordedEvent[]> {
  let seen: RecordedEvent[] = [];
  try {
    return await waitFor(what, async () => {
      seen = await eventsFor(admin, namespace, name);
      return check(seen) ? seen : undefined;
    });
  } catch (error) {
    // The timeout names what was awaited; the Events that were there say why it never came.
    throw new Error(
      `${error instanceof Error ? error.message : String(error)}; Events: ${JSON.stringify(seen)}`,
      {
        cause: error,
      },
    );
  }
}

/** Waits until `name` has an Event with `reason` (see {@link eventsUntil}). */
export async function waitForEvent(
  admin: KubeClient,
  namespace: string,
  name: string,
  reason: string,
): Promise<void> {
  await eventsUntil(admin, namespace, name, `an Event ${reason} for ${name}`, (events) =>
    events.some((event) => event.reason === reason),
  );
}

/**
 * A TCP proxy in front of the API server that can freeze every connection open at the
 * time of the stall (bytes stop flowing, nothing is closed): a watch that goes silent.
 */
export interface StallingProxy {
  port: number;
  stallOpenConnections(): void;
  close(): Promise<void>;
}

export async function startStallingProxy(target: URL): Promise<StallingProxy> {
  const sockets = new Set<{ client: Socket; upstream: Socket; frozen: boolean }>();
  const server = createTcpServer((client) => {
    const upstream = connect(Number(target.port), target.hostname);
    const pair = { client, upstream, frozen: false };
    sockets.add(pair);
    client.on("data", (chunk: Buffer) => {
      if (!pair.frozen) upstream.write(chunk);
    });
    upstream.on("data", (chunk: Buffer) => {
      if (!pair.frozen) client.write(chunk);
    });
    // A frozen connection does not pass on a close either: the far side just goes quiet.
    const end = () => {
      if (pair.frozen) return;
      sockets.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on("close", end);
    upstream.on("close", end);
    client.on("error", end);
    upstream.on("error", end);
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  return {
    port: (server.address() as AddressInfo).port,
    stallOpenConnections: () => {
      for (const pair of sockets) pair.frozen = true;
    },
    close: () =>
      new Promise<void>((done) => {
        for (const pair of sockets) {
          pair.client.destroy();
          pair.upstream.destroy();
        }
        server.close(() => done());
      }),
  };
}
