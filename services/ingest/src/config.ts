import { z } from "zod";

import { isLogLevel, parseConfig, parseHostPort } from "@sessiontrack/runtime";

const MiB = 1024 * 1024;

const integer = (min: number) =>
  z.coerce
    .number({ error: "must be a number" })
    .int("must be a whole number")
    .min(min, `must be at least ${min}`);

const schema = z.object({
  listen: z.string().transform((value, ctx) => {
    try {
      return parseHostPort(value, "listen");
    } catch (error) {
      ctx.addIssue({ code: "custom", message: (error as Error).message.replace(/^listen: /, "") });
      return z.NEVER;
    }
  }),
  metricsListen: z.string().transform((value, ctx) => {
    try {
      return parseHostPort(value, "metrics-listen");
    } catch (error) {
      ctx.addIssue({ code: "custom", message: (error as Error).message.replace(/^metrics-listen: /, "") });
      return z.NEVER;
    }
  }),
  dataDir: z.string({ error: "is required (--data-dir or SESSIONTRACK_DATA_DIR)" }).min(1, "is required"),
  tenantsFile: z.string({ error: "is required (--tenants or SESSIONTRACK_TENANTS)" }).min(1, "is required"),
  captureConfigFile: z.string().min(1).optional(),
  maxEventBytes: integer(1024).max(4 * MiB, "must be at most 4 MiB"),
  maxBatchEvents: integer(1).max(100_000, "must be at most 100000"),
  maxBatchBytes: integer(1024).max(256 * MiB, "must be at most 256 MiB"),
  walSegmentBytes: integer(1 * MiB),
  walMaxRetainedBytes: z.union([z.literal(Number.POSITIVE_INFINITY), integer(1 * MiB)]),
  logLevel: z.string().refine(isLogLevel, "must be trace, debug, info, warn, error, fatal or silent"),
  shutdownGraceMs: integer(0),
});

/** Ingest's settings, parsed once at start-up and frozen. */
export type IngestConfig = ReturnType<typeof loadIngestConfig>;

/** Flag name → environment variable → setting; a flag wins over the environment. */
const SETTINGS = {
  listen: ["listen", "SESSIONTRACK_LISTEN", "127.0.0.1:7070"],
  metricsListen: ["metrics-listen", "SESSIONTRACK_METRICS_LISTEN", "127.0.0.1:9464"],
  dataDir: ["data-dir", "SESSIONTRACK_DATA_DIR", undefined],
  tenantsFile: ["tenants", "SESSIONTRACK_TENANTS", undefined],
  captureConfigFile: ["capture-config", "SESSIONTRACK_CAPTURE_CONFIG", undefined],
  maxEventBytes: ["max-event-bytes", "SESSIONTRACK_MAX_EVENT_BYTES", String(MiB)],
  maxBatchEvents: ["max-batch-events", "SESSIONTRACK_MAX_BATCH_EVENTS", "5000"],
  maxBatchBytes: ["max-batch-bytes", "SESSIONTRACK_MAX_BATCH_BYTES", String(16 * MiB)],
  walSegmentBytes: ["wal-segment-bytes", "SESSIONTRACK_WAL_SEGMENT_BYTES", String(64 * MiB)],
  walMaxRetainedBytes: ["wal-max-retained-bytes", "SESSIONTRACK_WAL_MAX_RETAINED_BYTES", "Infinity"],
  logLevel: ["log-level", "SESSIONTRACK_LOG_LEVEL", "info"],
  shutdownGraceMs: ["shutdown-grace-ms", "SESSIONTRACK_SHUTDOWN_GRACE_MS", "10000"],
} as const satisfies Record<string, readonly [string, string, string | undefined]>;

/**
 * Reads ingest's settings from command-line flags (keyed by flag name without dashes,
 * e.g. `flags["data-dir"]`) and `SESSIONTRACK_*` environment variables, validates them
 * and returns them frozen. Throws ConfigError naming every bad setting.
 */
export function loadIngestConfig(
  flags: Readonly<Record<string, string | undefined>>,
  env: NodeJS.ProcessEnv = process.env,
) {
  const raw: Record<string, unknown> = {};
  for (const [setting, [flag, variable, fallback]] of Object.entries(SETTINGS)) {
    const value = flags[flag] ?? env[variable] ?? fallback;
    raw[setting] =
      setting === "walMaxRetainedBytes" && value === "Infinity" ? Number.POSITIVE_INFINITY : value;
  }
  return parseConfig(schema, raw, "ingest settings (flags and SESSIONTRACK_* environment)");
}
