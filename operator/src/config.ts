import { hostname } from "node:os";

import { z } from "zod";

import { hostPortSetting, logLevelSetting, parseConfig, wholeNumberSetting } from "@sessiontrack/runtime";

const schema = z
  .object({
    kubeconfig: z.string().min(1).optional(),
    inCluster: z.enum(["true", "false"]).transform((value) => value === "true"),
    namespace: z.string().min(1).optional(),
    metricsListen: hostPortSetting("metrics-listen"),
    logLevel: logLevelSetting(),
    leaderElection: z.enum(["true", "false"]).transform((value) => value === "true"),
    leaseNamespace: z.string().min(1, "is required"),
    leaseName: z.string().min(1, "is required"),
    identity: z.string().min(1, "is required"),
    leaseDurationMs: wholeNumberSetting(1000),
    renewDeadlineMs: wholeNumberSetting(500),
    retryPeriodMs: wholeNumberSetting(100),
    watchSilenceMs: wholeNumberSetting(100),
    resyncMs: wholeNumberSetting(1000),
    requestTimeoutMs: wholeNumberSetting(100),
    analysisIntervalMs: wholeNumberSetting(100),
    workers: wholeNumberSetting(1).max(64, "must be at most 64"),
  })
  .refine((config) => config.kubeconfig !== undefined || config.inCluster, {
    message: "give --kubeconfig (or KUBECONFIG) or --in-cluster true",
    path: ["kubeconfig"],
  })
  .refine((config) => config.renewDeadlineMs < config.leaseDurationMs, {
    message: "must be shorter than lease-duration-ms",
    path: ["renewDeadlineMs"],
  });

/** The operator's settings, parsed once at start-up and frozen. */
export type OperatorConfig = ReturnType<typeof loadOperatorConfig>;

/** Flag name → environment variable → default; a flag wins over the environment. */
const SETTINGS = {
  kubeconfig: ["kubeconfig", "KUBECONFIG", undefined],
  inCluster: ["in-cluster", "SESSIONTRACK_IN_CLUSTER", "false"],
  namespace: ["namespace", "SESSIONTRACK_WATCH_NAMESPACE", undefined],
  metricsListen: ["metrics-listen", "SESSIONTRACK_METRICS_LISTEN", "0.0.0.0:9467"],
  logLevel: ["log-level", "SESSIONTRACK_LOG_LEVEL", "info"],
  leaderElection: ["leader-election", "SESSIONTRACK_LEADER_ELECTION", "true"],
  leaseNamespace: ["lease-namespace", "SESSIONTRACK_LEASE_NAMESPACE", "default"],
  leaseName: ["lease-name", "SESSIONTRACK_LEASE_NAME", "sessiontrack-operator"],
  identity: ["identity", "POD_NAME", `${hostname()}-${process.pid}`],
  leaseDurationMs: ["lease-duration-ms", "SESSIONTRACK_LEASE_DURATION_MS", "15000"],
  renewDeadlineMs: ["renew-deadline-ms", "SESSIONTRACK_RENEW_DEADLINE_MS", "10000"],
  retryPeriodMs: ["retry-period-ms", "SESSIONTRACK_RETRY_PERIOD_MS", "2000"],
  watchSilenceMs: ["watch-silence-ms", "SESSIONTRACK_WATCH_SILENCE_MS", "120000"],
  resyncMs: ["resync-ms", "SESSIONTRACK_RESYNC_MS", "300000"],
  requestTimeoutMs: ["request-timeout-ms", "SESSIONTRACK_REQUEST_TIMEOUT_MS", "15000"],
  analysisIntervalMs: ["analysis-interval-ms", "SESSIONTRACK_ANALYSIS_INTERVAL_MS", "5000"],
  workers: ["workers", "SESSIONTRACK_WORKERS", "4"],
} as const satisfies Record<string, readonly [string, string, string | undefined]>;

/** Every flag the operator accepts, for the CLI's help text. */
export const OPERATOR_FLAGS: readonly string[] = Object.values(SETTINGS).map(([flag]) => flag);

/**
 * Reads the operator's settings from flags (keyed by flag name without dashes) and the
 * environment, validates them and returns them frozen. Throws ConfigError naming every
 * bad setting.
 */
export function loadOperatorConfig(
  flags: Readonly<Record<string, string | undefined>>,
  env: NodeJS.ProcessEnv = process.env,
) {
  const raw: Record<string, unknown> = {};
  for (const [setting, [flag, variable, fallback]] of Object.entries(SETTINGS)) {
    raw[setting] = flags[flag] ?? env[variable] ?? fallback;
  }
  return parseConfig(schema, raw, "operator settings (flags and environment)");
}
