// Batch manifests: the one small record a WriteBatch writes per tenant instead of
// rewriting every session's catalog, key record and subject index. The pending state they
// describe is held in memory and folded into the per-session records in bulk.
import { randomBytes } from "node:crypto";

import type { Logger } from "@sessiontrack/runtime";

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
  /** Whether a manifest of this layer added anything (only those catalogs are rewritten). */
  changed: boolean;
}

/** The manifests written between two folds, and the sessions they touch. */
interface Layer {
  manifests: string[];
  sessions: Map<string, PendingSession>;
  /** When its oldest manifest was written (ms), for the fold policy. */
  oldest: number;
}

const newLayer = (): Layer => ({ manifests: [], sessions: new Map(), oldest: Number.POSITIVE_INFINITY });

/**
 * The manifests of one tenant not yet folded, in layers: writes add to the newest; older
 * layers are being folded (in order, in the background) and stay readable until their
 * records are durable. A session's state in a newer layer includes everything older.
 */
export class PendingTenant {
  private readonly layers: Layer[] = [newLayer()];
  private folding: Promise<void> = Promise.resolve();

  constructor(
    readonly tenant: string,
    private readonly store: ObjectStore,
    private readonly onFoldError: (error: unknown) => void,
  ) {}

  private get active(): Layer {
    return this.layers.at(-1)!;
  }

  /** Manifests in the layer writes currently add to. */
  get activeManifests(): number {
    return this.active.manifests.length;
  }

  /** When the active layer's oldest manifest was written (ms). */
  get activeSince(): number {
    return this.active.oldest;
  }

  /**
   * A session's pending state; undefined when no layer has it. With `sessionId` (writers),
   * the active layer gets the session, started from an older layer's state or the stored
   * catalog (or an empty one).
   */
  async session(ref: string, sessionId?: string): Promise<PendingSession | undefined> {
    const active = this.active.sessions.get(ref);
    if (active !== undefined) return active;
    let older: PendingSession | undefined;
    for (let index = this.layers.length - 2; index >= 0 && older === undefined; index -= 1)
      older = this.layers[index]!.sessions.get(ref);
    if (sessionId === undefined) return older;
    let catalog: SessionCatalog;
    if (older !== undefined) {
      catalog = { ...older.catalog, users: [...older.catalog.users], entries: [...older.catalog.entries] };
    } else {
      const stored = await getRecord<SessionCatalog>(this.store, catalogKey(this.tenant, ref));
      catalog = stored ?? { v: 1, sessionId, users: [], entries: [] };
      // A concurrent lookup may have added it meanwhile (writers are serialized; be safe).
      const raced = this.active.sessions.get(ref);
      if (raced !== undefined) return raced;
    }
    const loaded: PendingSession = {
      catalog,
      sections: new Set(catalog.entries.map((entry) => `${entry.object}\0${entry.section}`)),
      eventIds: new Set(catalog.entries.flatMap((entry) => entry.events.map(([eventId]) => eventId))),
      key: older?.key ?? null,
      newUsers: new Set(),
      changed: false,
    };
    this.active.sessions.set(ref, loaded);
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
    this.active.manifests.push(manifestKey);
    this.active.oldest = Math.min(this.active.oldest, writtenAt);
  }

  /**
   * Starts folding the active layer in the background (writes go on into a new one) and
   * returns once at most one older layer is still waiting: writers slow down rather than
   * let the backlog of unfolded manifests grow.
   */
  async foldInBackground(): Promise<void> {
    if (this.active.manifests.length === 0) return;
    if (this.layers.length > 2) await this.folding;
    this.layers.push(newLayer());
    this.folding = this.folding.then(() => this.foldOlderLayers().catch(this.onFoldError));
  }

  /** Folds every layer now; after this the store's records describe everything acknowledged. */
  async fold(): Promise<void> {
    if (this.active.manifests.length > 0) this.layers.push(newLayer());
    await this.folding;
    await this.foldOlderLayers();
  }

  private async foldOlderLayers(): Promise<void> {
    while (this.layers.length > 1) {
      await this.foldLayer(this.layers[0]!);
      this.layers.shift();
    }
  }

  /**
   * Writes the layer's changed catalogs, new key records and subject indexes in one group
   * commit, then deletes its manifests. A crash part-way leaves the manifests, and folding
   * them again (after a restart) rewrites the same records.
   */
  private async foldLayer(layer: Layer): Promise<void> {
    const bySubject = new Map<string, string[]>();
    const writes: Array<readonly [string, Buffer]> = [];
    for (const [ref, pending] of layer.sessions) {
      if (!pending.changed) continue;
      // Rewriting a key record a crashed fold already wrote is harmless: the same key.
      if (pending.key !== null) writes.push([keyRecordKey(this.tenant, ref), encodeRecord(pending.key)]);
      for (const user of pending.newUsers) {
        bySubject.set(user, [...(bySubject.get(user) ?? []), pending.catalog.sessionId]);
      }
      writes.push([catalogKey(this.tenant, ref), encodeRecord(pending.catalog)]);
    }
    const subjects = await Promise.all(
      [...bySubject].map(async ([userRef, sessions]) => {
        const key = subjectKey(this.tenant, userRef);
        const index = (await getRecord<SubjectIndex>(this.store, key)) ?? { v: 1 as const, sessions: [] };
        const before = index.sessions.length;
        for (const session of sessions) if (!index.sessions.includes(session)) index.sessions.push(session);
        return index.sessions.length === before ? undefined : ([key, encodeRecord(index)] as const);
      }),
    );
    for (const subject of subjects) if (subject !== undefined) writes.push(subject);
    await this.store.putMany(writes);
    await Promise.all(layer.manifests.map((key) => this.store.delete(key)));
  }
}

/**
 * A tenant's pending state after a start: the manifests a crash (or a shutdown that could
 * not fold) left are applied in write order, so that dedupe and reads again see everything
 * acknowledged; the next fold writes them out.
 */
export async function recoverPendingTenant(
  store: ObjectStore,
  tenant: string,
  logger: Logger,
): Promise<PendingTenant> {
  const pending = new PendingTenant(tenant, store, (error) => {
    // The manifests stay; the next fold (or a restart) writes their records.
    logger.warn({ err: error, tenant }, "folding batch manifests failed; will retry");
  });
  for (const info of await store.list(manifestsPrefix(tenant))) {
    const manifest = await getRecord<BatchManifest>(store, info.key);
    if (manifest === undefined) continue;
    if ((await store.get(manifest.object)) === undefined) {
      // Written together with its object, which a crash lost: that batch was never
      // acknowledged, and its retry must not be taken for a duplicate.
      await store.delete(info.key);
      continue;
    }
    await pending.apply(info.key, manifest, info.lastModified.getTime());
  }
  if (pending.activeManifests > 0)
    logger.info({ tenant, manifests: pending.activeManifests }, "manifests recovered");
  return pending;
}
