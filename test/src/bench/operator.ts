// Operator benchmark against a real kube-apiserver + etcd (no kubelet):
//   operator.reconcile_p95_ms — a SessionStore spec change until every owned object is
//     applied and status.observedGeneration reports it (target ≤ 2000 ms);
//   operator.rollback_s — a canary's breach becoming visible on its /metrics until the
//     operator has rolled it back by itself, with production defaults (5 s analysis
//     interval, 3 failed checks) (target ≤ 30 s).
import { once } from "node:events";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";

import { KubeClient, loadOperatorConfig, startOperator, type KubeObject } from "@sessiontrack/operator";
import { createLogger } from "@sessiontrack/runtime";
import { startControlPlane } from "@sessiontrack/testkit";

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");
const CRD = resolve(REPO, "crds/sessionstores.sessiontrack.io.yaml");
const sleep = (ms: number) => new Promise((done) => setTimeout(done, ms));

type Store = KubeObject & {
  status?: {
    observedGeneration?: number;
    conditions?: { type: string; status: string }[];
    canary?: { revision?: string };
  };
};

async function until<T>(
  what: string,
  probe: () => Promise<T | undefined | false>,
  timeoutMs: number,
  pollMs = 5,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`operator bench: timed out waiting for ${what}`);
    await sleep(pollMs);
  }
}

function indexMetrics(requests: number, failed: number): string {
  return [
    `sessiontrack_index_requests_total{rpc="Search",code="OK"} ${requests - failed}`,
    `sessiontrack_index_requests_total{rpc="Search",code="INTERNAL"} ${failed}`,
    `sessiontrack_index_search_duration_seconds_bucket{le="0.01"} ${requests}`,
    `sessiontrack_index_search_duration_seconds_bucket{le="+Inf"} ${requests}`,
    "",
  ].join("\n");
}

/** Runs the operator benchmark; returns its figures. */
export async function runOperatorBench(options: { changes?: number } = {}): Promise<Record<string, number>> {
  const changes = options.changes ?? 30;
  const cp = await startControlPlane();
  const logger = createLogger({ name: "operator-bench", level: "silent" });
  const closers: (() => Promise<void>)[] = [];
  try {
    const crd = await cp.kubectl(["apply", "--server-side", "-f", CRD]);
    if (crd.code !== 0) throw new Error(`operator bench: applying the CRD failed: ${crd.stderr}`);
    await cp.kubectl([
      "wait",
      "--for=condition=established",
      "--timeout=60s",
      "crd/sessionstores.sessiontrack.io",
    ]);
    const admin = new KubeClient({ kubeconfigPath: cp.kubeconfigPath }, logger);
    const namespace = "bench";
    await admin.create({ apiVersion: "v1", kind: "Namespace", metadata: { name: namespace } });
    await admin.create({
      apiVersion: "v1",
      kind: "ServiceAccount",
      metadata: { name: "default", namespace },
    });
    await admin.create({
      apiVersion: "v1",
      kind: "Secret",
      metadata: { name: "tenants", namespace },
      stringData: { "tenants.yaml": "tenants: []\n" },
    });

    // Production timings, except the metrics port.
    const config = loadOperatorConfig(
      {
        kubeconfig: cp.kubeconfigPath,
        namespace,
        "metrics-listen": "127.0.0.1:0",
        "leader-election": "false",
        "log-level": "silent",
      },
      {},
    );
    const operator = await startOperator(config, logger);
    closers.push(() => operator.close());
    const ref = { apiVersion: "sessiontrack.io/v1alpha1", kind: "SessionStore", namespace, name: "bench" };
    const read = async () => (await admin.get<Store>(ref)) as Store;

    // Warm-up: a freshly established CRD's watch cache answers its first events late.
    await admin.create({
      ...ref,
      metadata: { name: "warmup", namespace },
      spec: { tenantsSecretRef: { name: "tenants" } },
    });
    await until(
      "warm-up reconcile",
      async () => (await admin.get<Store>({ ...ref, name: "warmup" }))?.status?.observedGeneration === 1,
      30_000,
    );

    const createdAt = performance.now();
    await admin.create({
      ...ref,
      metadata: { name: "bench", namespace },
      spec: { tenantsSecretRef: { name: "tenants" }, index: { image: "registry.example/st:1" } },
    });
    await until("first reconcile", async () => (await read()).status?.observedGeneration === 1, 30_000);
    const createMs = performance.now() - createdAt;

    const samples: number[] = [];
    for (let i = 0; i < changes; i++) {
      const started = performance.now();
      const patched = await admin.mergePatch<Store>(ref, { spec: { ingest: { replicas: 2 + (i % 5) + 1 } } });
      const generation = patched.metadata.generation;
      await until(
        "reconcile of a change",
        async () => (await read()).status?.observedGeneration === generation,
        30_000,
      );
      samples.push(performance.now() - started);
    }
    samples.sort((a, b) => a - b);
    const p95 = samples[Math.min(samples.length - 1, Math.ceil(samples.length * 0.95) - 1)] ?? NaN;

    // Rollback: stable and canary index pods whose /metrics are real HTTP servers.
    let canaryText = indexMetrics(0, 0);
    const servers = await Promise.all(
      [() => indexMetrics(1000, 0), () => canaryText].map(async (body) => {
        const server = createServer((_req, res) => res.writeHead(200).end(body()));
        server.listen(0, "127.0.0.1");
        await once(server, "listening");
        closers.push(() => new Promise<void>((done) => server.close(() => done())));
        return `http://127.0.0.1:${(server.address() as AddressInfo).port}/metrics`;
      }),
    );
    for (const [track, url] of [
      ["stable", servers[0]],
      ["canary", servers[1]],
    ] as const) {
      await admin.create({
        apiVersion: "v1",
        kind: "Pod",
        metadata: {
          name: `bench-index-${track}`,
          namespace,
          labels: {
            "app.kubernetes.io/name": "sessiontrack",
            "app.kubernetes.io/instance": "bench",
            "app.kubernetes.io/component": "index",
            "app.kubernetes.io/managed-by": "sessiontrack-operator",
            "sessiontrack.io/track": track,
          },
          annotations: { "sessiontrack.io/metrics-url": url ?? "" },
        },
        spec: {
          automountServiceAccountToken: false,
          containers: [{ name: "index", image: "registry.invalid/fake:1" }],
        },
      });
    }
    canaryText = indexMetrics(200, 0);
    await admin.mergePatch(ref, { spec: { index: { image: "registry.example/st:2" } } });
    await until(
      "canary started",
      async () => (await read()).status?.canary?.revision !== undefined,
      30_000,
      50,
    );
    const breachAt = performance.now();
    canaryText = indexMetrics(200, 60);
    await until(
      "automatic rollback",
      async () =>
        (await read()).status?.conditions?.some((c) => c.type === "RolledBack" && c.status === "True"),
      60_000,
      50,
    );
    const rollbackS = (performance.now() - breachAt) / 1000;
    return {
      "operator.create_ms": Math.round(createMs),
      "operator.reconcile_p50_ms": Math.round(samples[Math.floor(samples.length / 2)] ?? NaN),
      "operator.reconcile_p95_ms": Math.round(p95),
      "operator.rollback_s": Number(rollbackS.toFixed(1)),
    };
  } finally {
    for (const close of closers.reverse()) await close().catch(() => undefined);
    await cp.stop();
  }
}
