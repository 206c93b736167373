// Batch manifests: the one small record a WriteBatch writes per tenant instead of
// rewriting every session's catalog, key record and subject index. The pending state they
// describe is held in memory and folded into the per-session records in bulk.
import { randomBytes } from "node:crypto";

import type { ObjectStore } from "./object-store.js";
import {
  catalogKey,
  encodeRecord,
  getRecord,
  keyRecordKey,
  subjectKey,
  type CatalogEntry,
  type KeyRecord,
  type SessionCatalog,
  type SubjectIndex,
} from "./records.js";

/** What one batch added to one session. */
export interface ManifestSession {
  sessionId: string;
  ref: string;
  /** References of users first seen in the session by this batch (for subject indexes). */
  users: string[];
  /** The session's wrapped data key when this batch created it; null otherwise. */
  key: KeyRecord | null;
  entry: CatalogEntry;
}

/** `tenants/<t>/manifests/<time36>-<rand>.json`: one per tenant per WriteBatch, until folded. */
export interface BatchManifest {
  v: 1;
  object: string;
  sessions: ManifestSession[];
}

export const manifestsPrefix = (tenant: string): string => `tenants/${tenant}/manifests/`;

export function newManifestKey(tenant: string, now: number): string {
  const stamp = now.toString(36).padStart(9, "0");
  return `${manifestsPrefix(tenant)}${stamp}-${randomBytes(5).toString("hex")}.json`;
}

/** A session touched by manifests not yet folded: its catalog as it will be written. */
interface PendingSession {
  catalog: SessionCatalog;
  /** Section ids already in the catalog, so that a manifest applied twice adds nothing. */
  sections: Set<string>;
  eventIds: Set<string>;
  key: KeyRecord | null;
  newUsers: Set<string>;
  /** Whether a manifest added anything (only those catalogs are rewritten). */
  changed: boolean;
}

/** The manifests of one tenant not yet folded, and what they add. */
export class PendingTenant {
  readonly manifests: string[] = [];
  readonly sessions = new Map<string, PendingSession>();
  /** When the oldest pending manifest was written (ms), for the fold policy. */
  oldest = Number.POSITIVE_INFINITY;

  constructor(
    readonly tenant: string,
    private readonly store: ObjectStore,
  ) {}

  /**
   * The pending state of a session (loading its stored catalog on first use); undefined
   * when the session is neither pending nor stored.
   */
  async session(ref: string, sessionId?: string): Promise<PendingSession | undefined> {
    const pending = this.sessions.get(ref);
    if (pending !== undefined || sessionId === undefined) return pending;
    const stored = await getRecord<SessionCatalog>(this.store, catalogKey(this.tenant, ref));
    const catalog: SessionCatalog = stored ?? { v: 1, sessionId, users: [], entries: [] };
    const loaded: PendingSession = {
      catalog,
      sections: new Set(catalog.entries.map((entry) => `${entry.object}\0${entry.section}`)),
      eventIds: new Set(catalog.entries.flatMap((entry) => entry.events.map(([eventId]) => eventId))),
      key: null,
      newUsers: new Set(),
      changed: false,
    };
    this.sessions.set(ref, loaded);
    return loaded;
  }

  /** Adds a durable manifest's contents (idempotent: sections already catalogued are skipped). */
  async apply(manifestKey: string, manifest: BatchManifest, writtenAt: number): Promise<void> {
    for (const added of manifest.sessions) {
      const pending = (await this.session(added.ref, added.sessionId))!;
      pending.changed = true;
      const id = `${added.entry.object}\0${added.entry.section}`;
      if (!pending.sections.has(id)) {
        pending.sections.add(id);
        pending.catalog.entries.push(added.entry);
        for (const [eventId] of added.entry.events) pending.eventIds.add(eventId);
      }
      if (added.key !== null) pending.key = added.key;
      for (const user of added.users) {
        if (!pending.catalog.users.includes(user)) pending.catalog.users.push(user);
        pending.newUsers.add(user);
      }
    }
    this.manifests.push(manifestKey);
    this.oldest = Math.min(this.oldest, writtenAt);
  }

  /**
   * Writes every pending session's catalog, new key records and subject indexes in one
   * group commit, then deletes the manifests. A crash part-way leaves the manifests, and
   * folding them again (at start-up) rewrites the same records.
   */
  async fold(): Promise<number> {
    if (this.manifests.length === 0) return 0;
    const bySubject = new Map<string, string[]>();
    const writes: Array<readonly [string, Buffer]> = [];
    for (const [ref, pending] of this.sessions) {
      if (!pending.changed) continue;
      // Rewriting a key record a crashed fold already wrote is harmless: same bytes' meaning.
      if (pending.key !== null) {
        writes.push([keyRecordKey(this.tenant, ref), encodeRecord(pending.key)]);
      }
      for (const user of pending.newUsers) {
        bySubject.set(user, [...(bySubject.get(user) ?? []), pending.catalog.sessionId]);
      }
      if (pending.catalog.entries.length > 0) {
        writes.push([catalogKey(this.tenant, ref), encodeRecord(pending.catalog)]);
      }
    }
    for (const [userRef, sessions] of bySubject) {
      const key = subjectKey(this.tenant, userRef);
      const index = (await getRecord<SubjectIndex>(this.store, key)) ?? { v: 1 as const, sessions: [] };
      const before = index.sessions.length;
      for (const session of sessions) if (!index.sessions.includes(session)) index.sessions.push(session);
      if (index.sessions.length !== before) writes.push([key, encodeRecord(index)]);
    }
    await this.store.putMany(writes);
    const folded = [...this.manifests];
    await Promise.all(folded.map((key) => this.store.delete(key)));
    this.manifests.length = 0;
    this.sessions.clear();
    this.oldest = Number.POSITIVE_INFINITY;
    return folded.length;
  }
}
