import type { Archive, ArchivedEvent } from "./archive.js";
import { reference, type DataKey, type KeyEncryptionKeyDirectory } from "./keys.js";
import {
  assembleObject,
  parseObject,
  sealSection,
  withoutSections,
  type SealedSection,
} from "./object-format.js";
import { catalogKey, encodeRecord, newObjectKey, type SessionCatalog } from "./records.js";

/** What a compaction pass did. */
export interface CompactionResult {
  sessions: number;
  sectionsMerged: number;
  objectsDeleted: number;
  objectsRewritten: number;
}

/** Raw bytes per compacted object before a new one is started. */
const MAX_OBJECT_RAW_BYTES = 32 * 1024 * 1024;

interface Rewrite {
  sessionId: string;
  ref: string;
  catalog: SessionCatalog;
  dek: DataKey;
  events: ArchivedEvent[];
  section: SealedSection;
}

/**
 * Rewrites sessions of one tenant that were written in several batches, each as a single
 * section: one compressed stream over a whole conversation compresses far better than
 * many small ones. Order: the new object(s), then the catalogs pointing at them (each
 * reader switches atomically), then the old sections are cut out of their objects — each
 * old object rewritten once for the whole pass, or deleted when empty. A compacted
 * object's header keeps the oldest createdAt of what it replaces.
 */
async function compactTenant(
  archive: Archive,
  keks: KeyEncryptionKeyDirectory,
  tenant: string,
  sessionIds: readonly string[],
  result: CompactionResult,
): Promise<void> {
  const kek = await keks.forTenant(tenant);
  const rewrites: Rewrite[] = [];
  for (const sessionId of sessionIds) {
    let catalog: SessionCatalog;
    try {
      ({ catalog } = await archive.catalog(tenant, sessionId));
    } catch {
      continue; // erased or expired meanwhile
    }
    if (catalog.entries.length < 2) continue;
    const ref = reference(tenant, "session", sessionId);
    const dek = await archive.sessionKey(kek, ref);
    if (dek === undefined) continue;
    const events = await archive.getSession(tenant, sessionId);
    if (events.length === 0) continue;
    const section = sealSection(
      tenant,
      ref,
      dek,
      events.map((event) => event.bytes),
      archive.codec,
    );
    rewrites.push({ sessionId, ref, catalog, dek, events, section });
  }
  const groups: Rewrite[][] = [];
  let rawBytes = Number.POSITIVE_INFINITY;
  for (const rewrite of rewrites) {
    if (rawBytes + rewrite.section.header.rawBytes > MAX_OBJECT_RAW_BYTES) {
      groups.push([]);
      rawBytes = 0;
    }
    groups.at(-1)!.push(rewrite);
    rawBytes += rewrite.section.header.rawBytes;
  }
  const drop = new Map<string, Set<string>>();
  for (const group of groups) {
    const now = archive.clock();
    const createdAt = Math.min(
      ...group.flatMap((rewrite) => rewrite.catalog.entries.map((entry) => entry.createdAt)),
    );
    const objectKey = newObjectKey(tenant, now);
    const object = assembleObject(
      tenant,
      createdAt,
      group.map((rewrite) => rewrite.section),
    );
    await archive.store.put(objectKey, object);
    archive.metrics.recordObject(
      group.reduce((sum, rewrite) => sum + rewrite.section.header.rawBytes, 0),
      object.length,
    );
    await archive.store.putMany(
      group.map((rewrite) => {
        for (const entry of rewrite.catalog.entries) {
          drop.set(entry.object, (drop.get(entry.object) ?? new Set()).add(entry.section));
        }
        result.sessions += 1;
        result.sectionsMerged += rewrite.catalog.entries.length;
        const compacted: SessionCatalog = {
          ...rewrite.catalog,
          entries: [
            {
              object: objectKey,
              section: rewrite.section.header.id,
              keyId: rewrite.dek.id,
              createdAt,
              events: rewrite.events.map((event) => [event.eventId, event.seq]),
            },
          ],
        };
        return [catalogKey(tenant, rewrite.ref), encodeRecord(compacted)] as const;
      }),
    );
  }
  for (const [key, sections] of drop) {
    const bytes = await archive.store.get(key);
    if (bytes === undefined) continue;
    const remaining = withoutSections(parseObject(bytes, key), sections);
    if (remaining === undefined) {
      await archive.store.delete(key);
      result.objectsDeleted += 1;
    } else {
      await archive.store.put(key, remaining);
      result.objectsRewritten += 1;
    }
  }
}

/**
 * Compacts every session that was written in several batches and has been quiet for
 * `idleMs` (a conversation that is probably over). Runs per tenant under its write lock.
 */
export async function compactFragmentedSessions(
  archive: Archive,
  keks: KeyEncryptionKeyDirectory,
  idleMs: number,
): Promise<CompactionResult> {
  const result: CompactionResult = { sessions: 0, sectionsMerged: 0, objectsDeleted: 0, objectsRewritten: 0 };
  // Each pass also folds manifests of tenants that went quiet.
  await archive.foldAll();
  const byTenant = new Map<string, string[]>();
  for (const [id, lastWrite] of archive.fragmented) {
    if (archive.clock() - lastWrite < idleMs) continue;
    const [tenant, sessionId] = id.split("\0") as [string, string];
    byTenant.set(tenant, [...(byTenant.get(tenant) ?? []), sessionId]);
  }
  for (const [tenant, candidates] of byTenant) {
    await archive.withTenantLock(tenant, async () => {
      await archive.foldPending(tenant);
      // A write since the listing makes a session busy again: leave it for a later pass.
      const due = new Map<string, number>();
      for (const sessionId of candidates) {
        const id = `${tenant}\0${sessionId}`;
        const lastWrite = archive.fragmented.get(id);
        if (lastWrite === undefined || archive.clock() - lastWrite < idleMs) continue;
        due.set(sessionId, lastWrite);
        archive.fragmented.delete(id);
      }
      try {
        await compactTenant(archive, keks, tenant, [...due.keys()], result);
      } catch (error) {
        // Store unreachable or a KEK missing: keep the sessions for the next pass.
        for (const [sessionId, lastWrite] of due) {
          const id = `${tenant}\0${sessionId}`;
          if (!archive.fragmented.has(id)) archive.fragmented.set(id, lastWrite);
        }
        throw error;
      }
    });
  }
  return result;
}
