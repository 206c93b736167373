// The SessionStore CRD against a real kube-apiserver: it installs, the examples apply, bad
// specs are refused with the CEL rule's message, printer columns and `kubectl explain` work.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";

import { startControlPlane } from "@sessiontrack/testkit";
import type { ControlPlane } from "@sessiontrack/testkit";
import { parse as parseYaml } from "yaml";

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const CRD_PATH = join(REPO, "crds", "sessionstores.sessiontrack.io.yaml");
const EXAMPLES = join(REPO, "examples");

interface Schema {
  type?: string;
  description?: string;
  properties?: Record<string, Schema>;
  items?: Schema;
}

/** Dotted paths of schema fields that have no description. */
function undescribedFields(schema: Schema, path: string): string[] {
  const missing = schema.description === undefined || schema.description.trim() === "" ? [path] : [];
  for (const [name, child] of Object.entries(schema.properties ?? {})) {
    // metadata is ObjectMeta; the API server documents it.
    if (path === "" && name === "metadata") continue;
    missing.push(...undescribedFields(child, path === "" ? name : `${path}.${name}`));
  }
  if (schema.items !== undefined) missing.push(...undescribedFields(schema.items, `${path}[]`));
  return missing;
}

/** The value at `path` inside parsed JSON, or undefined. */
function dig(value: unknown, ...path: ReadonlyArray<string | number>): unknown {
  let current = value;
  for (const key of path) {
    if (current === null || typeof current !== "object") return undefined;
    current = (current as Record<string | number, unknown>)[key];
  }
  return current;
}

/** A SessionStore manifest: a valid minimal spec with `spec` merged over it. */
function sessionStore(name: string, spec: Record<string, unknown>): string {
  return JSON.stringify({
    apiVersion: "sessiontrack.io/v1alpha1",
    kind: "SessionStore",
    metadata: { name },
    spec: { tenantsSecretRef: { name: "sessiontrack-tenants" }, ...spec },
  });
}

describe("SessionStore CRD on a real kube-apiserver", () => {
  let cp: ControlPlane;

  async function kubectlOk(args: readonly string[], input?: string): Promise<string> {
    const result = await cp.kubectl(args, input === undefined ? {} : { input });
    assert.equal(result.code, 0, `kubectl ${args.join(" ")} failed:\n${result.stderr}`);
    return result.stdout;
  }

  async function getJson(args: readonly string[]): Promise<unknown> {
    return JSON.parse(await kubectlOk([...args, "-o", "json"])) as unknown;
  }

  before(async () => {
    cp = await startControlPlane();
    await kubectlOk(["apply", "--server-side", "-f", CRD_PATH]);
    await kubectlOk([
      "wait",
      "--for=condition=Established",
      "crd/sessionstores.sessiontrack.io",
      "--timeout=60s",
    ]);
    await kubectlOk(["create", "namespace", "stores"]);
  });

  after(async () => {
    await cp?.stop();
  });

  test("every field of the schema has a description (kubectl explain teaches it)", () => {
    const crd = parseYaml(readFileSync(CRD_PATH, "utf8")) as {
      spec: { versions: Array<{ schema: { openAPIV3Schema: Schema } }> };
    };
    const schema = crd.spec.versions[0]?.schema.openAPIV3Schema;
    assert.ok(schema, "the CRD has a schema");
    assert.deepEqual(undescribedFields(schema, ""), []);
  });

  test("the CRD is Established with its names, short name and category", async () => {
    const crd = await getJson(["get", "crd", "sessionstores.sessiontrack.io"]);
    const conditions = dig(crd, "status", "conditions") as Array<{ type: string; status: string }>;
    for (const type of ["Established", "NamesAccepted"]) {
      assert.equal(conditions.find((c) => c.type === type)?.status, "True", `${type} condition`);
    }
    assert.deepEqual(dig(crd, "status", "acceptedNames", "shortNames"), ["sst"]);
    assert.deepEqual(dig(crd, "status", "acceptedNames", "categories"), ["sessiontrack"]);
    assert.equal(dig(crd, "spec", "scope"), "Namespaced");
    const resources = await kubectlOk(["api-resources", "--api-group=sessiontrack.io", "--no-headers"]);
    assert.match(resources, /^sessionstores\s+sst\s+sessiontrack\.io\/v1alpha1\s+true\s+SessionStore$/m);
  });

  test("each example applies, and the minimal one gets the documented defaults", async () => {
    for (const file of ["tenants-secret.yaml", "sessionstore-minimal.yaml", "sessionstore-production.yaml"]) {
      await kubectlOk(["apply", "-n", "stores", "-f", join(EXAMPLES, file)]);
    }
    const minimal = await getJson(["get", "sst", "sessiontrack", "-n", "stores"]);
    const spec = (...path: string[]): unknown => dig(minimal, "spec", ...path);
    assert.equal(spec("ingest", "replicas"), 2);
    assert.equal(spec("ingest", "walStorage", "size"), "20Gi");
    assert.deepEqual(spec("ingest", "resources"), {
      requests: { cpu: "500m", memory: "256Mi" },
      limits: { cpu: "2", memory: "512Mi" },
    });
    assert.equal(spec("index", "replicas"), 1);
    assert.equal(spec("meilisearch", "mode"), "managed");
    assert.equal(spec("s3", "mode"), "managed");
    assert.equal(spec("capture", "enabled"), true);
    assert.equal(spec("capture", "sampleRate"), 1);
    assert.deepEqual(spec("rollout", "canary"), { steps: [10, 25, 50, 100], interval: "5m" });
    assert.deepEqual(spec("rollout", "analysis"), {
      maxErrorRate: 0.01,
      maxP95AckLatencyIncreasePct: 20,
      maxBotOverheadPct: 5,
    });
    assert.deepEqual(spec("privacy", "retention"), { coldAfterDays: 30, retentionDays: 365 });
    assert.equal((spec("privacy", "redaction", "detectors") as unknown[]).length, 6);
    assert.equal(spec("tenantsSecretRef", "key"), "tenants.yaml");

    const production = await getJson(["get", "sessionstore", "sessiontrack-prod", "-n", "stores"]);
    assert.equal(dig(production, "spec", "s3", "mode"), "external");
    assert.equal((dig(production, "spec", "capture", "stages") as unknown[]).length, 3);
    // A value set by hand keeps its siblings' defaults.
    assert.deepEqual(dig(production, "spec", "archive", "resources", "requests"), {
      cpu: "500m",
      memory: "256Mi",
    });
  });

  const invalid: Array<{ name: string; spec: Record<string, unknown>; message: RegExp }> = [
    {
      name: "external Meilisearch without url and secretRef",
      spec: { meilisearch: { mode: "external" } },
      message: /meilisearch\.mode external requires url and secretRef/,
    },
    {
      name: "managed Meilisearch with a url",
      spec: { meilisearch: { mode: "managed", url: "https://search.example.com" } },
      message: /meilisearch\.mode managed must not set url or secretRef/,
    },
    {
      name: "external S3 without bucket",
      spec: { s3: { mode: "external", url: "https://s3.example.com", secretRef: { name: "s3" } } },
      message: /s3\.mode external requires url, bucket and secretRef/,
    },
    {
      name: "managed S3 with credentials",
      spec: { s3: { secretRef: { name: "s3" } } },
      message: /s3\.mode managed must not set url or secretRef/,
    },
    {
      name: "canary steps that go down",
      spec: { rollout: { canary: { steps: [50, 25, 100] } } },
      message: /rollout\.canary\.steps must be strictly increasing/,
    },
    {
      name: "canary steps that repeat",
      spec: { rollout: { canary: { steps: [10, 10, 100] } } },
      message: /rollout\.canary\.steps must be strictly increasing/,
    },
    {
      name: "a canary step above 100",
      spec: { rollout: { canary: { steps: [50, 150] } } },
      message:
        /spec\.rollout\.canary\.steps\[1\]: Invalid value: 150: spec\.rollout\.canary\.steps\[1\] in body should be less than or equal to 100/,
    },
    {
      name: "retention shorter than coldAfter",
      spec: { privacy: { retention: { coldAfterDays: 30, retentionDays: 7 } } },
      message: /privacy\.retention\.retentionDays must be greater than or equal to coldAfterDays/,
    },
    {
      name: "a current stage that is not a stage",
      spec: {
        capture: {
          currentStage: "everyone",
          stages: [{ name: "internal", selector: { userGroups: ["team"] } }],
        },
      },
      message: /capture\.currentStage must name one of capture\.stages/,
    },
    {
      name: "a stage selector that selects nothing",
      spec: { capture: { stages: [{ name: "internal", selector: {} }] } },
      message: /a stage selector must set at least one of tenants, bots, userGroups or percentage/,
    },
    {
      name: "automatic advancement with one stage",
      spec: {
        capture: { advancement: "Automatic", stages: [{ name: "full", selector: { percentage: 100 } }] },
      },
      message: /capture\.advancement Automatic needs at least two capture\.stages/,
    },
    {
      name: "a sample rate above 1",
      spec: { capture: { sampleRate: 1.5 } },
      message: /spec\.capture\.sampleRate in body should be less than or equal to 1/,
    },
    {
      name: "a zero rollback window",
      spec: { rollout: { rollbackWindow: "0s" } },
      message: /spec\.rollout\.rollbackWindow: Invalid value: "0s": must be a positive duration/,
    },
    {
      name: "requests above limits",
      spec: { ingest: { resources: { requests: { memory: "1Gi" }, limits: { memory: "512Mi" } } } },
      message: /resources\.requests\.memory must not exceed resources\.limits\.memory/,
    },
    {
      name: "a custom rule named like a detector",
      spec: { privacy: { redaction: { rules: [{ name: "email", pattern: "x" }] } } },
      message: /privacy\.redaction\.rules\[\]\.name must not be the name of a built-in detector/,
    },
    {
      name: "an unknown redaction action",
      spec: { privacy: { redaction: { detectors: [{ type: "email", action: "shred" }] } } },
      message: /Unsupported value: "shred": supported values: "mask", "hash", "drop"/,
    },
  ];

  test("invalid SessionStores are refused with the rule's message", async () => {
    for (const [index, item] of invalid.entries()) {
      const result = await cp.kubectl(["apply", "-n", "stores", "-f", "-"], {
        input: sessionStore(`invalid-${index}`, item.spec),
      });
      assert.notEqual(result.code, 0, `${item.name}: was accepted`);
      assert.match(result.stderr, item.message, `${item.name}: stderr was:\n${result.stderr}`);
    }
    const missing = await cp.kubectl(["apply", "-n", "stores", "-f", "-"], {
      input: JSON.stringify({
        apiVersion: "sessiontrack.io/v1alpha1",
        kind: "SessionStore",
        metadata: { name: "no-tenants" },
        spec: {},
      }),
    });
    assert.notEqual(missing.code, 0);
    assert.match(missing.stderr, /spec\.tenantsSecretRef: Required value/);
    const longName = await cp.kubectl(["apply", "-n", "stores", "-f", "-"], {
      input: sessionStore("a".repeat(41), {}),
    });
    assert.notEqual(longName.code, 0);
    assert.match(longName.stderr, /metadata\.name must be at most 40 characters/);
    const stored = await getJson(["get", "sst", "-n", "stores"]);
    const names = (dig(stored, "items") as Array<{ metadata: { name: string } }>).map(
      (item) => item.metadata.name,
    );
    assert.deepEqual(names.sort(), ["sessiontrack", "sessiontrack-prod"], "nothing invalid was stored");
  });

  test("storage can grow but never shrink or change class (transition rules)", async () => {
    await kubectlOk(
      ["apply", "-n", "stores", "-f", "-"],
      sessionStore("storage", { ingest: { walStorage: { size: "20Gi", storageClassName: "fast" } } }),
    );
    const patch = (walStorage: Record<string, unknown>) =>
      cp.kubectl([
        "patch",
        "sst",
        "storage",
        "-n",
        "stores",
        "--type=merge",
        "-p",
        JSON.stringify({ spec: { ingest: { walStorage } } }),
      ]);
    const shrink = await patch({ size: "10Gi" });
    assert.notEqual(shrink.code, 0, "shrinking was accepted");
    assert.match(shrink.stderr, /spec\.ingest\.walStorage: Invalid value: .*storage size can only grow/);
    const reclass = await patch({ storageClassName: "slow" });
    assert.notEqual(reclass.code, 0, "changing the class was accepted");
    assert.match(reclass.stderr, /storageClassName cannot change/);
    const grow = await patch({ size: "40Gi" });
    assert.equal(grow.code, 0, grow.stderr);
    assert.equal(
      dig(await getJson(["get", "sst", "storage", "-n", "stores"]), "spec", "ingest", "walStorage", "size"),
      "40Gi",
    );
  });

  test("kubectl get sst shows Phase, Capture, Stage, Canary %, Revision and Ready from the status", async () => {
    await kubectlOk(["apply", "-n", "stores", "-f", "-"], sessionStore("columns", {}));
    const status = {
      status: {
        phase: "Progressing",
        observedGeneration: 1,
        capture: { enabled: true, stage: "opt-in", sampleRate: 0.5, configRevision: "c-3" },
        canary: {
          component: "ingest",
          image: "ghcr.io/sessiontrack/sessiontrack:0.2.0",
          weight: 25,
          step: 1,
        },
        currentRevision: "columns-7d9f4c",
        stableRevision: "columns-5b8e21",
        conditions: [
          {
            type: "Ready",
            status: "False",
            reason: "CanaryInProgress",
            message: "canary at 25%",
            lastTransitionTime: "2026-01-01T00:00:00Z",
            observedGeneration: 1,
          },
        ],
      },
    };
    await kubectlOk([
      "patch",
      "sst",
      "columns",
      "-n",
      "stores",
      "--subresource=status",
      "--type=merge",
      "-p",
      JSON.stringify(status),
    ]);
    const table = await kubectlOk(["get", "sst", "columns", "-n", "stores"]);
    const [header, row] = table.trimEnd().split("\n");
    assert.match(header ?? "", /^NAME\s+PHASE\s+CAPTURE\s+STAGE\s+CANARY %\s+REVISION\s+READY\s+AGE$/);
    assert.match(
      row ?? "",
      /^columns\s+Progressing\s+true\s+opt-in\s+25\s+columns-7d9f4c\s+False\s+\d+[smh]$/,
    );

    // The status subresource validates too: a weight above 100 is refused.
    const bad = await cp.kubectl([
      "patch",
      "sst",
      "columns",
      "-n",
      "stores",
      "--subresource=status",
      "--type=merge",
      "-p",
      JSON.stringify({ status: { canary: { weight: 150 } } }),
    ]);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /status\.canary\.weight: Invalid value: 150: .*less than or equal to 100/);
  });

  test("kubectl explain teaches the capture and rollout fields", async () => {
    // kubectl wraps descriptions to the terminal width; compare with whitespace collapsed.
    const flat = (text: string): string => text.replace(/\s+/g, " ");
    const capture = await kubectlOk(["explain", "sessionstore.spec.capture"]);
    assert.match(capture, /GROUP:\s+sessiontrack\.io/);
    assert.match(capture, /KIND:\s+SessionStore/);
    assert.match(
      flat(capture),
      /Which sessions the bots capture\. Ingest serves this as CaptureConfig on WatchConfig/,
    );
    for (const field of ["enabled", "sampleRate", "stages", "currentStage", "advancement", "optOut"]) {
      assert.match(capture, new RegExp(`^\\s+${field}\\s+<`, "m"), `field ${field} listed`);
    }
    assert.match(flat(capture), /The instant kill switch\. false: every bot stops capturing within 2 s/);
    const analysis = await kubectlOk(["explain", "sst.spec.rollout.analysis"]);
    assert.match(analysis, /maxP95AckLatencyIncreasePct\s+<number>/);
    assert.match(flat(analysis), /Default 5, the product's enforced budget/);
    const stageAnalysis = await kubectlOk(["explain", "sst.status.captureRollout"]);
    for (const field of ["stage", "baselineP95Ms", "baselineMeasuredAt", "failures"]) {
      assert.match(stageAnalysis, new RegExp(`^\\s+${field}\\s+<`, "m"), `field ${field} listed`);
    }
    assert.match(flat(stageAnalysis), /a restarted operator, or a new leader, goes on with them/);
    const failures = await kubectlOk(["explain", "sst.status.captureRollout.failures"]);
    assert.match(
      flat(failures),
      /at spec\.rollout\.failureLimit the operator steps back to the stage before/,
    );
  });
});
