import { z } from "zod";

import type { KubeObject } from "./k8s/index.js";

/** The services the operator runs and can canary. */
export const COMPONENTS = ["ingest", "index", "archive"] as const;
export type Component = (typeof COMPONENTS)[number];

const quantity = z.union([z.string(), z.number()]).transform(String);
const resources = (requests: { cpu: string; memory: string }, limits: { cpu: string; memory: string }) =>
  z
    .object({
      requests: z
        .object({ cpu: quantity.default(requests.cpu), memory: quantity.default(requests.memory) })
        .prefault({}),
      limits: z
        .object({ cpu: quantity.default(limits.cpu), memory: quantity.default(limits.memory) })
        .prefault({}),
    })
    .prefault({});
const storage = (size: string) =>
  z.object({ size: quantity.default(size), storageClassName: z.string().optional() }).prefault({});
const secretRef = z.object({ name: z.string().min(1), key: z.string().optional() });
const IMAGE = "ghcr.io/sessiontrack/sessiontrack:0.1.0";
const names = z.array(z.string()).default([]);

/** Go-style duration ("30s", "5m", "1h30m", "250ms") in milliseconds. */
export function parseDuration(text: string): number {
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h)/g;
  const unit: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
  let total = 0;
  let consumed = 0;
  for (const match of text.matchAll(re)) {
    total += Number(match[1]) * (unit[match[2] ?? "s"] ?? 1000);
    consumed += match[0].length;
  }
  if (consumed !== text.length || consumed === 0)
    throw new Error(`"${text}" is not a duration such as 30s, 5m or 1h30m`);
  return total;
}
const duration = (fallback: string) =>
  z
    .string()
    .default(fallback)
    .transform((value, ctx) => {
      try {
        return parseDuration(value);
      } catch (error) {
        ctx.addIssue({ code: "custom", message: (error as Error).message });
        return z.NEVER;
      }
    });

const analysis = z
  .object({
    maxErrorRate: z.number().min(0).max(1).default(0.01),
    maxP95AckLatencyIncreasePct: z.number().min(0).default(20),
    maxBotOverheadPct: z.number().min(0).max(100).default(5),
  })
  .prefault({});

const specSchema = z.object({
  tenantsSecretRef: z.object({ name: z.string().min(1), key: z.string().default("tenants.yaml") }),
  ingest: z
    .object({
      image: z.string().min(1).default(IMAGE),
      replicas: z.number().int().min(0).default(2),
      resources: resources({ cpu: "500m", memory: "256Mi" }, { cpu: "2", memory: "512Mi" }),
      walStorage: storage("20Gi"),
      drainTimeoutSeconds: z.number().int().min(1).default(600),
    })
    .prefault({}),
  index: z
    .object({
      image: z.string().min(1).default(IMAGE),
      replicas: z.number().int().min(0).default(1),
      resources: resources({ cpu: "250m", memory: "256Mi" }, { cpu: "1", memory: "512Mi" }),
    })
    .prefault({}),
  archive: z
    .object({
      image: z.string().min(1).default(IMAGE),
      replicas: z.number().int().min(0).default(1),
      resources: resources({ cpu: "250m", memory: "256Mi" }, { cpu: "1", memory: "512Mi" }),
    })
    .prefault({}),
  meilisearch: z
    .object({
      mode: z.enum(["managed", "external"]).default("managed"),
      image: z.string().min(1).default("getmeili/meilisearch:v1.15.2"),
      storage: storage("10Gi"),
      resources: resources({ cpu: "500m", memory: "1Gi" }, { cpu: "2", memory: "2Gi" }),
      url: z.string().optional(),
      secretRef: secretRef.optional(),
      indexPrefix: z.string().default("sessiontrack"),
    })
    .prefault({}),
  s3: z
    .object({
      mode: z.enum(["managed", "external"]).default("managed"),
      image: z.string().min(1).default("minio/minio:RELEASE.2025-04-22T22-12-26Z"),
      storage: storage("50Gi"),
      resources: resources({ cpu: "250m", memory: "512Mi" }, { cpu: "1", memory: "1Gi" }),
      url: z.string().optional(),
      bucket: z.string().default("sessiontrack"),
      region: z.string().default("us-east-1"),
      forcePathStyle: z.boolean().default(true),
      secretRef: z
        .object({
          name: z.string().min(1),
          accessKeyIdKey: z.string().default("accessKeyId"),
          secretAccessKeyKey: z.string().default("secretAccessKey"),
        })
        .optional(),
    })
    .prefault({}),
  privacy: z
    .object({
      redaction: z.unknown().optional(),
      retention: z
        .object({ coldAfterDays: z.number().int().default(30), retentionDays: z.number().int().default(365) })
        .prefault({}),
      encryption: z.object({ keySecretRef: z.object({ name: z.string().min(1) }).optional() }).prefault({}),
    })
    .prefault({}),
  capture: z
    .object({
      enabled: z.boolean().default(true),
      sampleRate: z.number().min(0).max(1).default(1),
      stages: z
        .array(
          z.object({
            name: z.string().min(1),
            selector: z.object({
              tenants: names,
              bots: names,
              userGroups: names,
              percentage: z.number().int().min(0).max(100).default(100),
            }),
            // Unset: spec.rollout.analysis applies; set: thresholds left out take built-in defaults.
            analysis: z
              .object({
                maxErrorRate: z.number().min(0).max(1).optional(),
                maxP95AckLatencyIncreasePct: z.number().min(0).optional(),
                maxBotOverheadPct: z.number().min(0).max(100).optional(),
              })
              .optional(),
            bakeTime: duration("1h"),
          }),
        )
        .default([]),
      currentStage: z.string().optional(),
      advancement: z.enum(["Manual", "Automatic"]).default("Manual"),
      optOut: z.object({ users: names, bots: names, tenants: names }).prefault({}),
    })
    .prefault({}),
  rollout: z
    .object({
      canary: z
        .object({
          steps: z.array(z.number().int().min(1).max(100)).min(1).default([10, 25, 50, 100]),
          interval: duration("5m"),
        })
        .prefault({}),
      analysis,
      failureLimit: z.number().int().min(1).default(3),
      rollbackWindow: duration("1h"),
      revisionHistoryLimit: z.number().int().min(1).default(10),
    })
    .prefault({}),
});

/** A SessionStore's spec with every default filled in. */
export type SessionStoreSpec = z.infer<typeof specSchema>;
export type AnalysisThresholds = z.infer<typeof analysis>;
export type CaptureStage = SessionStoreSpec["capture"]["stages"][number];

/** A SessionStore as the API returns it. */
export type SessionStore = KubeObject & { spec?: unknown; status?: SessionStoreStatus };

/** status as the CRD declares it (unknown fields would be pruned by the API server). */
export interface SessionStoreStatus {
  phase?: "Pending" | "Progressing" | "Ready" | "Degraded" | "RolledBack";
  observedGeneration?: number;
  conditions?: Condition[];
  capture?: { enabled?: boolean; stage?: string; sampleRate?: number; configRevision?: string };
  canary?: {
    component?: Component;
    image?: string;
    weight?: number;
    step?: number;
    revision?: string;
    stepStartedAt?: string;
    failures?: number;
  };
  captureRollout?: {
    stage?: string;
    baselineP95Ms?: number;
    baselineMeasuredAt?: string;
    failures?: number;
  };
  promotionCheck?: { revision?: string; failures?: number };
  ingestDrain?: IngestDrainStatus;
  /** The same for an ended ingest canary scaling to zero. */
  canaryIngestDrain?: IngestDrainStatus;
  currentRevision?: string;
  stableRevision?: string;
  lastRollback?: { revision?: string; restoredRevision?: string; reason?: string; time?: string };
  components?: Partial<Record<Component | "meilisearch" | "s3", ComponentStatus>>;
}

/** An ingest scale-down waiting for its leaving replicas to ship their WAL. */
export interface IngestDrainStatus {
  /** The replica count the scale-down goes to (spec.ingest.replicas when it started). */
  replicas?: number;
  /** The leaving pods not drained yet. */
  pods?: string[];
  /** When the drain started: the drain timeout counts from here, across operator restarts. */
  startedAt?: string;
}

export interface ComponentStatus {
  replicas?: number;
  readyReplicas?: number;
  updatedReplicas?: number;
  ready?: boolean;
  image?: string;
}

/** metav1.Condition. */
export interface Condition {
  type: string;
  status: "True" | "False" | "Unknown";
  observedGeneration?: number;
  lastTransitionTime: string;
  reason: string;
  message: string;
}

/** The parsed spec, or an error message naming every bad field (spec.x.y: why). */
export function parseSessionStoreSpec(spec: unknown): { spec: SessionStoreSpec } | { error: string } {
  const result = specSchema.safeParse(spec ?? {});
  if (result.success) return { spec: result.data };
  const problems = result.error.issues.map(
    (issue) => `spec.${issue.path.map(String).join(".")}: ${issue.message}`,
  );
  return { error: problems.join("; ") };
}
