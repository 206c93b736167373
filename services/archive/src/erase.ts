import { createHash, randomUUID } from "node:crypto";

import { InvalidEventError } from "@sessiontrack/errors";
import type { ArchiveServiceEraseResponse } from "@sessiontrack/proto";
import type { Logger } from "@sessiontrack/runtime";

import type { Archive } from "./archive.js";
import { reference } from "./keys.js";
import type { ArchiveMetrics } from "./metrics.js";
import { parseObject, withoutSections } from "./object-format.js";
import {
  auditKey,
  catalogKey,
  getRecord,
  keyRecordKey,
  putRecord,
  subjectKey,
  type KeyRecord,
  type SessionCatalog,
  type SubjectIndex,
} from "./records.js";

/** What to erase within a tenant. */
export type EraseTargetInput = { kind: "user"; userId: string } | { kind: "session"; sessionId: string };

/** The audit record written for every erasure (tenants/<t>/audit/…json). */
export interface AuditRecord {
  receiptId: string;
  tenant: string;
  /** The target's kind and the SHA-256 of its id: the audit trail names no personal identifier. */
  target: { kind: "user" | "session"; sha256: string };
  erasedAt: string;
  sessions: string[];
  dataKeysDestroyed: string[];
  objectsDeleted: number;
  objectsRewritten: number;
  eventsErased: number;
}

const RECEIPT_ID = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;

interface SessionErasure {
  keyIds: string[];
  objectsDeleted: number;
  objectsRewritten: number;
  events: number;
}

/**
 * Erases one session: destroys its data key first (from then on no copy of its sections,
 * backups included, can be decrypted), then removes its sections from the data objects
 * (deleting objects left empty), then its catalog and its place in subject indexes.
 * Safe to repeat after a crash part-way.
 */
async function eraseSession(
  archive: Archive,
  tenant: string,
  sessionId: string,
  logger: Logger,
): Promise<SessionErasure> {
  const store = archive.store;
  const ref = reference(tenant, "session", sessionId);
  const result: SessionErasure = { keyIds: [], objectsDeleted: 0, objectsRewritten: 0, events: 0 };
  const recordKey = keyRecordKey(tenant, ref);
  const record = await getRecord<KeyRecord>(store, recordKey).catch(() => undefined);
  const keyBytes = await store.get(recordKey);
  if (keyBytes !== undefined) {
    await store.delete(recordKey);
    result.keyIds.push(record?.keyId ?? "unreadable-key-record");
  }
  archive.forgetKey(tenant, ref);
  const catalog = await getRecord<SessionCatalog>(store, catalogKey(tenant, ref)).catch(() => undefined);
  if (catalog !== undefined) {
    const sectionsByObject = new Map<string, Set<string>>();
    for (const entry of catalog.entries) {
      const set = sectionsByObject.get(entry.object) ?? new Set<string>();
      set.add(entry.section);
      sectionsByObject.set(entry.object, set);
      result.events += entry.events.length;
    }
    for (const [objectKey, sections] of sectionsByObject) {
      const bytes = await store.get(objectKey);
      if (bytes === undefined) continue;
      let remaining: Buffer | undefined;
      try {
        const object = parseObject(bytes, objectKey);
        // Also drop sections of this session the catalog may not list (a crash between an
        // object write and its catalog update): they are unreadable now anyway.
        for (const section of object.header.sections) if (section.session === ref) sections.add(section.id);
        remaining = withoutSections(object, sections);
      } catch (error) {
        // A corrupt object cannot be split; its sections of this session are already
        // undecryptable, and the object stays for Verify to report.
        logger.warn({ err: error, object: objectKey }, "erase: object failed its checksum; left in place");
        continue;
      }
      if (remaining === undefined) {
        await store.delete(objectKey);
        result.objectsDeleted += 1;
      } else {
        await store.put(objectKey, remaining);
        result.objectsRewritten += 1;
      }
    }
    for (const userRef of catalog.users) {
      const key = subjectKey(tenant, userRef);
      const index = await getRecord<SubjectIndex>(store, key).catch(() => undefined);
      if (index === undefined) continue;
      index.sessions = index.sessions.filter((session) => session !== sessionId);
      if (index.sessions.length === 0) await store.delete(key);
      else await putRecord(store, key, index);
    }
    await store.delete(catalogKey(tenant, ref));
  }
  return result;
}

/**
 * Erases a user's sessions or one session of a tenant and writes the audit record.
 * Runs under the tenant's write lock.
 */
export async function erase(
  archive: Archive,
  metrics: ArchiveMetrics,
  logger: Logger,
  tenant: string,
  target: EraseTargetInput,
  receiptIdInput: string,
  now: number,
): Promise<ArchiveServiceEraseResponse> {
  const receiptId = receiptIdInput === "" ? randomUUID() : receiptIdInput;
  if (!RECEIPT_ID.test(receiptId)) {
    throw new InvalidEventError(
      "receipt_id: must be 1-128 characters of letters, digits, '.', '_', ':' or '-', starting with a letter or digit",
    );
  }
  const targetId = target.kind === "user" ? target.userId : target.sessionId;
  if (targetId === "" || targetId.length > 256) {
    throw new InvalidEventError(`target.${target.kind}_id: must be 1-256 characters`);
  }
  return archive.withTenantLock(tenant, async () => {
    // Sessions only in manifests get their catalogs, keys and subject indexes first.
    await archive.foldPending(tenant);
    let sessions: string[];
    if (target.kind === "session") {
      sessions = [target.sessionId];
    } else {
      const index = await getRecord<SubjectIndex>(
        archive.store,
        subjectKey(tenant, reference(tenant, "user", target.userId)),
      );
      sessions = index?.sessions ?? [];
    }
    const erased: string[] = [];
    const keyIds: string[] = [];
    let objectsDeleted = 0;
    let objectsRewritten = 0;
    let events = 0;
    for (const sessionId of sessions) {
      const result = await eraseSession(archive, tenant, sessionId, logger);
      if (result.keyIds.length > 0 || result.events > 0) erased.push(sessionId);
      keyIds.push(...result.keyIds);
      objectsDeleted += result.objectsDeleted;
      objectsRewritten += result.objectsRewritten;
      events += result.events;
    }
    if (target.kind === "user") {
      await archive.store.delete(subjectKey(tenant, reference(tenant, "user", target.userId)));
    }
    const audit: AuditRecord = {
      receiptId,
      tenant,
      target: { kind: target.kind, sha256: createHash("sha256").update(targetId, "utf8").digest("hex") },
      erasedAt: new Date(now).toISOString(),
      sessions: erased,
      dataKeysDestroyed: keyIds,
      objectsDeleted,
      objectsRewritten,
      eventsErased: events,
    };
    const auditRecord = auditKey(tenant, now, receiptId);
    await putRecord(archive.store, auditRecord, audit);
    metrics.erasures.inc({ target: target.kind });
    logger.info(
      { tenant, receiptId, sessions: erased.length, keys: keyIds.length, objectsDeleted, events },
      "erased",
    );
    return {
      sessions: erased,
      dataKeysDestroyed: keyIds,
      objectsDeleted,
      eventsErased: events,
      auditRecord,
    };
  });
}
