import { createCipheriv, createDecipheriv, createHash, randomBytes } from "node:crypto";
import { readFile } from "node:fs/promises";
import { join } from "node:path";

import { ConfigError, DataCorruptionError } from "@sessiontrack/errors";

/** A tenant's key-encryption key: wraps the tenant's data keys, never touches event data. */
export interface KeyEncryptionKey {
  tenant: string;
  /** Public fingerprint of the key (first 16 hex of a SHA-256), recorded next to what it wraps. */
  id: string;
  key: Buffer;
}

/** A data key in the clear, held in memory only. */
export interface DataKey {
  /** Random id, recorded in every object section the key encrypts; never key material. */
  id: string;
  key: Buffer;
}

/** A data key as stored: wrapped (AES-256-GCM) by the tenant's KEK. */
export interface WrappedDataKey {
  v: 1;
  keyId: string;
  /** Fingerprint of the KEK that wrapped it. */
  kekId: string;
  /** base64(iv ‖ ciphertext ‖ tag). */
  wrapped: string;
}

const TENANT_NAME = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

/** Parses 32 key bytes written as 64 hex characters or as base64 (padding optional). */
export function parseKeyMaterial(text: string, where: string): Buffer {
  const trimmed = text.trim();
  if (/^[0-9a-fA-F]{64}$/.test(trimmed)) return Buffer.from(trimmed, "hex");
  if (/^[A-Za-z0-9+/_-]{43}=?$/.test(trimmed)) {
    const bytes = Buffer.from(trimmed, "base64");
    if (bytes.length === 32) return bytes;
  }
  throw new ConfigError(
    `${where}: a key-encryption key must be 32 bytes written as 64 hex characters or base64 (for example \`openssl rand -base64 32\`)`,
  );
}

function fingerprint(key: Buffer): string {
  return createHash("sha256").update("sessiontrack-kek-id\0").update(key).digest("hex").slice(0, 16);
}

/**
 * Reads tenants' key-encryption keys from a directory of files named after the tenant
 * (the shape of a mounted Kubernetes Secret). Files are re-read when asked for, so a
 * rotated Secret mount is picked up without a restart.
 */
export class KeyEncryptionKeyDirectory {
  constructor(readonly dir: string) {}

  /** The tenant's KEK; ConfigError (FAILED_PRECONDITION) when there is none: never write plaintext. */
  async forTenant(tenant: string): Promise<KeyEncryptionKey> {
    if (!TENANT_NAME.test(tenant)) {
      throw new ConfigError(`tenant "${tenant}" is not a valid tenant name, so it can have no key`);
    }
    const path = join(this.dir, tenant);
    let text: string;
    try {
      text = await readFile(path, "utf8");
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      throw new ConfigError(
        code === "ENOENT"
          ? `no key-encryption key for tenant "${tenant}": expected a file ${path} (--kek-dir); nothing of this tenant is written without one`
          : `key-encryption key of tenant "${tenant}" at ${path} cannot be read (${(error as Error).message})`,
        { cause: error },
      );
    }
    const key = parseKeyMaterial(text, `key-encryption key file ${path}`);
    return { tenant, id: fingerprint(key), key };
  }
}

function wrapAad(tenant: string, keyId: string, owner: string): Buffer {
  return Buffer.from(`sessiontrack-dek\0${tenant}\0${keyId}\0${owner}`, "utf8");
}

/** A new random data key for `owner` (the session reference it belongs to). */
export function newDataKey(): DataKey {
  return { id: randomBytes(12).toString("hex"), key: randomBytes(32) };
}

/** Wraps a data key under the KEK; the tenant, key id and owner are bound as GCM additional data. */
export function wrapDataKey(kek: KeyEncryptionKey, dek: DataKey, owner: string): WrappedDataKey {
  const iv = randomBytes(12);
  const cipher = createCipheriv("aes-256-gcm", kek.key, iv);
  cipher.setAAD(wrapAad(kek.tenant, dek.id, owner));
  const body = Buffer.concat([cipher.update(dek.key), cipher.final()]);
  return {
    v: 1,
    keyId: dek.id,
    kekId: kek.id,
    wrapped: Buffer.concat([iv, body, cipher.getAuthTag()]).toString("base64"),
  };
}

/** Unwraps a stored data key; DataCorruptionError when the KEK differs or the record was altered. */
export function unwrapDataKey(
  kek: KeyEncryptionKey,
  record: WrappedDataKey,
  owner: string,
  where: string,
): DataKey {
  if (record.kekId !== kek.id) {
    throw new DataCorruptionError(
      `${where}: data key ${record.keyId} was wrapped by key-encryption key ${record.kekId}, but tenant "${kek.tenant}" now has ${kek.id}; restore the original KEK file`,
    );
  }
  const bytes = Buffer.from(record.wrapped, "base64");
  if (bytes.length !== 12 + 32 + 16)
    throw new DataCorruptionError(`${where}: wrapped data key has the wrong length`);
  try {
    const decipher = createDecipheriv("aes-256-gcm", kek.key, bytes.subarray(0, 12));
    decipher.setAAD(wrapAad(kek.tenant, record.keyId, owner));
    decipher.setAuthTag(bytes.subarray(44));
    const key = Buffer.concat([decipher.update(bytes.subarray(12, 44)), decipher.final()]);
    return { id: record.keyId, key };
  } catch (error) {
    throw new DataCorruptionError(
      `${where}: data key ${record.keyId} failed authentication under the tenant's KEK`,
      {
        cause: error,
      },
    );
  }
}

/** A stable, non-reversible name for a session or subject inside object keys (hex SHA-256, 32 chars). */
export function reference(tenant: string, kind: "session" | "user", id: string): string {
  return createHash("sha256").update(`${tenant}\0${kind}\0${id}`, "utf8").digest("hex").slice(0, 32);
}
