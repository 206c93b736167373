import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { resolve } from "node:path";
import { createInterface } from "node:readline";
import { after, before, test } from "node:test";

import { parse as parseYaml, parseAllDocuments } from "yaml";

import type { KubeObject } from "./k8s/index.js";
import type { WriteRecord } from "./k8s/index.js";
import type { SessionStore } from "./spec.js";
import {
  REPO_ROOT,
  createNamespace,
  createFakePod,
  createStore,
  eventsUntil,
  getStore,
  markWorkloadsReady,
  startMetricsEndpoint,
  startTestCluster,
  startTestOperator,
  storeRef,
  waitFor,
  type TestCluster,
} from "./test-support.js";

let cluster: TestCluster;
before(async () => {
  cluster = await startTestCluster();
});
after(async () => {
  await cluster?.stop();
});

const condition = (store: SessionStore, type: string) =>
  store.status?.conditions?.find((c) => c.type === type);

test("the minimal example creates every owned object with limits and owner references; an unchanged resource is not written again", async (t) => {
  const { cp, admin } = cluster;
  const namespace = await createNamespace(admin, "example");
  const operator = await startTestOperator(cluster, namespace);
  t.after(() => operator.close());
  for (const file of ["tenants-secret.yaml", "sessionstore-minimal.yaml"]) {
    const applied = await cp.kubectl(["apply", "-n", namespace, "-f", resolve(REPO_ROOT, "examples", file)]);
    assert.equal(applied.code, 0, applied.stderr);
  }
  const store = await waitFor("status.observedGeneration", async () => {
    const current = await getStore(admin, namespace, "sessiontrack");
    return current.status?.observedGeneration === current.metadata.generation ? current : undefined;
  });
  const uid = store.metadata.uid;
  const owned = async (apiVersion: string, kind: string, name: string): Promise<KubeObject> => {
    const object = await admin.get({ apiVersion, kind, namespace, name });
    assert.ok(object, `${kind}/${name} exists`);
    const ref = object.metadata.ownerReferences?.find((owner) => owner.uid === uid);
    assert.ok(ref, `${kind}/${name} is owned by the SessionStore`);
    assert.equal(ref.controller, true);
    assert.equal(ref.kind, "SessionStore");
    return object;
  };
  const ingest = await owned("apps/v1", "StatefulSet", "sessiontrack-ingest");
  const ingestSpec = ingest["spec"] as {
    replicas: number;
    volumeClaimTemplates: {
      metadata: { name: string };
      spec: { resources: { requests: { storage: string } } };
    }[];
    template: {
      metadata: { annotations: Record<string, string> };
      spec: {
        terminationGracePeriodSeconds: number;
        containers: { resources: unknown; args: string[]; lifecycle?: unknown }[];
      };
    };
  };
  assert.equal(ingestSpec.replicas, 2);
  assert.equal(ingestSpec.volumeClaimTemplates[0]?.metadata.name, "wal");
  assert.equal(ingestSpec.volumeClaimTemplates[0]?.spec.resources.requests.storage, "20Gi");
  assert.deepEqual(ingestSpec.template.spec.containers[0]?.resources, {
    requests: { cpu: "500m", memory: "256Mi" },
    limits: { cpu: "2", memory: "512Mi" },
  });
  assert.ok(
    ingestSpec.template.metadata.annotations["sessiontrack.io/template-hash"],
    "pod template carries its hash",
  );
  assert.ok(
    ingestSpec.template.spec.terminationGracePeriodSeconds > 600,
    "grace period covers the drain timeout",
  );
  assert.ok(
    ingestSpec.template.spec.containers[0]?.args.includes(
      "--capture-config=/etc/sessiontrack/capture/capture.yaml",
    ),
  );
  for (const component of ["index", "archive"]) {
    const deployment = await owned("apps/v1", "Deployment", `sessiontrack-${component}`);
    const containers = (
      deployment["spec"] as {
        template: { spec: { containers: { resources: { limits: Record<string, string> } }[] } };
      }
    ).template.spec.containers;
    assert.deepEqual(containers[0]?.resources.limits, { cpu: "1", memory: "512Mi" });
    await owned("v1", "Service", `sessiontrack-${component}`);
  }
  await owned("v1", "Service", "sessiontrack-ingest");
  for (const store of ["meilisearch", "s3"]) {
    await owned("apps/v1", "StatefulSet", `sessiontrack-${store}`);
    await owned("v1", "Service", `sessiontrack-${store}`);
    await owned("v1", "Secret", `sessiontrack-${store}`);
  }
  const keys = await admin.get({
    apiVersion: "v1",
    kind: "Secret",
    namespace,
    name: "sessiontrack-encryption-keys",
  });
  assert.deepEqual(
    Object.keys((keys?.["data"] as Record<string, string>) ?? {}).sort(),
    ["acme", "globex"],
    "one key-encryption key per tenant",
  );
  assert.equal(
    keys?.metadata.ownerReferences,
    undefined,
    "encryption keys are never garbage-collected with the SessionStore",
  );
  const serviceKey = await owned("v1", "Secret", "sessiontrack-service-key");
  const tenantsSecret = await owned("v1", "Secret", "sessiontrack-service-tenants");
  const tenantsFile = JSON.parse(
    Buffer.from((tenantsSecret["data"] as Record<string, string>)["tenants.yaml"] ?? "", "base64").toString(
      "utf8",
    ),
  ) as {
    tenants: { name: string }[];
    services: { id: string; sha256: string }[];
  };
  assert.deepEqual(
    tenantsFile.tenants.map((tenant) => tenant.name),
    ["acme", "globex"],
    "the user's tenants are kept",
  );
  const shipperKey = Buffer.from(
    (serviceKey["data"] as Record<string, string>)["key"] ?? "",
    "base64",
  ).toString("utf8");
  assert.ok(
    tenantsFile.services.some(
      (service) =>
        service.id === "sessiontrack-operator-shipper" &&
        service.sha256 === createHash("sha256").update(shipperKey).digest("hex"),
    ),
    "the shipper's service key is added to the services' tenants file",
  );
  assert.ok(
    ingestSpec.template.spec.containers[0]?.args.includes(
      "--service-key-file=/etc/sessiontrack/service-key/key",
    ),
  );
  const configMap = await owned("v1", "ConfigMap", "sessiontrack-capture");
  const capture = parseYaml((configMap["data"] as Record<string, string>)["capture.yaml"] ?? "") as Record<
    string,
    unknown
  >;
  assert.equal(capture["enabled"], true);
  assert.equal(capture["sampleRate"], 1);
  assert.equal(store.status?.capture?.enabled, true);
  assert.ok(store.status?.currentRevision, "a ControllerRevision is recorded");
  const revision = await owned("apps/v1", "ControllerRevision", store.status.currentRevision);
  assert.equal(
    (revision["data"] as { images: Record<string, string> }).images["ingest"],
    "ghcr.io/sessiontrack/sessiontrack:0.1.0",
  );
  assert.equal(
    condition(store, "Ready")?.status,
    "False",
    "nothing is ready before the workload controllers report",
  );

  // Play the workload controllers: every replica ready → Ready=True with an Event.
  await markWorkloadsReady(admin, namespace);
  const ready = await waitFor("Ready=True", async () => {
    const current = await getStore(admin, namespace, "sessiontrack");
    return condition(current, "Ready")?.status === "True" ? current : undefined;
  });
  assert.equal(ready.status?.phase, "Ready");
  assert.equal(ready.status?.components?.ingest?.readyReplicas, 2);
  const readyTransition = condition(ready, "Ready")?.lastTransitionTime;
  await eventsUntil(admin, namespace, "sessiontrack", "the Ready event", (events) =>
    events.some((event) => event.reason === "Ready" && event.message.includes("True")),
  );

  // Settled: a forced reconcile (and a second one) makes no write at all, and no resourceVersion moves.
  await new Promise((r) => setTimeout(r, 500));
  await operator.controller.idle();
  const versions = async () => {
    const all: Record<string, string> = {};
    for (const [apiVersion, kind] of [
      ["apps/v1", "StatefulSet"],
      ["apps/v1", "Deployment"],
      ["v1", "Service"],
      ["v1", "ConfigMap"],
      ["v1", "Secret"],
      ["sessiontrack.io/v1alpha1", "SessionStore"],
    ] as const) {
      for (const item of (await admin.list(apiVersion, kind, namespace)).items)
        all[`${kind}/${item.metadata.name ?? ""}`] = item.metadata.resourceVersion ?? "";
    }
    return all;
  };
  const before = await versions();
  const writes: WriteRecord[] = [];
  const unsubscribe = operator.client.onWrite((write) => writes.push(write));
  for (let i = 0; i < 2; i++) {
    operator.controller.enqueue(`${namespace}/sessiontrack`);
    await new Promise((r) => setTimeout(r, 100));
    await operator.controller.idle();
  }
  unsubscribe();
  assert.deepEqual(writes, [], "re-reconciling an unchanged SessionStore writes nothing");
  assert.deepEqual(await versions(), before, "no resourceVersion changed");
  assert.equal(
    condition(await getStore(admin, namespace, "sessiontrack"), "Ready")?.lastTransitionTime,
    readyTransition,
  );

  // A restarted operator (a new version that renders the same templates) writes nothing either.
  await operator.close();
  const restarted = await startTestOperator(cluster, namespace);
  t.after(() => restarted.close());
  const restartWrites: WriteRecord[] = [];
  restarted.client.onWrite((write) => restartWrites.push(write));
  await new Promise((r) => setTimeout(r, 300));
  await restarted.controller.idle();
  assert.deepEqual(restartWrites, [], "a restart re-renders identical objects and writes nothing");
});

test("spec changes are applied; external stores are not run; generated credentials are never rotated", async (t) => {
  const { admin } = cluster;
  const namespace = await createNamespace(admin, "changes");
  const operator = await startTestOperator(cluster, namespace);
  t.after(() => operator.close());
  await admin.create({
    apiVersion: "v1",
    kind: "Secret",
    metadata: { name: "t", namespace },
    stringData: { "tenants.yaml": "tenants: []\n" },
  });
  await admin.create({
    apiVersion: "sessiontrack.io/v1alpha1",
    kind: "SessionStore",
    metadata: { name: "st", namespace },
    spec: {
      tenantsSecretRef: { name: "t" },
      meilisearch: { mode: "external", url: "http://meili:7700", secretRef: { name: "meili" } },
    },
  });
  await waitFor("ingest StatefulSet", () =>
    admin.get({ apiVersion: "apps/v1", kind: "StatefulSet", namespace, name: "st-ingest" }),
  );
  assert.equal(
    await admin.get({ apiVersion: "apps/v1", kind: "StatefulSet", namespace, name: "st-meilisearch" }),
    undefined,
    "external Meilisearch is not run",
  );
  await admin.mergePatch(
    { apiVersion: "sessiontrack.io/v1alpha1", kind: "SessionStore", namespace, name: "st" },
    { spec: { ingest: { replicas: 4, resources: { limits: { memory: "1Gi" } } } } },
  );
  await waitFor("4 replicas with the new limit", async () => {
    const sts = await admin.get({ apiVersion: "apps/v1", kind: "StatefulSet", namespace, name: "st-ingest" });
    const spec = sts?.["spec"] as {
      replicas: number;
      template: { spec: { containers: { resources: { limits: { memory: string } } }[] } };
    };
    return spec.replicas === 4 && spec.template.spec.containers[0]?.resources.limits.memory === "1Gi";
  });
  const secret = await admin.get({ apiVersion: "v1", kind: "Secret", namespace, name: "st-s3" });
  // Generated credentials survive every reconcile unchanged.
  await admin.mergePatch(
    { apiVersion: "sessiontrack.io/v1alpha1", kind: "SessionStore", namespace, name: "st" },
    { spec: { index: { replicas: 2 } } },
  );
  await waitFor(
    "index scaled",
    async () =>
      (
        (await admin.get({ apiVersion: "apps/v1", kind: "Deployment", namespace, name: "st-index" }))?.[
          "spec"
        ] as { replicas: number }
      ).replicas === 2,
  );
  const again = await admin.get({ apiVersion: "v1", kind: "Secret", namespace, name: "st-s3" });
  assert.deepEqual(again?.["data"], secret?.["data"], "credentials are never rotated by a reconcile");
  assert.equal(again?.metadata.resourceVersion, secret?.metadata.resourceVersion);
});

test("the operator works with exactly the RBAC the Helm chart grants", async (t) => {
  const { cp, admin } = cluster;
  const namespace = await createNamespace(admin, "rbac");
  const rendered = await cp.helm([
    "template",
    "st",
    resolve(REPO_ROOT, "charts/sessiontrack"),
    "--namespace",
    namespace,
    "--set",
    `watchNamespace=${namespace}`,
  ]);
  assert.equal(rendered.code, 0, rendered.stderr);
  const rbacKinds = new Set(["ServiceAccount", "Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"]);
  const documents = parseAllDocuments(rendered.stdout)
    .map((document) => document.toJS() as KubeObject | null)
    .filter((object): object is KubeObject => object !== null && rbacKinds.has(object.kind));
  const account = documents.find((object) => object.kind === "ServiceAccount")?.metadata.name;
  assert.ok(account, "the chart renders a ServiceAccount");
  const applied = await cp.kubectl(["apply", "-n", namespace, "-f", "-"], {
    input: JSON.stringify({ apiVersion: "v1", kind: "List", items: documents }),
  });
  assert.equal(applied.code, 0, applied.stderr);
  const kubeconfig = await cp.serviceAccountKubeconfig(namespace, account);
  const operator = await startTestOperator(
    cluster,
    namespace,
    {
      "leader-election": "true",
      "lease-duration-ms": "3000",
      "renew-deadline-ms": "2000",
      "retry-period-ms": "250",
    },
    kubeconfig,
  );
  t.after(() => operator.close());
  await waitFor("leadership under the chart's RBAC", () => operator.isLeader());
  for (const file of ["tenants-secret.yaml", "sessionstore-minimal.yaml"]) {
    const created = await cp.kubectl(["apply", "-n", namespace, "-f", resolve(REPO_ROOT, "examples", file)]);
    assert.equal(created.code, 0, created.stderr);
  }
  const store = await waitFor("reconciled under the chart's RBAC", async () => {
    const current = await getStore(admin, namespace, "sessiontrack");
    return current.status?.observedGeneration === current.metadata.generation ? current : undefined;
  });
  assert.equal(condition(store, "Degraded")?.status, "False");
  for (const [apiVersion, kind, name] of [
    ["apps/v1", "StatefulSet", "sessiontrack-ingest"],
    ["v1", "Secret", "sessiontrack-s3"],
    ["v1", "ConfigMap", "sessiontrack-capture"],
  ] as const) {
    assert.ok(
      await admin.get({ apiVersion, kind, namespace, name }),
      `${kind}/${name} created with the chart's permissions`,
    );
  }
  await eventsUntil(
    admin,
    namespace,
    "sessiontrack",
    "events recorded with the chart's permissions",
    (events) => events.length > 0,
  );
  // A drained scale-down 3→1: pod -1 is annotated (pods patch); pod -2 never ran (PVC get).
  const drained = await startMetricsEndpoint(
    'sessiontrack_ingest_draining 1\nsessiontrack_ingest_open_streams 0\nsessiontrack_shipper_lag_records{sink="index"} 0\n',
  );
  t.after(() => drained.close());
  await createFakePod(
    admin,
    namespace,
    "sessiontrack",
    "ingest",
    "stable",
    drained.url,
    "sessiontrack-ingest-1",
  );
  const ingestRef = { apiVersion: "apps/v1", kind: "StatefulSet", namespace, name: "sessiontrack-ingest" };
  const ingestReplicas = async () =>
    ((await admin.get(ingestRef))?.["spec"] as { replicas?: number } | undefined)?.replicas;
  for (const replicas of [3, 1]) {
    await admin.mergePatch(storeRef(namespace, "sessiontrack"), { spec: { ingest: { replicas } } });
    await waitFor(
      `ingest at ${replicas} under the chart's RBAC`,
      async () => (await ingestReplicas()) === replicas,
    );
  }
  const leaving = await admin.get({
    apiVersion: "v1",
    kind: "Pod",
    namespace,
    name: "sessiontrack-ingest-1",
  });
  assert.equal(leaving?.metadata.annotations?.["sessiontrack.io/drain"], "true");
  const errors = (await operator.metrics.reconcileErrors.get()).values[0]?.value ?? 0;
  assert.equal(errors, 0, "no reconcile failed for lack of a permission");
});

test("a missing tenants Secret is reported as Degraded, naming the setting", async (t) => {
  const { admin } = cluster;
  const namespace = await createNamespace(admin, "notenants");
  const operator = await startTestOperator(cluster, namespace);
  t.after(() => operator.close());
  await admin.create({
    apiVersion: "sessiontrack.io/v1alpha1",
    kind: "SessionStore",
    metadata: { name: "st", namespace },
    spec: { tenantsSecretRef: { name: "missing" } },
  });
  const store = await waitFor("Degraded", async () => {
    const current = await getStore(admin, namespace, "st");
    return condition(current, "Degraded")?.status === "True" ? current : undefined;
  });
  assert.equal(condition(store, "Degraded")?.reason, "TenantsSecretInvalid");
  assert.match(
    condition(store, "Degraded")?.message ?? "",
    /spec\.tenantsSecretRef: Secret .*\/missing does not exist/,
  );
  assert.equal(store.status?.phase, "Degraded");
  assert.ok(
    await admin.get({ apiVersion: "v1", kind: "ConfigMap", namespace, name: "st-capture" }),
    "capture config is still published",
  );
});

test("the sessiontrack-operator binary runs with a kubeconfig, serves /metrics and stops on SIGTERM; bad settings are named", async (t) => {
  const { cp, admin } = cluster;
  const bin = resolve(REPO_ROOT, "operator/bin/sessiontrack-operator.js");
  const bad = spawnSync(process.execPath, [bin, "--kubeconfig", cp.kubeconfigPath, "--workers", "zero"], {
    encoding: "utf8",
  });
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /workers: must be a number/);

  const namespace = await createNamespace(admin, "binary");
  const child = spawn(
    process.execPath,
    [
      bin,
      "--kubeconfig",
      cp.kubeconfigPath,
      "--namespace",
      namespace,
      "--metrics-listen",
      "127.0.0.1:0",
      "--leader-election",
      "true",
      "--lease-namespace",
      namespace,
    ],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  const exited = new Promise<number | null>((done) => child.once("exit", (code) => done(code)));
  t.after(async () => {
    if (child.exitCode === null) child.kill("SIGKILL");
    await exited;
  });
  const metrics = await new Promise<string>((done, fail) => {
    const timer = setTimeout(() => fail(new Error("operator did not start within 20 s")), 20_000);
    createInterface({ input: child.stdout }).on("line", (line) => {
      try {
        const entry = JSON.parse(line) as { msg?: string; metrics?: string };
        if (entry.msg === "operator started" && entry.metrics !== undefined) {
          clearTimeout(timer);
          done(entry.metrics);
        }
      } catch {
        // not a log line
      }
    });
  });
  await createStore(admin, namespace, "st", {});
  await waitFor(
    "reconciled by the binary",
    async () => (await getStore(admin, namespace, "st")).status?.observedGeneration === 1,
  );
  // The reconcile is timed until its Events are recorded, a little after the status is visible.
  const text = await waitFor("a timed reconcile on /metrics", async () => {
    const body = await (await fetch(`http://${metrics}/metrics`)).text();
    return /sessiontrack_operator_reconcile_duration_seconds_count\{result="ok"\} [1-9]/.test(body)
      ? body
      : undefined;
  });
  assert.match(text, /sessiontrack_operator_leader 1/);
  assert.match(text, /sessiontrack_operator_informer_relists\{kind="SessionStore",cause="initial"\} [1-9]/);
  assert.equal((await fetch(`http://${metrics}/healthz`)).status, 200);
  child.kill("SIGTERM");
  assert.equal(await exited, 0);
  const lease = await admin.get({
    apiVersion: "coordination.k8s.io/v1",
    kind: "Lease",
    namespace,
    name: "sessiontrack-operator",
  });
  assert.equal(
    (lease?.["spec"] as { holderIdentity?: string }).holderIdentity,
    "",
    "the lease was released on shutdown",
  );
});
