import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";

import { parse as parseYaml } from "yaml";
import { z } from "zod";

import { ConfigError, PermissionDeniedError, UnauthenticatedError } from "@sessiontrack/errors";

/** What a key may do: send events, read sessions, administer. */
export type Role = "ingest" | "read" | "admin";

const keySchema = z.object({
  id: z.string().min(1, "key id is required"),
  sha256: z
    .string()
    .regex(/^[0-9a-f]{64}$/, "sha256 must be 64 lower-case hex characters (the SHA-256 of the API key)"),
  roles: z.array(z.enum(["ingest", "read", "admin"])).min(1, "a key needs at least one role"),
});
const serviceKeySchema = z.object({
  id: z.string().min(1, "key id is required"),
  sha256: z
    .string()
    .regex(/^[0-9a-f]{64}$/, "sha256 must be 64 lower-case hex characters (the SHA-256 of the key)"),
});
const redactionActionSchema = z.enum(["mask", "hash", "drop"], { error: "must be mask, hash or drop" });
const detectorSettingSchema = z.enum(["mask", "hash", "drop", "off"], {
  error: "must be mask, hash, drop or off",
});
// Privacy rules applied by ingest before anything is written (see packages/redaction).
const redactionSchema = z
  .object({
    hashSalt: z.string().min(16, "hashSalt must be at least 16 characters").optional(),
    detectors: z
      .object({
        email: detectorSettingSchema,
        phone: detectorSettingSchema,
        payment_card: detectorSettingSchema,
        ip_address: detectorSettingSchema,
        api_key: detectorSettingSchema,
        jwt: detectorSettingSchema,
        secret: detectorSettingSchema,
      })
      .partial()
      .strict()
      .optional(),
    rules: z
      .array(
        z
          .object({
            name: z
              .string()
              .regex(
                /^[a-z][a-z0-9_-]{0,62}$/,
                "rule name must be 1-63 of a-z, 0-9, '_' or '-', starting with a letter",
              ),
            pattern: z.string().min(1, "pattern is required"),
            flags: z
              .string()
              .regex(/^[imsu]*$/, 'flags must be some of "i", "m", "s", "u"')
              .optional(),
            action: redactionActionSchema.optional(),
          })
          .strict(),
      )
      .optional(),
  })
  .strict();

/** A tenant's redaction settings as the tenants file holds them. */
export type TenantRedactionSettings = z.infer<typeof redactionSchema>;

const fileSchema = z.object({
  // Keys of SessionTrack's own services (ingest's shipper, the CLI's index rebuild): they
  // may write and erase any tenant's data in the archive and the index, and nothing else.
  services: z.array(serviceKeySchema).default([]),
  tenants: z
    .array(
      z.object({
        name: z
          .string()
          .regex(/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/, "tenant name must be a DNS label (a-z, 0-9, '-')"),
        keys: z.array(keySchema).min(1, "a tenant needs at least one key"),
        redaction: redactionSchema.optional(),
      }),
    )
    .min(1, "at least one tenant is required"),
});

/** One tenants-file entry, as {@link writeTenantsFile} takes it. */
export interface TenantEntry {
  name: string;
  keys: Array<{ id: string; sha256: string; roles: Role[] }>;
  /** Redaction settings; absent means every built-in detector masks. */
  redaction?: TenantRedactionSettings;
}

/** A service key entry of a tenants file. */
export interface ServiceKeyEntry {
  id: string;
  sha256: string;
}

/** A verified service key: one of SessionTrack's own services, acting for every tenant. */
export interface ServicePrincipal {
  service: string;
}

/** Who a verified API key belongs to. */
export interface Principal {
  tenant: string;
  keyId: string;
  roles: ReadonlySet<Role>;
}

/** SHA-256 of an API key, lower-case hex: what a tenants file stores. */
export function hashApiKey(key: string): string {
  return createHash("sha256").update(key, "utf8").digest("hex");
}

/** A new random API key (`st_` + 32 random bytes, base64url) and its SHA-256. */
export function generateApiKey(): { key: string; sha256: string } {
  const key = `st_${randomBytes(32).toString("base64url")}`;
  return { key, sha256: hashApiKey(key) };
}

/** Writes a tenants file (JSON, which is also YAML) that every service's --tenants reads. */
export function writeTenantsFile(
  path: string,
  tenants: readonly TenantEntry[],
  services: readonly ServiceKeyEntry[] = [],
): void {
  writeFileSync(path, `${JSON.stringify({ services, tenants }, null, 2)}\n`, { mode: 0o600 });
}

/** The API key in an `authorization: Bearer <key>` metadata value; throws UnauthenticatedError. */
function bearerKey(authorization: unknown, what: string): string {
  if (authorization === undefined) {
    throw new UnauthenticatedError(`missing "authorization: Bearer <${what}>" metadata`);
  }
  if (typeof authorization !== "string") {
    throw new UnauthenticatedError(`"authorization" metadata must be text: "Bearer <${what}>"`);
  }
  const match = /^Bearer ([A-Za-z0-9_\-.~+/=]{16,512})$/.exec(authorization.trim());
  if (match === null) {
    throw new UnauthenticatedError(`malformed "authorization" metadata: expected "Bearer <${what}>"`);
  }
  return match[1]!;
}

/** Looks a key up among hashes in constant time, so timing reveals nothing about which matched. */
function findByHash<T>(byHash: ReadonlyMap<string, T>, key: string): T | undefined {
  const presented = Buffer.from(hashApiKey(key), "hex");
  let found: T | undefined;
  for (const [hash, value] of byHash) {
    if (timingSafeEqual(presented, Buffer.from(hash, "hex"))) found = value;
  }
  return found;
}

/**
 * The API keys the services accept, loaded from a tenants file. Only SHA-256 hashes are
 * held; a presented key is hashed and compared in constant time.
 */
export class TenantDirectory {
  private constructor(
    private readonly byHash: Map<string, Principal>,
    private readonly services: Map<string, ServicePrincipal>,
    private readonly redaction: Map<string, TenantRedactionSettings>,
  ) {}

  /** Loads and validates a YAML or JSON tenants file; ConfigError names the file and entry. */
  static load(path: string): TenantDirectory {
    let text: string;
    try {
      text = readFileSync(path, "utf8");
    } catch (error) {
      throw new ConfigError(`tenants file ${path}: cannot read it (${(error as Error).message})`, {
        cause: error,
      });
    }
    let document: unknown;
    try {
      document = parseYaml(text);
    } catch (error) {
      throw new ConfigError(`tenants file ${path}: not valid YAML or JSON (${(error as Error).message})`, {
        cause: error,
      });
    }
    const parsed = fileSchema.safeParse(document);
    if (!parsed.success) {
      const problems = parsed.error.issues.map(
        (issue) => `${issue.path.map(String).join(".") || "(file)"}: ${issue.message}`,
      );
      throw new ConfigError(`tenants file ${path} is invalid:\n  ${problems.join("\n  ")}`);
    }
    const byHash = new Map<string, Principal>();
    const seenIds = new Set<string>();
    const seenTenants = new Set<string>();
    const redaction = new Map<string, TenantRedactionSettings>();
    parsed.data.tenants.forEach((tenant, tenantIndex) => {
      if (seenTenants.has(tenant.name)) {
        throw new ConfigError(
          `tenants file ${path}: tenants.${tenantIndex}.name "${tenant.name}" appears twice`,
        );
      }
      seenTenants.add(tenant.name);
      (tenant.redaction?.rules ?? []).forEach((rule, ruleIndex) => {
        try {
          new RegExp(rule.pattern, rule.flags ?? "");
        } catch (error) {
          throw new ConfigError(
            `tenants file ${path}: tenants.${tenantIndex}.redaction.rules.${ruleIndex}.pattern of tenant "${tenant.name}", rule "${rule.name}", is not a valid regular expression (${(error as Error).message})`,
            { cause: error },
          );
        }
      });
      redaction.set(tenant.name, tenant.redaction ?? {});
      tenant.keys.forEach((key, keyIndex) => {
        const where = `tenants.${tenantIndex}.keys.${keyIndex}`;
        if (seenIds.has(key.id))
          throw new ConfigError(`tenants file ${path}: ${where}.id "${key.id}" is used twice`);
        if (byHash.has(key.sha256))
          throw new ConfigError(`tenants file ${path}: ${where}.sha256 is used twice`);
        seenIds.add(key.id);
        byHash.set(key.sha256, { tenant: tenant.name, keyId: key.id, roles: new Set(key.roles) });
      });
    });
    const services = new Map<string, ServicePrincipal>();
    parsed.data.services.forEach((key, keyIndex) => {
      const where = `services.${keyIndex}`;
      if (seenIds.has(key.id))
        throw new ConfigError(`tenants file ${path}: ${where}.id "${key.id}" is used twice`);
      if (byHash.has(key.sha256) || services.has(key.sha256))
        throw new ConfigError(`tenants file ${path}: ${where}.sha256 is used twice`);
      seenIds.add(key.id);
      services.set(key.sha256, { service: key.id });
    });
    return new TenantDirectory(byHash, services, redaction);
  }

  /** The configured tenants' names. */
  tenantNames(): string[] {
    return [...this.redaction.keys()];
  }

  /** A tenant's redaction settings ({} — every built-in detector masks — when none are set). */
  redactionSettings(tenant: string): TenantRedactionSettings {
    return this.redaction.get(tenant) ?? {};
  }

  /** Whether a tenant of that name is configured. */
  hasTenant(name: string): boolean {
    for (const principal of this.byHash.values()) if (principal.tenant === name) return true;
    return false;
  }

  /** Number of keys loaded. */
  get size(): number {
    return this.byHash.size;
  }

  /**
   * Verifies an `authorization` metadata value (`Bearer <key>`) and checks that the key
   * holds one of `anyOf`. Throws UnauthenticatedError or PermissionDeniedError.
   */
  authorize(authorization: unknown, anyOf: readonly Role[]): Principal {
    const found = findByHash(this.byHash, bearerKey(authorization, "api key"));
    if (found === undefined) throw new UnauthenticatedError("unknown API key");
    if (!anyOf.some((role) => found.roles.has(role))) {
      throw new PermissionDeniedError(
        `key "${found.keyId}" of tenant "${found.tenant}" lacks the role for this call (needs one of: ${anyOf.join(", ")})`,
      );
    }
    return found;
  }

  /**
   * Verifies a service key (`Bearer <service key>`) from the file's `services` list.
   * Tenant API keys are refused here whatever their roles.
   */
  authorizeService(authorization: unknown): ServicePrincipal {
    const key = bearerKey(authorization, "service key");
    const found = findByHash(this.services, key);
    if (found !== undefined) return found;
    const tenantKey = findByHash(this.byHash, key);
    if (tenantKey !== undefined) {
      throw new PermissionDeniedError(
        `key "${tenantKey.keyId}" of tenant "${tenantKey.tenant}" is a tenant key; this call needs a service key (the tenants file's services list)`,
      );
    }
    throw new UnauthenticatedError("unknown service key");
  }
}
