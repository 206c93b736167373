import { randomBytes } from "node:crypto";

import { parse as parseYaml } from "yaml";

import { generateApiKey, hashApiKey } from "@sessiontrack/runtime";

import type { KubeClient, KubeObject } from "./k8s/index.js";
import type { SessionStoreSpec } from "./spec.js";

/** The id of the service key ingest's shipper presents to archive and index. */
export const SHIPPER_KEY_ID = "sessiontrack-operator-shipper";

/** Raised when the tenants Secret named by the spec cannot be used; the message says what to fix. */
export class TenantsSecretError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "TenantsSecretError";
  }
}

/** A fresh shipper service key (`st_…`), generated once per SessionStore. */
export const newServiceKey = (): string => generateApiKey().key;

/** 32 random bytes, base64: one tenant's key-encryption key. */
export const newKeyEncryptionKey = (): string => randomBytes(32).toString("base64");

const decode = (secret: KubeObject, key: string): string | undefined => {
  const value = (secret["data"] as Record<string, string> | undefined)?.[key];
  return value === undefined ? undefined : Buffer.from(value, "base64").toString("utf8");
};

/**
 * The tenants file every service mounts: the user's file (spec.tenantsSecretRef) with the
 * operator's shipper key added to `services`, so ingest can deliver to archive and index
 * without anyone copying a hash by hand. Returns the file and the tenant names in it.
 */
export async function effectiveTenantsFile(
  client: KubeClient,
  namespace: string,
  spec: SessionStoreSpec,
  serviceKey: string,
): Promise<{ text: string; tenants: string[] }> {
  const { name, key } = spec.tenantsSecretRef;
  const secret = await client.get({ apiVersion: "v1", kind: "Secret", namespace, name });
  if (secret === undefined) {
    throw new TenantsSecretError(`spec.tenantsSecretRef: Secret ${namespace}/${name} does not exist`);
  }
  const text = decode(secret, key);
  if (text === undefined) {
    throw new TenantsSecretError(`spec.tenantsSecretRef: Secret ${namespace}/${name} has no entry "${key}"`);
  }
  let document: unknown;
  try {
    document = parseYaml(text) ?? {};
  } catch (error) {
    throw new TenantsSecretError(
      `spec.tenantsSecretRef: ${namespace}/${name} "${key}" is not YAML or JSON (${(error as Error).message})`,
    );
  }
  if (typeof document !== "object" || document === null || Array.isArray(document)) {
    throw new TenantsSecretError(
      `spec.tenantsSecretRef: ${namespace}/${name} "${key}" must be a mapping with tenants:`,
    );
  }
  const file = document as { tenants?: unknown; services?: unknown };
  const services = (Array.isArray(file.services) ? file.services : []).filter(
    (entry) => (entry as { id?: unknown } | null)?.id !== SHIPPER_KEY_ID,
  );
  services.push({ id: SHIPPER_KEY_ID, sha256: hashApiKey(serviceKey) });
  const tenants = (Array.isArray(file.tenants) ? file.tenants : [])
    .map((tenant) => (tenant as { name?: unknown } | null)?.name)
    .filter((tenantName): tenantName is string => typeof tenantName === "string");
  return { text: `${JSON.stringify({ ...file, services }, null, 2)}\n`, tenants };
}

/** Reads one decoded entry of a Secret object. */
export const secretValue = decode;
