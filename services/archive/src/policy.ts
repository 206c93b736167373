import { readFileSync } from "node:fs";

import { parse as parseYaml } from "yaml";
import { z } from "zod";

import { ConfigError } from "@sessiontrack/errors";

/** How long a tenant's objects stay hot, and how long they are kept at all (0 = never / forever). */
export interface RetentionPolicy {
  coldAfterDays: number;
  retentionDays: number;
}

const days = z.number({ error: "must be a number of days" }).int("must be whole days").min(0, "must be >= 0");
const fileSchema = z.record(
  z.string().regex(/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/, "tenant name must be a DNS label"),
  z.object({ coldAfterDays: days.optional(), retentionDays: days.optional() }).strict(),
);

/** Per-tenant retention: the policy file's entry for a tenant over the flag defaults. */
export class RetentionPolicies {
  constructor(
    readonly defaults: RetentionPolicy,
    readonly overrides: ReadonlyMap<string, RetentionPolicy> = new Map(),
  ) {}

  /** Reads a YAML policy file (`<tenant>: { coldAfterDays, retentionDays }`); ConfigError names the entry. */
  static load(path: string | undefined, defaults: RetentionPolicy): RetentionPolicies {
    if (path === undefined) return new RetentionPolicies(defaults);
    let document: unknown;
    try {
      document = parseYaml(readFileSync(path, "utf8")) ?? {};
    } catch (error) {
      throw new ConfigError(`policy file ${path}: cannot read it as YAML (${(error as Error).message})`, {
        cause: error,
      });
    }
    const parsed = fileSchema.safeParse(document);
    if (!parsed.success) {
      const problems = parsed.error.issues.map(
        (issue) => `${issue.path.map(String).join(".") || "(file)"}: ${issue.message}`,
      );
      throw new ConfigError(`policy file ${path} is invalid:\n  ${problems.join("\n  ")}`);
    }
    const overrides = new Map<string, RetentionPolicy>();
    for (const [tenant, entry] of Object.entries(parsed.data)) {
      const policy = {
        coldAfterDays: entry.coldAfterDays ?? defaults.coldAfterDays,
        retentionDays: entry.retentionDays ?? defaults.retentionDays,
      };
      if (policy.retentionDays > 0 && policy.coldAfterDays >= policy.retentionDays) {
        throw new ConfigError(
          `policy file ${path}: ${tenant}: coldAfterDays (${policy.coldAfterDays}) must be below retentionDays (${policy.retentionDays})`,
        );
      }
      overrides.set(tenant, policy);
    }
    return new RetentionPolicies(defaults, overrides);
  }

  forTenant(tenant: string): RetentionPolicy {
    return this.overrides.get(tenant) ?? this.defaults;
  }
}
