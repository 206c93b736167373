import { readFileSync } from "node:fs";

import { z } from "zod";

import { hostPortSetting, logLevelSetting, parseConfig, wholeNumberSetting } from "@sessiontrack/runtime";

const schema = z
  .object({
    listen: hostPortSetting("listen"),
    metricsListen: hostPortSetting("metrics-listen"),
    tenantsFile: z.string({ error: "is required (--tenants or SESSIONTRACK_TENANTS)" }).min(1, "is required"),
    backend: z.enum(["sqlite", "meilisearch"], { error: "must be sqlite or meilisearch" }),
    dataDir: z.string().min(1).optional(),
    meiliUrl: z.url({ error: "must be a URL such as http://127.0.0.1:7700" }).optional(),
    meiliKey: z.string().min(1, "is empty").optional(),
    // Set only when the key file could not be read; reported as a setting problem.
    meiliKeyFileProblem: z.string().optional(),
    meiliIndex: z
      .string()
      .regex(/^[A-Za-z0-9_-]{1,400}$/, "must be a Meilisearch index uid (A-Z, a-z, 0-9, '-', '_')"),
    meiliBatchDocuments: wholeNumberSetting(1).max(100_000, "must be at most 100000"),
    meiliTaskTimeoutMs: wholeNumberSetting(100),
    meiliTaskPruneIntervalMs: wholeNumberSetting(1000),
    meiliTaskRetentionMs: wholeNumberSetting(0),
    maxBatchEvents: wholeNumberSetting(1).max(100_000, "must be at most 100000"),
    logLevel: logLevelSetting(),
    shutdownGraceMs: wholeNumberSetting(0),
  })
  .superRefine((config, ctx) => {
    if (config.meiliKeyFileProblem !== undefined) {
      ctx.addIssue({ code: "custom", path: ["meiliKeyFile"], message: config.meiliKeyFileProblem });
    }
    if (config.backend === "sqlite" && config.dataDir === undefined) {
      ctx.addIssue({
        code: "custom",
        path: ["dataDir"],
        message: "is required with --backend sqlite (--data-dir or SESSIONTRACK_DATA_DIR)",
      });
    }
    if (config.backend === "meilisearch" && config.meiliUrl === undefined) {
      ctx.addIssue({
        code: "custom",
        path: ["meiliUrl"],
        message: "is required with --backend meilisearch (--meili-url or SESSIONTRACK_MEILI_URL)",
      });
    }
  });

/** The index service's settings, parsed once at start-up and frozen. */
export type IndexConfig = ReturnType<typeof loadIndexConfig>;

/** Flag name → environment variable → default; a flag wins over the environment. */
const SETTINGS = {
  listen: ["listen", "SESSIONTRACK_LISTEN", "127.0.0.1:7071"],
  metricsListen: ["metrics-listen", "SESSIONTRACK_METRICS_LISTEN", "127.0.0.1:9465"],
  tenantsFile: ["tenants", "SESSIONTRACK_TENANTS", undefined],
  backend: ["backend", "SESSIONTRACK_INDEX_BACKEND", "sqlite"],
  dataDir: ["data-dir", "SESSIONTRACK_DATA_DIR", undefined],
  meiliUrl: ["meili-url", "SESSIONTRACK_MEILI_URL", undefined],
  meiliKey: ["meili-key", "SESSIONTRACK_MEILI_KEY", undefined],
  meiliIndex: ["meili-index", "SESSIONTRACK_MEILI_INDEX", "sessiontrack_events"],
  meiliBatchDocuments: ["meili-batch-documents", "SESSIONTRACK_MEILI_BATCH_DOCUMENTS", "5000"],
  meiliTaskTimeoutMs: ["meili-task-timeout-ms", "SESSIONTRACK_MEILI_TASK_TIMEOUT_MS", "60000"],
  meiliTaskPruneIntervalMs: [
    "meili-task-prune-interval-ms",
    "SESSIONTRACK_MEILI_TASK_PRUNE_INTERVAL_MS",
    "300000",
  ],
  meiliTaskRetentionMs: ["meili-task-retention-ms", "SESSIONTRACK_MEILI_TASK_RETENTION_MS", "3600000"],
  maxBatchEvents: ["max-batch-events", "SESSIONTRACK_INDEX_MAX_BATCH_EVENTS", "20000"],
  logLevel: ["log-level", "SESSIONTRACK_LOG_LEVEL", "info"],
  shutdownGraceMs: ["shutdown-grace-ms", "SESSIONTRACK_SHUTDOWN_GRACE_MS", "10000"],
} as const satisfies Record<string, readonly [string, string, string | undefined]>;

/**
 * Reads the index service's settings from flags (keyed by flag name without dashes, e.g.
 * `flags["meili-url"]`) and `SESSIONTRACK_*` environment variables, validates them and
 * returns them frozen. The Meilisearch key may come from --meili-key,
 * SESSIONTRACK_MEILI_KEY or a file named by --meili-key-file / SESSIONTRACK_MEILI_KEY_FILE.
 * Throws ConfigError naming every bad setting.
 */
export function loadIndexConfig(
  flags: Readonly<Record<string, string | undefined>>,
  env: NodeJS.ProcessEnv = process.env,
) {
  const raw: Record<string, unknown> = {};
  for (const [setting, [flag, variable, fallback]] of Object.entries(SETTINGS)) {
    raw[setting] = flags[flag] ?? env[variable] ?? fallback;
  }
  const keyFile = flags["meili-key-file"] ?? env["SESSIONTRACK_MEILI_KEY_FILE"];
  if (raw["meiliKey"] === undefined && keyFile !== undefined) {
    try {
      raw["meiliKey"] = readFileSync(keyFile, "utf8").trim();
    } catch (error) {
      raw["meiliKeyFileProblem"] = `cannot read ${keyFile} (${(error as Error).message})`;
    }
  }
  return parseConfig(schema, raw, "index settings (flags and SESSIONTRACK_* environment)");
}
