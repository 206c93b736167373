import type { VerifyProblem, VerifyResponse } from "@sessiontrack/proto";

import type { Archive } from "./archive.js";
import type { KeyEncryptionKeyDirectory } from "./keys.js";
import { reference } from "./keys.js";
import { openSection, parseObject, type ParsedObject } from "./object-format.js";
import {
  getRecord,
  keysPrefix,
  objectsPrefix,
  sessionsPrefix,
  type KeyRecord,
  type SessionCatalog,
} from "./records.js";

function reasonOf(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  if (/checksum mismatch/.test(message)) return "checksum mismatch";
  if (/authentication failed/.test(message)) return "authentication failed";
  if (/object missing/.test(message)) return "object missing";
  return message;
}

/**
 * Re-reads objects and checks each one's SHA-256 and each section's GCM tag.
 * With a session id: that session's objects and sections; without: every data object
 * of the tenant, every section in it, every catalog and key record, and that every
 * catalogued object (within retention) exists.
 */
export async function verify(
  archive: Archive,
  keks: KeyEncryptionKeyDirectory,
  tenant: string,
  sessionId: string,
): Promise<VerifyResponse> {
  const kek = await keks.forTenant(tenant);
  const problems: VerifyProblem[] = [];
  let objectsChecked = 0;
  let eventsChecked = 0;

  const checkSections = async (
    objectKey: string,
    object: ParsedObject,
    only?: ReadonlySet<string>,
  ): Promise<void> => {
    for (const section of object.header.sections) {
      if (only !== undefined && !only.has(section.id)) continue;
      let dek;
      try {
        dek = await archive.sessionKey(kek, section.session);
      } catch (error) {
        problems.push({ object: objectKey, reason: `section ${section.id}: ${reasonOf(error)}` });
        continue;
      }
      if (dek === undefined || dek.id !== section.keyId) {
        problems.push({ object: objectKey, reason: `section ${section.id}: data key destroyed` });
        continue;
      }
      try {
        eventsChecked += openSection(object, section, dek, objectKey).length;
      } catch (error) {
        problems.push({ object: objectKey, reason: reasonOf(error) });
      }
    }
  };

  if (sessionId !== "") {
    const { ref, catalog } = await archive.catalog(tenant, sessionId);
    const byObject = new Map<string, Set<string>>();
    const createdAt = new Map<string, number>();
    for (const entry of catalog.entries) {
      byObject.set(entry.object, (byObject.get(entry.object) ?? new Set()).add(entry.section));
      createdAt.set(entry.object, entry.createdAt);
    }
    for (const [objectKey, sections] of byObject) {
      objectsChecked += 1;
      let object: ParsedObject | undefined;
      try {
        object = await archive.readObject(tenant, {
          object: objectKey,
          createdAt: createdAt.get(objectKey)!,
        });
      } catch (error) {
        problems.push({ object: objectKey, reason: reasonOf(error) });
        continue;
      }
      if (object === undefined) continue; // expired by retention
      for (const id of sections) {
        const section = object.header.sections.find((candidate) => candidate.id === id);
        if (section === undefined || section.session !== ref) {
          problems.push({ object: objectKey, reason: `section ${id} missing` });
        }
      }
      await checkSections(objectKey, object, sections);
    }
  } else {
    await archive.withTenantLock(tenant, () => archive.foldPending(tenant));
    const objects = await archive.store.list(objectsPrefix(tenant));
    const listed = new Set(objects.map((info) => info.key));
    for (const info of objects) {
      objectsChecked += 1;
      const bytes = await archive.store.get(info.key);
      if (bytes === undefined) continue; // deleted since the listing (erasure, expiry)
      let object: ParsedObject;
      try {
        object = parseObject(bytes, info.key);
      } catch (error) {
        problems.push({ object: info.key, reason: reasonOf(error) });
        continue;
      }
      if (object.header.tenant !== tenant) {
        problems.push({ object: info.key, reason: `header names tenant "${object.header.tenant}"` });
        continue;
      }
      await checkSections(info.key, object);
    }
    // The records: every catalog and key record's checksum, and every catalogued object present.
    const missing = new Set<string>();
    for (const info of await archive.store.list(sessionsPrefix(tenant))) {
      let catalog: SessionCatalog | undefined;
      try {
        catalog = await getRecord<SessionCatalog>(archive.store, info.key);
      } catch (error) {
        problems.push({ object: info.key, reason: reasonOf(error) });
        continue;
      }
      for (const entry of catalog?.entries ?? []) {
        if (listed.has(entry.object) || missing.has(entry.object)) continue;
        if (archive.isExpired(tenant, entry.createdAt)) continue;
        if ((await archive.store.get(entry.object)) !== undefined) continue; // written since the listing
        missing.add(entry.object);
        problems.push({ object: entry.object, reason: "object missing" });
      }
    }
    for (const info of await archive.store.list(keysPrefix(tenant))) {
      try {
        await getRecord<KeyRecord>(archive.store, info.key);
      } catch (error) {
        problems.push({ object: info.key, reason: reasonOf(error) });
      }
    }
  }
  return { objectsChecked, eventsChecked, problems };
}

/** The reference a session id has inside a tenant's objects (for tools and tests). */
export const sessionReference = (tenant: string, sessionId: string): string =>
  reference(tenant, "session", sessionId);
