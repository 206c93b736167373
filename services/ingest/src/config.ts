import { readFileSync } from "node:fs";

import { z } from "zod";

import { ConfigError } from "@sessiontrack/errors";
import {
  hostPortSetting,
  logLevelSetting,
  parseConfig,
  parseHostPort,
  wholeNumberSetting,
} from "@sessiontrack/runtime";

const MiB = 1024 * 1024;

/** A sink's address: `host:port`, `grpc://host:port` (plaintext) or `grpcs://host:port` (TLS). */
export interface SinkEndpoint {
  address: string;
  tls: boolean;
}

const sinkEndpoint = z.string().transform((value, ctx): SinkEndpoint => {
  const match = /^(?:(grpcs?|http|https):\/\/)?([^/\s]+?)\/?$/.exec(value.trim());
  if (match !== null) {
    try {
      if (parseHostPort(match[2]!, "url").port !== 0) {
        return { address: match[2]!, tls: match[1] === "grpcs" || match[1] === "https" };
      }
    } catch {
      // reported below
    }
  }
  ctx.addIssue({
    code: "custom",
    message: `"${value}" is not an address like grpc://127.0.0.1:7072 or 127.0.0.1:7072`,
  });
  return z.NEVER;
});

const schema = z.object({
  listen: hostPortSetting("listen"),
  metricsListen: hostPortSetting("metrics-listen"),
  dataDir: z.string({ error: "is required (--data-dir or SESSIONTRACK_DATA_DIR)" }).min(1, "is required"),
  tenantsFile: z.string({ error: "is required (--tenants or SESSIONTRACK_TENANTS)" }).min(1, "is required"),
  captureConfigFile: z.string().min(1).optional(),
  drainFile: z.string().min(1, "must be a path").optional(),
  maxEventBytes: wholeNumberSetting(1024).max(4 * MiB, "must be at most 4 MiB"),
  maxBatchEvents: wholeNumberSetting(1).max(100_000, "must be at most 100000"),
  maxBatchBytes: wholeNumberSetting(1024).max(256 * MiB, "must be at most 256 MiB"),
  walSegmentBytes: wholeNumberSetting(1 * MiB),
  walMaxRetainedBytes: z.union([z.literal(Number.POSITIVE_INFINITY), wholeNumberSetting(1 * MiB)]),
  logLevel: logLevelSetting(),
  shutdownGraceMs: wholeNumberSetting(0),
  archiveUrl: sinkEndpoint.optional(),
  indexUrl: sinkEndpoint.optional(),
  serviceKeyFile: z.string().min(1, "must be a path").optional(),
  shipBatchEvents: wholeNumberSetting(1).max(50_000, "must be at most 50000"),
  shipBatchBytes: wholeNumberSetting(64 * 1024).max(64 * MiB, "must be at most 64 MiB"),
  shipTimeoutMs: wholeNumberSetting(100),
  eraseWaitMs: wholeNumberSetting(0),
});

/** Ingest's settings, parsed once at start-up and frozen. */
export type IngestConfig = ReturnType<typeof loadIngestConfig>;

/** Where the shipper delivers, and the service key it presents; absent when shipping is off. */
export interface ShippingConfig {
  archive: SinkEndpoint | undefined;
  index: SinkEndpoint | undefined;
  serviceKey: string;
}

/** Flag name → environment variable → setting; a flag wins over the environment. */
const SETTINGS = {
  listen: ["listen", "SESSIONTRACK_LISTEN", "127.0.0.1:7070"],
  metricsListen: ["metrics-listen", "SESSIONTRACK_METRICS_LISTEN", "127.0.0.1:9464"],
  dataDir: ["data-dir", "SESSIONTRACK_DATA_DIR", undefined],
  tenantsFile: ["tenants", "SESSIONTRACK_TENANTS", undefined],
  captureConfigFile: ["capture-config", "SESSIONTRACK_CAPTURE_CONFIG", undefined],
  // The pod's annotations (downward API): `sessiontrack.io/drain="true"` drains before a scale-down.
  drainFile: ["drain-file", "SESSIONTRACK_DRAIN_FILE", undefined],
  maxEventBytes: ["max-event-bytes", "SESSIONTRACK_MAX_EVENT_BYTES", String(MiB)],
  maxBatchEvents: ["max-batch-events", "SESSIONTRACK_MAX_BATCH_EVENTS", "5000"],
  maxBatchBytes: ["max-batch-bytes", "SESSIONTRACK_MAX_BATCH_BYTES", String(16 * MiB)],
  walSegmentBytes: ["wal-segment-bytes", "SESSIONTRACK_WAL_SEGMENT_BYTES", String(64 * MiB)],
  walMaxRetainedBytes: ["wal-max-retained-bytes", "SESSIONTRACK_WAL_MAX_RETAINED_BYTES", "Infinity"],
  logLevel: ["log-level", "SESSIONTRACK_LOG_LEVEL", "info"],
  shutdownGraceMs: ["shutdown-grace-ms", "SESSIONTRACK_SHUTDOWN_GRACE_MS", "10000"],
  archiveUrl: ["archive-url", "SESSIONTRACK_ARCHIVE_URL", undefined],
  indexUrl: ["index-url", "SESSIONTRACK_INDEX_URL", undefined],
  serviceKeyFile: ["service-key-file", "SESSIONTRACK_SERVICE_KEY_FILE", undefined],
  shipBatchEvents: ["ship-batch-events", "SESSIONTRACK_SHIP_BATCH_EVENTS", "1000"],
  shipBatchBytes: ["ship-batch-bytes", "SESSIONTRACK_SHIP_BATCH_BYTES", String(4 * MiB)],
  shipTimeoutMs: ["ship-timeout-ms", "SESSIONTRACK_SHIP_TIMEOUT_MS", "30000"],
  eraseWaitMs: ["erase-wait-ms", "SESSIONTRACK_ERASE_WAIT_MS", "15000"],
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
  const config = parseConfig(schema, raw, "ingest settings (flags and SESSIONTRACK_* environment)");
  return Object.freeze({ ...config, shipping: loadShipping(config) });
}

/** Shipping is on when a sink address is set; it then needs the service key, read here once. */
function loadShipping(config: {
  archiveUrl?: SinkEndpoint | undefined;
  indexUrl?: SinkEndpoint | undefined;
  serviceKeyFile?: string | undefined;
}): Readonly<ShippingConfig> | undefined {
  if (config.archiveUrl === undefined && config.indexUrl === undefined) return undefined;
  const path = config.serviceKeyFile;
  if (path === undefined) {
    throw new ConfigError(
      "invalid ingest settings: service-key-file: is required when --archive-url or --index-url is set (--service-key-file or SESSIONTRACK_SERVICE_KEY_FILE)",
    );
  }
  let serviceKey: string;
  try {
    serviceKey = readFileSync(path, "utf8").trim();
  } catch (error) {
    throw new ConfigError(`service-key-file: cannot read ${path} (${(error as Error).message})`, {
      cause: error,
    });
  }
  if (!/^[A-Za-z0-9_\-.~+/=]{16,512}$/.test(serviceKey)) {
    throw new ConfigError(
      `service-key-file: ${path} must hold one service key (16 to 512 characters of A-Z a-z 0-9 _ - . ~ + / =)`,
    );
  }
  return Object.freeze({ archive: config.archiveUrl, index: config.indexUrl, serviceKey });
}
