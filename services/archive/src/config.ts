import { readFileSync } from "node:fs";

import { z } from "zod";

import { ConfigError } from "@sessiontrack/errors";
import { hostPortSetting, logLevelSetting, parseConfig } from "@sessiontrack/runtime";

const days = z.coerce
  .number({ error: "must be a number of days" })
  .int("must be whole days")
  .min(0, "must be at least 0 (0 = never)");

const schema = z
  .object({
    listen: hostPortSetting("listen"),
    metricsListen: hostPortSetting("metrics-listen"),
    tenantsFile: z.string({ error: "is required (--tenants or SESSIONTRACK_TENANTS)" }).min(1, "is required"),
    store: z.enum(["local", "s3"], { error: 'must be "local" or "s3"' }),
    dataDir: z.string().min(1).optional(),
    s3Endpoint: z.string().min(1).optional(),
    s3Bucket: z
      .string()
      .regex(
        /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/,
        "must be a valid S3 bucket name (3-63 of a-z, 0-9, '.', '-')",
      ),
    s3Region: z.string().min(1, "must not be empty"),
    s3AccessKey: z.string().min(1).optional(),
    s3SecretKey: z.string().min(1).optional(),
    s3ColdStorageClass: z.string().min(1).optional(),
    kekDir: z.string({ error: "is required (--kek-dir or SESSIONTRACK_KEK_DIR)" }).min(1, "is required"),
    coldAfterDays: days,
    retentionDays: days,
    policyFile: z.string().min(1).optional(),
    sweepIntervalSeconds: z.coerce.number({ error: "must be a number" }).int().min(1, "must be at least 1"),
    compactIdleSeconds: z.coerce
      .number({ error: "must be a number" })
      .int()
      .min(0, "must be at least 0 (0 = off)"),
    logLevel: logLevelSetting(),
    shutdownGraceMs: z.coerce.number({ error: "must be a number" }).int().min(0, "must be at least 0"),
  })
  .superRefine((config, ctx) => {
    if (config.store === "local" && config.dataDir === undefined) {
      ctx.addIssue({
        code: "custom",
        path: ["dataDir"],
        message: "is required with --store local (--data-dir or SESSIONTRACK_DATA_DIR)",
      });
    }
    if (config.store === "s3") {
      for (const [setting, flag] of [
        ["s3Endpoint", "--s3-endpoint or SESSIONTRACK_S3_ENDPOINT"],
        ["s3AccessKey", "--s3-access-key, SESSIONTRACK_S3_ACCESS_KEY or SESSIONTRACK_S3_ACCESS_KEY_FILE"],
        ["s3SecretKey", "--s3-secret-key, SESSIONTRACK_S3_SECRET_KEY or SESSIONTRACK_S3_SECRET_KEY_FILE"],
      ] as const) {
        if (config[setting] === undefined)
          ctx.addIssue({ code: "custom", path: [setting], message: `is required with --store s3 (${flag})` });
      }
    }
    if (config.retentionDays > 0 && config.coldAfterDays >= config.retentionDays) {
      ctx.addIssue({ code: "custom", path: ["coldAfterDays"], message: "must be below retention-days" });
    }
  });

/** The archive's settings, parsed once at start-up and frozen. */
export type ArchiveConfig = ReturnType<typeof loadArchiveConfig>;

/** Flag name → environment variable → default; a flag wins over the environment. */
const SETTINGS = {
  listen: ["listen", "SESSIONTRACK_LISTEN", "127.0.0.1:7072"],
  metricsListen: ["metrics-listen", "SESSIONTRACK_METRICS_LISTEN", "127.0.0.1:9466"],
  tenantsFile: ["tenants", "SESSIONTRACK_TENANTS", undefined],
  store: ["store", "SESSIONTRACK_ARCHIVE_STORE", "local"],
  dataDir: ["data-dir", "SESSIONTRACK_DATA_DIR", undefined],
  s3Endpoint: ["s3-endpoint", "SESSIONTRACK_S3_ENDPOINT", undefined],
  s3Bucket: ["s3-bucket", "SESSIONTRACK_S3_BUCKET", "sessiontrack"],
  s3Region: ["s3-region", "SESSIONTRACK_S3_REGION", "us-east-1"],
  s3AccessKey: ["s3-access-key", "SESSIONTRACK_S3_ACCESS_KEY", undefined],
  s3SecretKey: ["s3-secret-key", "SESSIONTRACK_S3_SECRET_KEY", undefined],
  s3ColdStorageClass: ["s3-cold-storage-class", "SESSIONTRACK_S3_COLD_STORAGE_CLASS", undefined],
  kekDir: ["kek-dir", "SESSIONTRACK_KEK_DIR", undefined],
  coldAfterDays: ["cold-after-days", "SESSIONTRACK_COLD_AFTER_DAYS", "0"],
  retentionDays: ["retention-days", "SESSIONTRACK_RETENTION_DAYS", "0"],
  policyFile: ["policy-file", "SESSIONTRACK_POLICY_FILE", undefined],
  sweepIntervalSeconds: ["sweep-interval-seconds", "SESSIONTRACK_SWEEP_INTERVAL_SECONDS", "3600"],
  compactIdleSeconds: ["compact-idle-seconds", "SESSIONTRACK_COMPACT_IDLE_SECONDS", "600"],
  logLevel: ["log-level", "SESSIONTRACK_LOG_LEVEL", "info"],
  shutdownGraceMs: ["shutdown-grace-ms", "SESSIONTRACK_SHUTDOWN_GRACE_MS", "10000"],
} as const satisfies Record<string, readonly [string, string, string | undefined]>;

/** A secret from its variable, or from the file its `<VAR>_FILE` names (a mounted Secret). */
function secretFromEnv(env: NodeJS.ProcessEnv, variable: string): string | undefined {
  const direct = env[variable];
  if (direct !== undefined && direct !== "") return direct;
  const file = env[`${variable}_FILE`];
  if (file === undefined || file === "") return undefined;
  try {
    return readFileSync(file, "utf8").trim();
  } catch (error) {
    throw new ConfigError(`${variable}_FILE: cannot read ${file} (${(error as Error).message})`, {
      cause: error,
    });
  }
}

/**
 * Reads the archive's settings from command-line flags (keyed by flag name without
 * dashes, e.g. `flags["kek-dir"]`) and `SESSIONTRACK_*` environment variables (S3 keys
 * also from `*_FILE`), validates them and returns them frozen. Throws ConfigError naming
 * every bad setting.
 */
export function loadArchiveConfig(
  flags: Readonly<Record<string, string | undefined>>,
  env: NodeJS.ProcessEnv = process.env,
) {
  const raw: Record<string, unknown> = {};
  for (const [setting, [flag, variable, fallback]] of Object.entries(SETTINGS)) {
    const fromEnv =
      setting === "s3AccessKey" || setting === "s3SecretKey" ? secretFromEnv(env, variable) : env[variable];
    raw[setting] = flags[flag] ?? fromEnv ?? fallback;
  }
  return parseConfig(schema, raw, "archive settings (flags and SESSIONTRACK_* environment)");
}
