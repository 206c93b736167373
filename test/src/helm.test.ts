// The Helm chart: lint and template are clean, it installs onto a real kube-apiserver, and
// the operator's RBAC allows exactly what it needs, cluster-wide or in one namespace.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { after, before, describe, test } from "node:test";
import type { TestContext } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";

import { startControlPlane } from "@sessiontrack/testkit";
import type { ControlPlane } from "@sessiontrack/testkit";
import { parseAllDocuments } from "yaml";

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const CHART = join(REPO, "charts", "sessiontrack");
const CRD_FILE = "sessionstores.sessiontrack.io.yaml";
const OPERATOR_BIN = join(REPO, "operator", "bin", "sessiontrack-operator.js");

/** What the operator may do, as `kubectl auth can-i` resources (resource.group). */
const NEEDED: ReadonlyArray<{ resource: string; verbs: readonly string[] }> = [
  { resource: "sessionstores.sessiontrack.io", verbs: ["get", "list", "watch", "patch", "update"] },
  { resource: "sessionstores.sessiontrack.io/status", verbs: ["get", "patch", "update"] },
  { resource: "statefulsets.apps", verbs: ["get", "list", "watch", "create", "patch", "update", "delete"] },
  { resource: "deployments.apps", verbs: ["get", "list", "watch", "create", "patch", "update", "delete"] },
  { resource: "services", verbs: ["get", "list", "watch", "create", "patch", "update", "delete"] },
  { resource: "configmaps", verbs: ["get", "list", "watch", "create", "patch", "update", "delete"] },
  { resource: "secrets", verbs: ["get", "list", "watch", "create", "patch", "update", "delete"] },
  { resource: "persistentvolumeclaims", verbs: ["get", "list", "watch", "delete"] },
  { resource: "controllerrevisions.apps", verbs: ["get", "list", "watch", "create", "patch", "delete"] },
  // patch: the sessiontrack.io/drain annotation on an ingest pod before a scale-down.
  { resource: "pods", verbs: ["get", "list", "watch", "patch"] },
  { resource: "events", verbs: ["create", "patch"] },
  { resource: "events.events.k8s.io", verbs: ["create", "patch"] },
];
const LEASE_VERBS = ["get", "create", "update", "patch"];

/** Things the operator must never be able to do, wherever it runs. */
const FORBIDDEN: ReadonlyArray<readonly string[]> = [
  ["delete", "namespaces"],
  ["create", "namespaces"],
  ["get", "nodes"],
  ["create", "clusterroles"],
  ["bind", "clusterroles"],
  ["escalate", "roles"],
  ["create", "rolebindings"],
  ["impersonate", "users"],
  ["delete", "customresourcedefinitions.apiextensions.k8s.io"],
  ["create", "sessionstores.sessiontrack.io"],
  ["delete", "sessionstores.sessiontrack.io"],
  ["create", "pods"],
  ["delete", "pods"],
  ["update", "pods"],
  ["create", "pods/exec"],
  ["create", "persistentvolumeclaims"],
  ["update", "persistentvolumeclaims"],
  ["update", "controllerrevisions.apps"],
  ["delete", "events"],
  ["delete", "leases.coordination.k8s.io"],
];

interface Manifest {
  kind: string;
  metadata: { name: string; namespace?: string };
  [key: string]: unknown;
}

/** Runs `fn` over `items` with at most `limit` at a time (kubectl start-up is the cost). */
async function mapLimited<T, R>(
  items: readonly T[],
  limit: number,
  fn: (item: T) => Promise<R>,
): Promise<R[]> {
  const results: R[] = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const index = next++;
      results[index] = await fn(items[index] as T);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

describe("sessiontrack Helm chart", () => {
  let cp: ControlPlane;

  async function helmOk(args: readonly string[]): Promise<string> {
    const result = await cp.helm(args);
    assert.equal(result.code, 0, `helm ${args.join(" ")} failed:\n${result.stdout}\n${result.stderr}`);
    return result.stdout;
  }

  async function kubectlOk(args: readonly string[]): Promise<string> {
    const result = await cp.kubectl(args);
    assert.equal(result.code, 0, `kubectl ${args.join(" ")} failed:\n${result.stderr}`);
    return result.stdout;
  }

  async function render(...set: string[]): Promise<Manifest[]> {
    const out = await helmOk(["template", "sessiontrack", CHART, "-n", "sessiontrack-system", ...set]);
    return parseAllDocuments(out)
      .map((document) => document.toJS() as Manifest | null)
      .filter((manifest): manifest is Manifest => manifest !== null);
  }

  /**
   * `kubectl auth can-i` as the ServiceAccount for every check; returns the checks whose
   * answer differed from `expected`.
   */
  async function canI(
    serviceAccount: string,
    checks: ReadonlyArray<readonly string[]>,
    expected: "yes" | "no",
  ): Promise<string[]> {
    const answers = await mapLimited(checks, 4, async (check) => {
      const result = await cp.kubectl(["auth", "can-i", ...check, `--as=${serviceAccount}`]);
      const answer = result.stdout.trim();
      if (answer !== "yes" && answer !== "no") {
        throw new Error(
          `kubectl auth can-i ${check.join(" ")}: unexpected answer\n${result.stdout}${result.stderr}`,
        );
      }
      return answer === expected ? undefined : `${check.join(" ")} -> ${answer}`;
    });
    return answers.filter((answer): answer is string => answer !== undefined);
  }

  /** `kubectl auth can-i --list` as a map "resource" -> "verb verb ..." (resource rules only). */
  async function listRules(subject: string, namespace: string): Promise<Map<string, string>> {
    const out = await kubectlOk(["auth", "can-i", "--list", "-n", namespace, `--as=${subject}`]);
    const rules = new Map<string, string>();
    for (const line of out.split("\n").slice(1)) {
      const match = /^(\S+)\s+\[\]\s+\[[^\]]*\]\s+\[([^\]]*)\]\s*$/.exec(line);
      if (match?.[1] !== undefined && match[2] !== undefined)
        rules.set(match[1], match[2].split(" ").sort().join(" "));
    }
    return rules;
  }

  /**
   * Everything the ServiceAccount may do in `namespace` beyond what any authenticated user
   * may (a ServiceAccount with no bindings is the baseline): "and no more".
   */
  async function grantedBeyondBaseline(
    serviceAccount: string,
    namespace: string,
  ): Promise<Map<string, string>> {
    const [granted, baseline] = await Promise.all([
      listRules(serviceAccount, namespace),
      listRules("system:serviceaccount:default:no-bindings", namespace),
    ]);
    for (const [resource, verbs] of baseline) if (granted.get(resource) === verbs) granted.delete(resource);
    return granted;
  }

  function expectedRules(withLeases: boolean): Map<string, string> {
    const rules = new Map(NEEDED.map(({ resource, verbs }) => [resource, [...verbs].sort().join(" ")]));
    if (withLeases) rules.set("leases.coordination.k8s.io", [...LEASE_VERBS].sort().join(" "));
    return rules;
  }

  /**
   * Runs the real operator (operator/bin) with nothing but the chart's ServiceAccount token,
   * applies the minimal example into `storeNamespace` and waits for it to be reconciled:
   * owned objects created, status written, lease taken, and no permission error logged.
   */
  async function operatorReconcilesAs(
    t: TestContext,
    options: {
      releaseNamespace: string;
      serviceAccount: string;
      storeNamespace: string;
      watchNamespace?: string;
    },
  ): Promise<void> {
    const kubeconfig = await cp.serviceAccountKubeconfig(options.releaseNamespace, options.serviceAccount);
    const operator = spawn(
      process.execPath,
      [
        OPERATOR_BIN,
        "--kubeconfig",
        kubeconfig,
        ...(options.watchNamespace === undefined ? [] : ["--namespace", options.watchNamespace]),
        "--lease-namespace",
        options.releaseNamespace,
        "--metrics-listen",
        "127.0.0.1:0",
        "--identity",
        "helm-test",
      ],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    let log = "";
    operator.stdout.on("data", (chunk: Buffer) => (log += chunk.toString("utf8")));
    operator.stderr.on("data", (chunk: Buffer) => (log += chunk.toString("utf8")));
    const exited = new Promise((resolve) => operator.once("exit", resolve));
    t.after(async () => {
      operator.kill("SIGTERM");
      await exited;
    });

    for (const file of ["tenants-secret.yaml", "sessionstore-minimal.yaml"]) {
      await kubectlOk(["apply", "-n", options.storeNamespace, "-f", join(REPO, "examples", file)]);
    }
    // Generous functional deadline: the operator reconciles within 2 s on an idle machine.
    const deadline = Date.now() + 30_000;
    let observed = "";
    while (Date.now() < deadline) {
      const status = await cp.kubectl([
        "get",
        "sst",
        "sessiontrack",
        "-n",
        options.storeNamespace,
        "-o",
        "jsonpath={.status.observedGeneration}",
      ]);
      observed = status.stdout.trim();
      if (observed === "1") break;
      await sleep(250);
    }
    assert.equal(observed, "1", `the operator did not reconcile in 30 s; its log:\n${log}`);
    const owned = await kubectlOk([
      "get",
      "statefulsets,deployments,controllerrevisions",
      "-n",
      options.storeNamespace,
      "-o",
      "name",
    ]);
    assert.match(owned, /statefulset\.apps\/sessiontrack-ingest/);
    assert.match(owned, /deployment\.apps\/sessiontrack-index/);
    assert.match(owned, /controllerrevision\.apps\//);
    assert.match(await kubectlOk(["get", "lease", "-n", options.releaseNamespace, "-o", "name"]), /lease/);
    assert.doesNotMatch(log, /forbidden|\b403\b/i, `permission errors in the operator's log:\n${log}`);
  }

  function neededChecks(namespaceArgs: readonly string[]): string[][] {
    return NEEDED.flatMap(({ resource, verbs }) => verbs.map((verb) => [verb, resource, ...namespaceArgs]));
  }

  before(async () => {
    cp = await startControlPlane();
  });

  after(async () => {
    await cp?.stop();
  });

  test("the chart's CRD is byte-identical to crds/ (one source of truth)", () => {
    const source = readFileSync(join(REPO, "crds", CRD_FILE));
    const inChart = readFileSync(join(CHART, "crds", CRD_FILE));
    assert.ok(
      source.equals(inChart),
      `charts/sessiontrack/crds/${CRD_FILE} differs from crds/${CRD_FILE}: ` +
        `run cp crds/${CRD_FILE} charts/sessiontrack/crds/`,
    );
  });

  test("helm lint --strict is clean, for both RBAC modes", async () => {
    for (const set of [[], ["--set", "watchNamespace=bots"]]) {
      const out = await helmOk(["lint", "--strict", CHART, ...set]);
      assert.match(out, /1 chart\(s\) linted, 0 chart\(s\) failed/);
      assert.doesNotMatch(out, /\[(WARNING|ERROR)\]/);
    }
  });

  test("helm package ships the CRD: templating the packaged chart with --include-crds yields it", async () => {
    const out = join(cp.dir, "packaged");
    await helmOk(["package", CHART, "--destination", out]);
    const rendered = await helmOk([
      "template",
      "sessiontrack",
      join(out, "sessiontrack-0.1.0.tgz"),
      "--include-crds",
    ]);
    const crds = parseAllDocuments(rendered)
      .map((document) => document.toJS() as Manifest | null)
      .filter((manifest): manifest is Manifest => manifest?.kind === "CustomResourceDefinition");
    assert.deepEqual(
      crds.map((crd) => crd.metadata.name),
      ["sessionstores.sessiontrack.io"],
    );
  });

  test("helm template renders the operator, its ServiceAccount and RBAC", async () => {
    const clusterWide = await render();
    assert.deepEqual(clusterWide.map((m) => `${m.kind}/${m.metadata.name}`).sort(), [
      "ClusterRole/sessiontrack-operator",
      "ClusterRoleBinding/sessiontrack-operator",
      "Deployment/sessiontrack-operator",
      "Role/sessiontrack-leader-election",
      "RoleBinding/sessiontrack-leader-election",
      "ServiceAccount/sessiontrack",
    ]);
    const deployment = clusterWide.find((m) => m.kind === "Deployment");
    const container = (
      deployment?.["spec"] as { template: { spec: { containers: Array<Record<string, unknown>> } } }
    ).template.spec.containers[0];
    assert.equal(container?.["image"], "ghcr.io/sessiontrack/sessiontrack:0.1.0");
    assert.deepEqual(container?.["command"], ["sessiontrack-operator"]);
    const args = container?.["args"] as string[];
    assert.ok(args.includes("--in-cluster=true"));
    assert.ok(args.includes("--leader-election=true"));
    assert.ok(args.includes("--lease-namespace=sessiontrack-system"));
    assert.ok(!args.some((arg) => arg.startsWith("--namespace=")), "cluster-wide: no --namespace");
    assert.deepEqual(container?.["livenessProbe"], {
      httpGet: { path: "/healthz", port: "metrics" },
      initialDelaySeconds: 5,
      periodSeconds: 10,
      failureThreshold: 3,
    });
    assert.equal((container?.["readinessProbe"] as { httpGet: { path: string } }).httpGet.path, "/readyz");

    const namespaced = await render("--set", "watchNamespace=bots", "--set", "metrics.service.enabled=true");
    const role = namespaced.find((m) => m.kind === "Role" && m.metadata.name === "sessiontrack-operator");
    assert.equal(role?.metadata.namespace, "bots");
    assert.ok(!namespaced.some((m) => m.kind === "ClusterRole" || m.kind === "ClusterRoleBinding"));
    assert.ok(namespaced.some((m) => m.kind === "Service"));
    const namespacedArgs = (
      namespaced.find((m) => m.kind === "Deployment")?.["spec"] as {
        template: { spec: { containers: Array<{ args: string[] }> } };
      }
    ).template.spec.containers[0]?.args;
    assert.ok(namespacedArgs?.includes("--namespace=bots"));

    const refused = await cp.helm([
      "template",
      "sessiontrack",
      CHART,
      "--set",
      "replicaCount=2",
      "--set",
      "leaderElection.enabled=false",
    ]);
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, /replicaCount > 1 needs leaderElection\.enabled=true/);

    // values.schema.json refuses bad values with the path and the rule.
    for (const [set, message] of [
      ["logLevel=loud", /at '\/logLevel': value must be one of 'trace'/],
      ["watchNamespace=Bad_NS", /at '\/watchNamespace': 'Bad_NS' does not match pattern/],
      ["rbac.creat=false", /additional properties 'creat' not allowed/],
    ] as const) {
      const bad = await cp.helm(["template", "sessiontrack", CHART, "--set", set]);
      assert.notEqual(bad.code, 0, `--set ${set} was accepted`);
      assert.match(bad.stderr, message);
    }
  });

  test("helm install (cluster-wide) creates the CRD, Deployment, ServiceAccount and RBAC; RBAC is exactly enough", async () => {
    const installed = await helmOk([
      "install",
      "sessiontrack",
      CHART,
      "-n",
      "sessiontrack-system",
      "--create-namespace",
    ]);
    assert.match(installed, /It reconciles SessionStores in every namespace\./, "NOTES.txt is printed");
    assert.match(
      installed,
      /kubectl patch sst <name> --type=merge -p '\{"spec":\{"capture":\{"enabled":false\}\}\}'/,
    );
    await kubectlOk([
      "wait",
      "--for=condition=Established",
      "crd/sessionstores.sessiontrack.io",
      "--timeout=60s",
    ]);
    const names = await kubectlOk([
      "get",
      "deployment/sessiontrack-operator",
      "serviceaccount/sessiontrack",
      "role/sessiontrack-leader-election",
      "rolebinding/sessiontrack-leader-election",
      "-n",
      "sessiontrack-system",
      "-o",
      "name",
    ]);
    assert.equal(names.trim().split("\n").length, 4);
    await kubectlOk(["get", "clusterrole/sessiontrack-operator", "clusterrolebinding/sessiontrack-operator"]);

    const sa = "system:serviceaccount:sessiontrack-system:sessiontrack";
    await kubectlOk(["create", "namespace", "bots"]);
    assert.deepEqual(await grantedBeyondBaseline(sa, "sessiontrack-system"), expectedRules(true));
    assert.deepEqual(await grantedBeyondBaseline(sa, "bots"), expectedRules(false));
    const leases = LEASE_VERBS.map((verb) => [
      verb,
      "leases.coordination.k8s.io",
      "-n",
      "sessiontrack-system",
    ]);
    assert.deepEqual(
      await canI(sa, [...neededChecks(["-n", "bots"]), ...neededChecks(["-A"]), ...leases], "yes"),
      [],
    );
    assert.deepEqual(
      await canI(
        sa,
        [
          ...FORBIDDEN.map((check) => [...check, "-n", "bots"]),
          // The lease lives in the release namespace only.
          ["update", "leases.coordination.k8s.io", "-n", "bots"],
        ],
        "no",
      ),
      [],
    );
  });

  test("the real operator, with only the chart's ServiceAccount token, reconciles a SessionStore (cluster-wide)", async (t) => {
    await kubectlOk(["create", "namespace", "shop"]);
    await operatorReconcilesAs(t, {
      releaseNamespace: "sessiontrack-system",
      serviceAccount: "sessiontrack",
      storeNamespace: "shop",
    });
  });

  test("helm install with watchNamespace confines the operator to that namespace", async (t) => {
    await kubectlOk(["create", "namespace", "team-a"]);
    const installed = await helmOk([
      "install",
      "st-team-a",
      CHART,
      "-n",
      "ops",
      "--create-namespace",
      "--set",
      "watchNamespace=team-a",
    ]);
    assert.match(installed, /It reconciles SessionStores in namespace team-a only\./);
    await kubectlOk([
      "get",
      "role/st-team-a-sessiontrack-operator",
      "rolebinding/st-team-a-sessiontrack-operator",
      "-n",
      "team-a",
    ]);
    const missing = await cp.kubectl(["get", "clusterrole/st-team-a-sessiontrack-operator"]);
    assert.notEqual(missing.code, 0, "no ClusterRole in namespaced mode");

    const sa = "system:serviceaccount:ops:st-team-a-sessiontrack";
    assert.deepEqual(await grantedBeyondBaseline(sa, "team-a"), expectedRules(false));
    // In its own namespace it may only hold the lease; elsewhere nothing at all.
    assert.deepEqual(
      await grantedBeyondBaseline(sa, "ops"),
      new Map([["leases.coordination.k8s.io", [...LEASE_VERBS].sort().join(" ")]]),
    );
    assert.deepEqual(await grantedBeyondBaseline(sa, "bots"), new Map());
    const leases = LEASE_VERBS.map((verb) => [verb, "leases.coordination.k8s.io", "-n", "ops"]);
    assert.deepEqual(await canI(sa, [...neededChecks(["-n", "team-a"]), ...leases], "yes"), []);
    assert.deepEqual(
      await canI(
        sa,
        [
          ...FORBIDDEN.map((check) => [...check, "-n", "team-a"]),
          // Nothing outside team-a: not another namespace, not cluster-wide lists.
          ["get", "secrets", "-n", "bots"],
          ["list", "secrets", "-n", "default"],
          ["create", "statefulsets.apps", "-n", "bots"],
          ["list", "sessionstores.sessiontrack.io", "-A"],
          ["watch", "pods", "-A"],
          ["get", "leases.coordination.k8s.io", "-n", "team-a"],
        ],
        "no",
      ),
      [],
    );

    await operatorReconcilesAs(t, {
      releaseNamespace: "ops",
      serviceAccount: "st-team-a-sessiontrack",
      storeNamespace: "team-a",
      watchNamespace: "team-a",
    });
  });
});
