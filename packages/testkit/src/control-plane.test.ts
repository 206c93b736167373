import assert from "node:assert/strict";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { startControlPlane } from "./control-plane.js";
import type { CommandResult } from "./process.js";

/** RBAC changes reach the authorizer through an informer, a few milliseconds later. */
async function untilOk(run: () => Promise<CommandResult>, timeoutMs = 10_000): Promise<CommandResult> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const result = await run();
    if (result.code === 0 || Date.now() > deadline) return result;
    await sleep(100);
  }
}

// One control plane for the whole file: starting it is the slow part (seconds).
test("startControlPlane: a real kube-apiserver + etcd with RBAC", async (t) => {
  const cp = await startControlPlane({
    users: [{ name: "developer" }, { name: "viewer", groups: ["sessiontrack:viewers"] }],
  });
  t.after(() => cp.stop());
  assert.match(cp.server, /^https:\/\/127\.0\.0\.1:\d+$/);
  assert.match(readFileSync(cp.caPath, "utf8"), /BEGIN CERTIFICATE/);

  await t.test("admin: kubectl creates a namespace and reads it back", async () => {
    const created = await cp.kubectl(["create", "namespace", "tenant-a"]);
    assert.equal(created.code, 0, created.stderr);
    const got = await cp.kubectl(["get", "namespace", "tenant-a", "-o", "jsonpath={.metadata.name}"]);
    assert.equal(got.code, 0, got.stderr);
    assert.equal(got.stdout, "tenant-a");
  });

  await t.test("admin: kubectl apply reads a manifest from input", async () => {
    const configMap = {
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: { name: "settings", namespace: "tenant-a" },
      data: { retention: "30d" },
    };
    const applied = await cp.kubectl(["apply", "-f", "-"], { input: JSON.stringify(configMap) });
    assert.equal(applied.code, 0, applied.stderr);
    const got = await cp.kubectl([
      "get",
      "configmap",
      "settings",
      "-n",
      "tenant-a",
      "-o",
      "jsonpath={.data.retention}",
    ]);
    assert.equal(got.stdout, "30d");
  });

  await t.test("a non-admin token user is Forbidden until RBAC grants it", async () => {
    const kubeconfig = cp.kubeconfigFor("developer");
    const denied = await cp.kubectl(["get", "configmaps", "-n", "tenant-a"], { kubeconfig });
    assert.notEqual(denied.code, 0);
    assert.match(denied.stderr, /Forbidden/);
    assert.match(denied.stderr, /User "developer" cannot list resource "configmaps"/);

    // A Role of our own: the aggregated ClusterRoles (view, edit, admin) stay empty without
    // kube-controller-manager, which is what fills them in.
    const role = await cp.kubectl([
      "create",
      "role",
      "configmap-reader",
      "--verb=get,list",
      "--resource=configmaps",
      "-n",
      "tenant-a",
    ]);
    assert.equal(role.code, 0, role.stderr);
    const granted = await cp.kubectl([
      "create",
      "rolebinding",
      "developer-reads-configmaps",
      "--role=configmap-reader",
      "--user=developer",
      "-n",
      "tenant-a",
    ]);
    assert.equal(granted.code, 0, granted.stderr);
    const allowed = await untilOk(() =>
      cp.kubectl(["get", "configmaps", "-n", "tenant-a", "-o", "name"], { kubeconfig }),
    );
    assert.equal(allowed.code, 0, allowed.stderr);
    assert.match(allowed.stdout, /configmap\/settings/);
    // Still only in that namespace.
    const elsewhere = await cp.kubectl(["get", "configmaps", "-n", "default"], { kubeconfig });
    assert.match(elsewhere.stderr, /Forbidden/);
  });

  await t.test("token users carry their groups", async () => {
    const kubeconfig = cp.kubeconfigFor("viewer");
    const whoami = await cp.kubectl(["auth", "whoami", "-o", "json"], { kubeconfig });
    assert.equal(whoami.code, 0, whoami.stderr);
    const review = JSON.parse(whoami.stdout) as {
      status: { userInfo: { username: string; groups: string[] } };
    };
    assert.equal(review.status.userInfo.username, "viewer");
    assert.ok(review.status.userInfo.groups.includes("sessiontrack:viewers"), whoami.stdout);
  });

  await t.test("kubeconfigFor names the declared users when asked for an unknown one", () => {
    assert.throws(() => cp.kubeconfigFor("mallory"), /no user "mallory".*developer, viewer/);
  });

  await t.test("a ServiceAccount gets a token from the TokenRequest API and is subject to RBAC", async () => {
    const kubeconfig = await cp.serviceAccountKubeconfig("operator-system", "sessiontrack-operator");
    const whoami = await cp.kubectl(["auth", "whoami", "-o", "jsonpath={.status.userInfo.username}"], {
      kubeconfig,
    });
    assert.equal(whoami.code, 0, whoami.stderr);
    assert.equal(whoami.stdout, "system:serviceaccount:operator-system:sessiontrack-operator");
    const denied = await cp.kubectl(["get", "secrets"], { kubeconfig });
    assert.match(denied.stderr, /Forbidden/);
  });

  await t.test("no controllers run: a Deployment keeps the status a test patches in", async () => {
    const deployment = {
      apiVersion: "apps/v1",
      kind: "Deployment",
      metadata: { name: "ingest", namespace: "tenant-a" },
      spec: {
        replicas: 2,
        selector: { matchLabels: { app: "ingest" } },
        template: {
          metadata: { labels: { app: "ingest" } },
          spec: { containers: [{ name: "ingest", image: "sessiontrack/ingest:test" }] },
        },
      },
    };
    const created = await cp.kubectl(["apply", "-f", "-"], { input: JSON.stringify(deployment) });
    assert.equal(created.code, 0, created.stderr);
    const patched = await cp.kubectl([
      "patch",
      "deployment",
      "ingest",
      "-n",
      "tenant-a",
      "--subresource=status",
      "--type=merge",
      "-p",
      JSON.stringify({ status: { replicas: 2, readyReplicas: 2, observedGeneration: 1 } }),
    ]);
    assert.equal(patched.code, 0, patched.stderr);
    const got = await cp.kubectl([
      "get",
      "deployment",
      "ingest",
      "-n",
      "tenant-a",
      "-o",
      "jsonpath={.status.readyReplicas}",
    ]);
    assert.equal(got.stdout, "2");
  });

  await t.test("kubectl and the server report the pinned Kubernetes version", async () => {
    const version = await cp.kubectl(["version", "-o", "json"]);
    assert.equal(version.code, 0, version.stderr);
    const parsed = JSON.parse(version.stdout) as {
      clientVersion: { gitVersion: string };
      serverVersion: { gitVersion: string };
    };
    assert.equal(parsed.clientVersion.gitVersion, "v1.37.2");
    assert.equal(parsed.serverVersion.gitVersion, "v1.37.2");
  });

  await t.test("helm installs a chart into the control plane", async (t) => {
    const version = await cp.helm(["version", "--short"]);
    assert.equal(version.code, 0, version.stderr);
    assert.match(version.stdout, /^v3\.22\.0/);

    const chart = mkdtempSync(join(tmpdir(), "testkit-chart-"));
    t.after(() => rmSync(chart, { recursive: true, force: true }));
    mkdirSync(join(chart, "templates"));
    writeFileSync(
      join(chart, "Chart.yaml"),
      'apiVersion: v2\nname: probe\nversion: 0.1.0\nkubeVersion: ">=1.30.0-0"\n',
    );
    writeFileSync(
      join(chart, "templates", "configmap.yaml"),
      "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-probe\ndata:\n  greeting: {{ .Values.greeting | quote }}\n",
    );
    writeFileSync(join(chart, "values.yaml"), "greeting: hello\n");

    const installed = await cp.helm([
      "install",
      "probe",
      chart,
      "--namespace",
      "tenant-a",
      "--set",
      "greeting=hi",
    ]);
    assert.equal(installed.code, 0, installed.stderr);
    const got = await cp.kubectl([
      "get",
      "configmap",
      "probe-probe",
      "-n",
      "tenant-a",
      "-o",
      "jsonpath={.data.greeting}",
    ]);
    assert.equal(got.stdout, "hi");
    const list = await cp.helm(["list", "--all-namespaces", "-o", "json"]);
    assert.equal(list.code, 0, list.stderr);
    const releases = JSON.parse(list.stdout) as { name: string; status: string }[];
    assert.deepEqual(
      releases.map((release) => [release.name, release.status]),
      [["probe", "deployed"]],
    );
  });

  await cp.stop();
  assert.equal(existsSync(cp.dir), false, "stop() removes the temp dir");
});
