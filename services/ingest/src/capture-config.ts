import { createHash } from "node:crypto";
import { readFileSync, statSync } from "node:fs";

import { parse as parseYaml } from "yaml";
import { z } from "zod";

import { ConfigError } from "@sessiontrack/errors";
import type { CanaryRoute, CaptureConfig } from "@sessiontrack/proto";
import { parseHostPort, type Logger } from "@sessiontrack/runtime";

const rate = z.number().min(0, "must be between 0 and 1").max(1, "must be between 0 and 1");

/** The components a version canary can replace (operator/src/spec.ts Component). */
export const CANARY_COMPONENTS = ["ingest", "index", "archive"] as const;

function isDialable(address: string): boolean {
  try {
    return parseHostPort(address, "address").port !== 0;
  } catch {
    return false;
  }
}

// The operator's route (operator/src/capture.ts CanaryRoute); its `image` is informational
// and not served.
const canaryRoute = z.object({
  component: z.enum(CANARY_COMPONENTS, { error: "must be one of ingest, index, archive" }),
  revision: z.string({ error: "must be the canary's revision name" }).min(1, "must not be empty"),
  weight: z
    .number({ error: "must be a number of percent" })
    .min(0, "must be between 0 and 100 (percent)")
    .max(100, "must be between 0 and 100 (percent)"),
  address: z
    .string({ error: "must be host:port of the canary's gRPC Service" })
    .refine(
      isDialable,
      "must be host:port of the canary's gRPC Service, for example sst-index-canary.ns.svc:7071",
    ),
});
const fileSchema = z.object({
  enabled: z.boolean().default(true),
  sampleRate: rate.default(1),
  stage: z.string().default("full"),
  cohorts: z
    .array(
      z.object({
        name: z.string().min(1),
        botIds: z.array(z.string()).default([]),
        userGroups: z.array(z.string()).default([]),
        sampleRate: rate,
      }),
    )
    .default([]),
  optOut: z
    .object({
      userIds: z.array(z.string()).default([]),
      botIds: z.array(z.string()).default([]),
      tenantIds: z.array(z.string()).default([]),
    })
    .default({ userIds: [], botIds: [], tenantIds: [] }),
  // Stages that select by tenant: ingest resolves them per watcher, from its API key's tenant.
  tenantCohorts: z
    .array(
      z.object({
        name: z.string().min(1),
        tenants: z.array(z.string().min(1)).min(1, "a tenant cohort names at least one tenant"),
        botIds: z.array(z.string()).default([]),
        userGroups: z.array(z.string()).default([]),
        sampleRate: rate,
      }),
    )
    .default([]),
  // The version canary in force; absent when there is none. Checked on its own (see
  // parseCaptureFile): a bad route must not hold back the kill switch or a stage change.
  canary: z.unknown().optional(),
});

/** The per-tenant part of a capture-config file, applied by ingest to each watcher. */
export interface TenantCaptureRules {
  /** Tenants never captured: wins over every stage and cohort. */
  optOutTenants: readonly string[];
  /** Cohort rules that apply only to watchers of the listed tenants, ahead of the others. */
  tenantCohorts: ReadonlyArray<{
    name: string;
    tenants: readonly string[];
    botIds: string[];
    userGroups: string[];
    sampleRate: number;
  }>;
}

/** A parsed capture-config file: what every watcher is sent, plus the per-tenant rules. */
export interface CaptureFile {
  config: CaptureConfig;
  tenantRules: TenantCaptureRules;
  /** Why the file's canary route was left out (it was invalid), naming the file and field. */
  routeProblem?: string;
}

const NO_TENANT_RULES: TenantCaptureRules = { optOutTenants: [], tenantCohorts: [] };

const POLL_MS = 250;

/** Capture everything: what ingest serves when no capture-config file is given. */
export const DEFAULT_CAPTURE_CONFIG: CaptureConfig = {
  revision: "default",
  enabled: true,
  sampleRate: 1,
  stage: "full",
  cohorts: [],
  optOut: { userIds: [], botIds: [] },
  canary: undefined,
};

/** Parses a capture-config file's text (YAML or JSON); ConfigError names the file and field. */
export function parseCaptureConfig(text: string, path: string): CaptureConfig {
  return parseCaptureFile(text, path).config;
}

/** One line per zod issue, `field.path: message`, the path starting at `under` (a field of the file). */
function issueLines(error: z.ZodError, under: string[] = []): string[] {
  return error.issues.map(
    (issue) => `${[...under, ...issue.path.map(String)].join(".") || "(file)"}: ${issue.message}`,
  );
}

/** Parses a capture-config file including its per-tenant rules. */
export function parseCaptureFile(text: string, path: string): CaptureFile {
  let document: unknown;
  try {
    document = parseYaml(text) ?? {};
  } catch (error) {
    throw new ConfigError(`capture config ${path}: not valid YAML or JSON (${(error as Error).message})`);
  }
  const parsed = fileSchema.safeParse(document);
  if (!parsed.success) {
    throw new ConfigError(`capture config ${path} is invalid:\n  ${issueLines(parsed.error).join("\n  ")}`);
  }
  const revision = createHash("sha256").update(text).digest("hex").slice(0, 12);
  const { optOut, tenantCohorts, canary, ...rest } = parsed.data;
  // An invalid route is left out rather than failing the file: the rest of the file (the kill
  // switch above all) must still take effect, and without a route every session stays on
  // stable, which is always safe.
  let route: CanaryRoute | undefined;
  let routeProblem: string | undefined;
  if (canary !== undefined && canary !== null) {
    const checked = canaryRoute.safeParse(canary);
    if (checked.success) {
      const { component, revision: routeRevision, weight, address } = checked.data;
      route = { component, revision: routeRevision, weightPercent: weight, address };
    } else {
      routeProblem = `capture config ${path}: canary route left out (every session stays on stable):\n  ${issueLines(checked.error, ["canary"]).join("\n  ")}`;
    }
  }
  return {
    config: {
      revision,
      ...rest,
      optOut: { userIds: optOut.userIds, botIds: optOut.botIds },
      canary: route,
    },
    tenantRules: { optOutTenants: optOut.tenantIds, tenantCohorts },
    ...(routeProblem === undefined ? {} : { routeProblem }),
  };
}

/**
 * The configuration one watcher is sent: its tenant or its bot opted out turns capture off
 * outright; cohorts of stages that select its tenant come first.
 */
export function captureConfigFor(
  config: CaptureConfig,
  rules: TenantCaptureRules,
  tenant: string,
  botId: string,
): CaptureConfig {
  if (rules.optOutTenants.includes(tenant)) return { ...config, enabled: false };
  if (botId !== "" && config.optOut?.botIds.includes(botId) === true) return { ...config, enabled: false };
  const mine = rules.tenantCohorts.filter((cohort) => cohort.tenants.includes(tenant));
  if (mine.length === 0) return config;
  const cohorts = mine.map(({ name, botIds, userGroups, sampleRate }) => ({
    name,
    botIds,
    userGroups,
    sampleRate,
  }));
  return { ...config, cohorts: [...cohorts, ...config.cohorts] };
}

type Listener = (config: CaptureConfig) => void;

/**
 * The capture configuration ingest serves on WatchConfig. It polls its file (a
 * Kubernetes ConfigMap mount swaps a symlink, which fs.watch misses) and pushes every
 * change to all subscribers at once. A bad file keeps the last good configuration.
 */
export class CaptureConfigSource {
  private current: CaptureFile = { config: DEFAULT_CAPTURE_CONFIG, tenantRules: NO_TENANT_RULES };
  private readonly listeners = new Set<Listener>();
  private timer: NodeJS.Timeout | undefined;
  private lastSignature = "";

  constructor(
    private readonly path: string | undefined,
    private readonly logger: Logger,
  ) {
    if (path !== undefined) {
      // A bad file at start-up is a configuration error: fail fast, naming it.
      this.current = parseCaptureFile(readFileSync(path, "utf8"), path);
      this.reportRouteProblem(this.current);
      this.lastSignature = this.signature() ?? "";
      this.timer = setInterval(() => this.poll(), POLL_MS);
      this.timer.unref();
    }
  }

  /** The configuration in force. */
  get config(): CaptureConfig {
    return this.current.config;
  }

  /** The per-tenant rules in force, updated together with {@link config}. */
  get tenantRules(): TenantCaptureRules {
    return this.current.tenantRules;
  }

  /** Calls `listener` with every new configuration; returns the unsubscribe function. */
  subscribe(listener: Listener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Number of subscribers (open WatchConfig streams, and the shipper when it follows canary routes). */
  get watchers(): number {
    return this.listeners.size;
  }

  /** Stops polling. */
  close(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.listeners.clear();
  }

  private signature(): string | undefined {
    try {
      const stat = statSync(this.path!);
      return `${stat.ino}:${stat.size}:${stat.mtimeMs}`;
    } catch {
      return undefined;
    }
  }

  private reportRouteProblem(file: CaptureFile): void {
    if (file.routeProblem !== undefined) this.logger.error({ path: this.path }, file.routeProblem);
  }

  private poll(): void {
    const signature = this.signature();
    if (signature === undefined) {
      if (this.lastSignature !== "missing") {
        this.logger.error(
          { path: this.path },
          "capture config file is missing; keeping the last good configuration",
        );
      }
      this.lastSignature = "missing";
      return;
    }
    if (signature === this.lastSignature) return;
    this.lastSignature = signature;
    let file: CaptureFile;
    try {
      file = parseCaptureFile(readFileSync(this.path!, "utf8"), this.path!);
    } catch (error) {
      this.logger.error(
        { err: error, path: this.path },
        "capture config rejected; keeping the last good configuration",
      );
      return;
    }
    const next = file.config;
    if (next.revision === this.current.config.revision) return;
    this.current = file;
    this.reportRouteProblem(file);
    this.logger.info(
      { revision: next.revision, enabled: next.enabled, stage: next.stage, canary: next.canary },
      "capture config changed",
    );
    for (const listener of this.listeners) {
      try {
        listener(next);
      } catch (error) {
        this.logger.error({ err: error }, "capture config listener failed");
      }
    }
  }
}
