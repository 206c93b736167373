import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { after, before, test } from "node:test";

import { Metadata, credentials } from "@grpc/grpc-js";

import { IngestServiceClient, type WatchConfigResponse } from "@sessiontrack/proto";
import { generateApiKey, writeTenantsFile } from "@sessiontrack/runtime";

import { Informer, type KubeClient, type WriteRecord } from "./k8s/index.js";
import {
  REPO_ROOT,
  createNamespace,
  createStore,
  getStore,
  silentLogger,
  startStallingProxy,
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

const SESSIONTRACK_BIN = resolve(REPO_ROOT, "packages/cli/bin/sessiontrack.js");

test("the kill switch reaches a real ingest's WatchConfig stream through the published ConfigMap", async (t) => {
  const { admin } = cluster;
  const namespace = await createNamespace(admin, "kill");
  const operator = await startTestOperator(cluster, namespace);
  t.after(() => operator.close());
  // Stages, a tenant stage and tenant opt-out: a real ingest resolves the tenant parts from
  // the watcher's key (tenant acme), so the acme stage comes first for it.
  await createStore(admin, namespace, "st", {
    capture: {
      sampleRate: 0,
      stages: [
        { name: "internal", selector: { userGroups: ["bot-team"] } },
        { name: "acme", selector: { tenants: ["acme"], percentage: 50 } },
      ],
      currentStage: "acme",
      optOut: { users: ["user-4711"], bots: ["legal-assistant"], tenants: ["globex"] },
    },
  });
  const readCapture = async () => {
    const configMap = await admin.get({ apiVersion: "v1", kind: "ConfigMap", namespace, name: "st-capture" });
    return (configMap?.["data"] as Record<string, string> | undefined)?.["capture.yaml"];
  };
  const initial = await waitFor("capture ConfigMap", readCapture);

  // Play the kubelet: project the ConfigMap's key into a file, swapped atomically as a volume update is.
  const home = mkdtempSync(join(tmpdir(), "operator-killswitch-"));
  t.after(() => rmSync(home, { recursive: true, force: true }));
  const captureFile = join(home, "capture.yaml");
  writeFileSync(captureFile, initial);
  let projected = initial;
  const projector = setInterval(() => {
    void readCapture().then(
      (text) => {
        if (text === undefined || text === projected) return;
        projected = text;
        writeFileSync(`${captureFile}.tmp`, text);
        renameSync(`${captureFile}.tmp`, captureFile);
      },
      () => undefined,
    );
  }, 100);
  t.after(() => clearInterval(projector));

  const { key, sha256 } = generateApiKey();
  const tenantsFile = join(home, "tenants.yaml");
  writeTenantsFile(tenantsFile, [{ name: "acme", keys: [{ id: "bot", sha256, roles: ["ingest"] }] }]);
  const child = spawn(
    process.execPath,
    [
      SESSIONTRACK_BIN,
      "ingest",
      "serve",
      "--data-dir",
      join(home, "data"),
      "--tenants",
      tenantsFile,
      "--capture-config",
      captureFile,
      "--listen",
      "127.0.0.1:0",
      "--metrics-listen",
      "127.0.0.1:0",
      "--log-level",
      "info",
    ],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  const exited = new Promise((done) => child.once("exit", done));
  t.after(async () => {
    if (child.exitCode === null) child.kill("SIGTERM");
    await exited;
  });
  const address = await new Promise<string>((done, fail) => {
    const timer = setTimeout(() => fail(new Error("ingest did not start within 20 s")), 20_000);
    createInterface({ input: child.stdout }).on("line", (line) => {
      try {
        const entry = JSON.parse(line) as { msg?: string; address?: string };
        if (entry.msg === "ingest serving" && entry.address !== undefined) {
          clearTimeout(timer);
          done(entry.address);
        }
      } catch {
        // not a log line
      }
    });
  });
  const grpc = new IngestServiceClient(address, credentials.createInsecure());
  t.after(() => grpc.close());
  const metadata = new Metadata();
  metadata.set("authorization", `Bearer ${key}`);
  const received: WatchConfigResponse[] = [];
  const stream = grpc.watchConfig({ botId: "bot-1", clientVersion: "operator-test" }, metadata);
  stream.on("data", (response: WatchConfigResponse) => received.push(response));
  stream.on("error", () => undefined);
  t.after(() => stream.cancel());
  await waitFor("first WatchConfig message", () => received.length > 0);
  const first = received[0]?.config;
  assert.equal(first?.enabled, true);
  assert.equal(first?.stage, "acme");
  assert.equal(first?.sampleRate, 0);
  assert.deepEqual(
    first?.cohorts.map((cohort) => cohort.name),
    ["acme", "internal"],
    "acme's watcher sees its tenant stage first (at 50%), then the plain stages",
  );
  assert.equal(first?.cohorts[0]?.sampleRate, 0.5);
  assert.deepEqual(first?.optOut?.userIds, ["user-4711"]);
  assert.deepEqual(first?.optOut?.botIds, ["legal-assistant"]);

  const flippedAt = Date.now();
  await admin.mergePatch(storeRef(namespace, "st"), { spec: { capture: { enabled: false } } });
  await waitFor(
    "enabled=false on the WatchConfig stream",
    () => received.some((response) => response.config?.enabled === false),
    10_000,
  );
  const elapsed = Date.now() - flippedAt;
  t.diagnostic(`kill switch reached WatchConfig ${elapsed} ms after the SessionStore patch`);
  assert.ok(elapsed < 5_000, `kill switch took ${elapsed} ms`);
  const store = await getStore(admin, namespace, "st");
  assert.equal(store.status?.capture?.enabled, false);
  assert.equal(
    store.status?.capture?.configRevision,
    received.at(-1)?.config?.revision,
    "status names the revision ingest serves",
  );
  assert.match(readFileSync(captureFile, "utf8"), /enabled: false/);
});

test("a watch that goes silent is replaced by a relist and the missed change is reconciled", async (t) => {
  const { cp, admin } = cluster;
  const namespace = await createNamespace(admin, "silent");
  const proxy = await startStallingProxy(new URL(cp.server));
  t.after(() => proxy.close());
  const kubeconfig = join(mkdtempSync(join(tmpdir(), "operator-proxy-")), "kubeconfig");
  writeFileSync(
    kubeconfig,
    readFileSync(cp.kubeconfigPath, "utf8").replace(cp.server, `https://127.0.0.1:${proxy.port}`),
  );
  const operator = await startTestOperator(
    cluster,
    namespace,
    { "watch-silence-ms": "1500", "request-timeout-ms": "3000" },
    kubeconfig,
  );
  t.after(() => operator.close());
  await createStore(admin, namespace, "st", {});
  await waitFor("ingest StatefulSet", () =>
    admin.get({ apiVersion: "apps/v1", kind: "StatefulSet", namespace, name: "st-ingest" }),
  );
  const silentBefore = operator.controller.relists()["SessionStore"]?.silent ?? 0;

  // Every open connection (the watches) freezes without an error: the client would wait forever.
  proxy.stallOpenConnections();
  await admin.mergePatch(storeRef(namespace, "st"), { spec: { ingest: { replicas: 5 } } });
  await waitFor(
    "the change, after a relist",
    async () => {
      const sts = await admin.get({
        apiVersion: "apps/v1",
        kind: "StatefulSet",
        namespace,
        name: "st-ingest",
      });
      return (sts?.["spec"] as { replicas: number }).replicas === 5;
    },
    15_000,
  );
  assert.ok(
    (operator.controller.relists()["SessionStore"]?.silent ?? 0) > silentBefore,
    "the silence watchdog relisted",
  );
});

test("with two operators only the leader writes; the follower takes over when the leader goes", async (t) => {
  const { admin } = cluster;
  const namespace = await createNamespace(admin, "leader");
  const election = {
    "leader-election": "true",
    "lease-duration-ms": "2000",
    "renew-deadline-ms": "1500",
    "retry-period-ms": "250",
  };
  const first = await startTestOperator(cluster, namespace, { ...election, identity: "first" });
  t.after(() => first.close());
  await waitFor("first leads", () => first.isLeader());
  const second = await startTestOperator(cluster, namespace, { ...election, identity: "second" });
  t.after(() => second.close());
  const writes: Record<string, WriteRecord[]> = { first: [], second: [] };
  first.client.onWrite((write) => writes["first"]?.push(write));
  second.client.onWrite((write) => writes["second"]?.push(write));

  await createStore(admin, namespace, "st", {});
  await waitFor(
    "reconciled by the leader",
    async () => (await getStore(admin, namespace, "st")).status?.observedGeneration === 1,
  );
  await new Promise((r) => setTimeout(r, 500));
  assert.ok((writes["first"]?.length ?? 0) > 0, "the leader wrote");
  assert.deepEqual(writes["second"], [], "the follower wrote nothing");
  assert.equal(second.isLeader(), false);

  // The leader goes away without releasing (as if killed): the lease expires, the follower leads.
  await first.close({ releaseLease: false });
  await waitFor("follower takes over", () => second.isLeader(), 15_000);
  await admin.mergePatch(storeRef(namespace, "st"), { spec: { index: { replicas: 3 } } });
  await waitFor("new leader reconciles", async () => {
    const deployment = await admin.get({
      apiVersion: "apps/v1",
      kind: "Deployment",
      namespace,
      name: "st-index",
    });
    return (deployment?.["spec"] as { replicas: number }).replicas === 3;
  });
  assert.ok((writes["second"]?.length ?? 0) > 0, "the new leader wrote");
});

test("drift is found at the periodic relist by a dry-run apply and corrected; no drift means no write", async (t) => {
  const { admin } = cluster;
  const namespace = await createNamespace(admin, "drift");
  const operator = await startTestOperator(cluster, namespace, { "resync-ms": "1500" });
  t.after(() => operator.close());
  await createStore(admin, namespace, "st", {});
  const stsRef = { apiVersion: "apps/v1", kind: "StatefulSet", namespace, name: "st-ingest" };
  await waitFor("ingest StatefulSet", () => admin.get(stsRef));
  await waitFor(
    "settled",
    async () => (await getStore(admin, namespace, "st")).status?.observedGeneration === 1,
  );
  await operator.controller.idle(); // the first reconcile's Events are recorded after its status

  const writes: WriteRecord[] = [];
  const unsubscribe = operator.client.onWrite((write) => writes.push(write));
  await new Promise((r) => setTimeout(r, 3500)); // two periodic relists
  unsubscribe();
  assert.deepEqual(writes, [], "relists without drift write nothing");

  // Someone scales ingest by hand and edits the capture config: the operator puts both back.
  await admin.mergePatch(stsRef, { spec: { replicas: 0 } });
  await admin.mergePatch(
    { apiVersion: "v1", kind: "ConfigMap", namespace, name: "st-capture" },
    { data: { "capture.yaml": "enabled: false\n" } },
  );
  await waitFor(
    "replicas restored",
    async () => ((await admin.get(stsRef))?.["spec"] as { replicas: number }).replicas === 2,
    10_000,
  );
  await waitFor(
    "capture config restored",
    async () => {
      const configMap = await admin.get({
        apiVersion: "v1",
        kind: "ConfigMap",
        namespace,
        name: "st-capture",
      });
      return /enabled: true/.test((configMap?.["data"] as Record<string, string>)["capture.yaml"] ?? "");
    },
    10_000,
  );
});

test("a watch answered 410 Gone relists once and sees every change made meanwhile, once", async (t) => {
  const { admin } = cluster;
  const namespace = await createNamespace(admin, "gone");
  for (const name of ["kept", "changed", "removed"]) await createStore(admin, namespace, name, {});
  const announced: string[] = [];
  const informer = new Informer(
    admin,
    {
      apiVersion: "sessiontrack.io/v1alpha1",
      kind: "SessionStore",
      namespace,
      silenceMs: 60_000,
      resyncMs: 600_000,
    },
    (type, object) => announced.push(`${type} ${object.metadata.name ?? ""}`),
    silentLogger,
  );
  await informer.start();
  t.after(() => informer.stop());
  assert.deepEqual(announced.sort(), ["added changed", "added kept", "added removed"]);
  announced.length = 0;

  // A spec change of the CRD (what an upgrade does) makes the API server drop the kind's
  // storage and watch cache: open watches end cleanly, and the new cache starts at the
  // current revision, so a watch resumed from an older resourceVersion is answered 410 Expired.
  // A second watch from the same point tells the test when the old watches have ended.
  const crdRef = {
    apiVersion: "apiextensions.k8s.io/v1",
    kind: "CustomResourceDefinition",
    name: "sessionstores.sessiontrack.io",
  };
  let probeDone: (error: unknown) => void = () => undefined;
  const probeEnded = new Promise<unknown>((done) => (probeDone = done));
  const stopProbe = await admin.watch(
    "sessiontrack.io/v1alpha1",
    "SessionStore",
    namespace,
    informer.lastResourceVersion,
    () => undefined,
    (error) => probeDone(error),
  );
  t.after(stopProbe);
  const printerColumn = { name: "Probe", type: "string", jsonPath: ".metadata.uid", priority: 1 };
  await editCrd(admin, crdRef, (columns) => [...columns, printerColumn]);
  t.after(() => editCrd(admin, crdRef, (columns) => columns.filter((column) => column.name !== "Probe")));
  const ended = await Promise.race([
    probeEnded,
    new Promise((r) => setTimeout(() => r("still open 20 s after the CRD change"), 20_000).unref()),
  ]);
  assert.equal(ended ?? undefined, undefined, "the old watch ended cleanly (no error)");

  // Changes while the informer's watch is down.
  await admin.mergePatch(storeRef(namespace, "changed"), { spec: { ingest: { replicas: 4 } } });
  await admin.delete(storeRef(namespace, "removed"));
  await createStore(admin, namespace, "created", {});

  await waitFor(
    "the informer's cache after the 410",
    () =>
      informer.relists.gone >= 1 &&
      informer.get(namespace, "created") !== undefined &&
      informer.get(namespace, "removed") === undefined &&
      (informer.get(namespace, "changed")?.["spec"] as { ingest?: { replicas?: number } }).ingest
        ?.replicas === 4,
    20_000,
  );
  await new Promise((r) => setTimeout(r, 500)); // anything announced twice would show by now
  t.diagnostic(`announced after the CRD change: ${announced.join(", ")}`);
  const count = (entry: string) => announced.filter((seen) => seen === entry).length;
  assert.equal(informer.relists.gone, 1, "one relist for the one 410");
  assert.equal(informer.relists.error, 0, "no other relist");
  assert.equal(count("modified changed"), 1, `the change was announced once: ${announced.join(", ")}`);
  assert.equal(count("deleted removed"), 1, `the delete was announced once: ${announced.join(", ")}`);
  assert.equal(count("added created"), 1, `the new object was announced once: ${announced.join(", ")}`);
  assert.ok(
    count("resync kept") <= 1,
    `the unchanged object was re-announced at most once: ${announced.join(", ")}`,
  );
  assert.equal(announced.length, 3 + count("resync kept"), `nothing else: ${announced.join(", ")}`);
});

/** Replaces the CRD's printer columns (a spec change: the API server re-creates the kind's storage). */
async function editCrd(
  admin: KubeClient,
  ref: { apiVersion: string; kind: string; name: string },
  edit: (columns: { name: string }[]) => { name: string }[],
): Promise<void> {
  const crd = await admin.get(ref);
  assert.ok(crd, "the CRD exists");
  const version = (crd["spec"] as { versions: { additionalPrinterColumns?: { name: string }[] }[] })
    .versions[0];
  assert.ok(version);
  version.additionalPrinterColumns = edit(version.additionalPrinterColumns ?? []);
  await admin.replace(crd);
}
