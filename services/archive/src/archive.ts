import { DataCorruptionError, InvalidEventError, NotFoundError } from "@sessiontrack/errors";
import { StoredEvent } from "@sessiontrack/proto";
import type { Logger } from "@sessiontrack/runtime";

import {
  newDataKey,
  reference,
  unwrapDataKey,
  wrapDataKey,
  type DataKey,
  type KeyEncryptionKey,
  type KeyEncryptionKeyDirectory,
} from "./keys.js";
import { decodeIncoming, type IncomingEvent } from "./incoming.js";
import type { ArchiveMetrics } from "./metrics.js";
import {
  assembleObject,
  openSection,
  parseObject,
  sealSection,
  type Codec,
  type ParsedObject,
  type SealedSection,
} from "./object-format.js";
import { newManifestKey, recoverPendingTenant, type BatchManifest, type PendingTenant } from "./manifests.js";
import type { ObjectStore } from "./object-store.js";
import type { RetentionPolicies } from "./policy.js";
import { scanArchive, type ScannedSession } from "./scan.js";
import {
  catalogKey,
  getRecord,
  keyRecordKey,
  newObjectKey,
  encodeRecord,
  type CatalogEntry,
  type KeyRecord,
  type SessionCatalog,
} from "./records.js";

const DAY_MS = 24 * 60 * 60 * 1000;
/** A session with this many sections is worth compacting into one. */
export const COMPACT_MIN_SECTIONS = 2;
/** Pending manifests of a tenant are folded once there are this many, or the oldest is this old. */
const FOLD_AFTER_MANIFESTS = 32;
const FOLD_AFTER_MS = 5_000;

/** A catalogued object or section is gone: data loss, unless the session was just compacted. */
class MovedWhileReadingError extends DataCorruptionError {}

/** What the archive needs. */
export interface ArchiveDeps {
  store: ObjectStore;
  keks: KeyEncryptionKeyDirectory;
  policies: RetentionPolicies;
  metrics: ArchiveMetrics;
  logger: Logger;
  /** Milliseconds since the epoch; injectable so tests can age objects. */
  clock?: () => number;
  codec?: Codec;
}

/** Result of a WriteBatch. */
export interface WriteResult {
  written: number;
  duplicates: number;
  objects: number;
}

/** A decoded event read back, with its original bytes. */
export interface ArchivedEvent {
  bytes: Buffer;
  eventId: string;
  seq: number;
}

function byTenant<T extends { tenant: string }>(items: readonly T[]): Map<string, T[]> {
  const groups = new Map<string, T[]>();
  for (const item of items) {
    const group = groups.get(item.tenant);
    if (group === undefined) groups.set(item.tenant, [item]);
    else group.push(item);
  }
  return groups;
}

/**
 * The archive's storage logic over an {@link ObjectStore}: batched, compressed,
 * envelope-encrypted, checksummed objects; per-session catalogs for lookup and
 * deduplication; erasure by destroying data keys; verification; local tiering.
 * Writes and erasures of one tenant are serialized (one archive process owns a store).
 */
export class Archive {
  readonly store: ObjectStore;
  readonly clock: () => number;
  readonly codec: Codec;
  readonly metrics: ArchiveMetrics;
  readonly logger: Logger;
  /** Sessions written in several batches, by `tenant\0sessionId` → last write (ms): compaction candidates. */
  readonly fragmented = new Map<string, number>();
  private readonly locks = new Map<string, Promise<unknown>>();
  private readonly keyCache = new Map<string, DataKey>();
  /** Per tenant: manifests written but not yet folded into the per-session records. */
  private readonly pending = new Map<string, Promise<PendingTenant>>();

  constructor(private readonly deps: ArchiveDeps) {
    this.store = deps.store;
    this.metrics = deps.metrics;
    this.logger = deps.logger;
    this.clock = deps.clock ?? Date.now;
    this.codec = deps.codec ?? "deflate-d1";
  }

  /** Runs `work` after every earlier piece of work of the same tenant. */
  withTenantLock<T>(tenant: string, work: () => Promise<T>): Promise<T> {
    const previous = this.locks.get(tenant) ?? Promise.resolve();
    const next = previous.then(work, work);
    const settled = next.then(
      () => undefined,
      () => undefined,
    );
    this.locks.set(tenant, settled);
    void settled.then(() => {
      if (this.locks.get(tenant) === settled) this.locks.delete(tenant);
    });
    return next;
  }

  /** Stores encoded StoredEvents; duplicates of archived (tenant, event_id) are counted, not stored. */
  async writeBatch(rawEvents: readonly Buffer[]): Promise<WriteResult> {
    if (rawEvents.length === 0) throw new InvalidEventError("events: the batch is empty");
    const incoming = rawEvents.map((bytes, index) => decodeIncoming(bytes, index));
    const groups = byTenant(incoming);
    // Every tenant of the batch needs its KEK before anything is written: never plaintext.
    const keks = new Map<string, KeyEncryptionKey>();
    for (const tenant of groups.keys()) keks.set(tenant, await this.deps.keks.forTenant(tenant));
    const total: WriteResult = { written: 0, duplicates: 0, objects: 0 };
    for (const [tenant, events] of groups) {
      const result = await this.withTenantLock(tenant, () => this.writeTenant(keks.get(tenant)!, events));
      total.written += result.written;
      total.duplicates += result.duplicates;
      total.objects += result.objects;
    }
    this.deps.metrics.events.inc({ result: "written" }, total.written);
    if (total.duplicates > 0) this.deps.metrics.events.inc({ result: "duplicate" }, total.duplicates);
    return total;
  }

  private async writeTenant(kek: KeyEncryptionKey, events: IncomingEvent[]): Promise<WriteResult> {
    const tenant = kek.tenant;
    const pending = await this.pendingFor(tenant);
    const bySession = new Map<string, IncomingEvent[]>();
    for (const event of events) {
      const group = bySession.get(event.sessionId);
      if (group === undefined) bySession.set(event.sessionId, [event]);
      else group.push(event);
    }
    // Dedupe against the session's catalog and the manifests not yet folded into it.
    const plans = await Promise.all(
      [...bySession].map(async ([sessionId, sessionEvents]) => {
        const ref = reference(tenant, "session", sessionId);
        const state = (await pending.session(ref, sessionId))!;
        const seen = new Set<string>();
        const fresh: IncomingEvent[] = [];
        for (const event of sessionEvents) {
          if (state.eventIds.has(event.eventId) || seen.has(event.eventId)) continue;
          seen.add(event.eventId);
          fresh.push(event);
        }
        const users = new Set<string>();
        for (const event of fresh) {
          if (event.userId === "") continue;
          const userRef = reference(tenant, "user", event.userId);
          if (!state.catalog.users.includes(userRef)) users.add(userRef);
        }
        return {
          sessionId,
          ref,
          fresh,
          users: [...users],
          duplicates: sessionEvents.length - fresh.length,
          // Nothing catalogued or pending: a new session (or an erased one), so a new key.
          isNew: state.catalog.entries.length === 0,
        };
      }),
    );
    const duplicates = plans.reduce((sum, plan) => sum + plan.duplicates, 0);
    const toWrite = plans.filter((plan) => plan.fresh.length > 0);
    if (toWrite.length === 0) return { written: 0, duplicates, objects: 0 };

    const keys = await Promise.all(toWrite.map((plan) => this.keyForWrite(kek, plan.ref, plan.isNew)));
    const now = this.clock();
    const objectKey = newObjectKey(tenant, now);
    const sections: SealedSection[] = toWrite.map((plan, index) => {
      plan.fresh.sort((a, b) => a.seq - b.seq);
      return sealSection(
        tenant,
        plan.ref,
        keys[index]!.key,
        plan.fresh.map((event) => event.bytes),
        this.codec,
      );
    });
    const object = assembleObject(tenant, now, sections);
    // The object and the manifest that makes it visible (with any new wrapped data keys),
    // in one group commit: two writes per tenant per batch, however many sessions it touches.
    const manifest: BatchManifest = {
      v: 1,
      object: objectKey,
      sessions: toWrite.map((plan, index) => ({
        sessionId: plan.sessionId,
        ref: plan.ref,
        users: plan.users,
        key: keys[index]!.created,
        entry: {
          object: objectKey,
          section: sections[index]!.header.id,
          keyId: keys[index]!.key.id,
          createdAt: now,
          events: plan.fresh.map((event) => [event.eventId, event.seq]),
        },
      })),
    };
    const manifestKey = newManifestKey(tenant, now);
    await this.store.putMany([
      [objectKey, object],
      [manifestKey, encodeRecord(manifest)],
    ]);
    this.deps.metrics.recordObject(
      sections.reduce((sum, section) => sum + section.header.rawBytes, 0),
      object.length,
    );
    await pending.apply(manifestKey, manifest, now);
    for (const [index, plan] of toWrite.entries()) {
      this.cacheKey(kek, plan.ref, keys[index]!.key);
      const state = (await pending.session(plan.ref))!;
      if (state.catalog.entries.length >= COMPACT_MIN_SECTIONS)
        this.fragmented.set(`${tenant}\0${plan.sessionId}`, now);
    }
    if (pending.activeManifests >= FOLD_AFTER_MANIFESTS || now - pending.activeSince >= FOLD_AFTER_MS) {
      await pending.foldInBackground();
    }
    const written = toWrite.reduce((sum, plan) => sum + plan.fresh.length, 0);
    return { written, duplicates, objects: 1 };
  }

  /**
   * The data key a write uses: the session's existing one, or a new one and its wrapped
   * record (stored with the batch's manifest; cached only once that is durable).
   */
  private async keyForWrite(
    kek: KeyEncryptionKey,
    ref: string,
    isNew: boolean,
  ): Promise<{ key: DataKey; created: KeyRecord | null }> {
    const existing = isNew ? undefined : await this.sessionKey(kek, ref);
    if (existing !== undefined) return { key: existing, created: null };
    const key = newDataKey();
    return { key, created: { ...wrapDataKey(kek, key, ref), session: ref } };
  }

  /**
   * A tenant's pending state. The first use after start-up reads back the manifests a
   * crash (or a shutdown that could not fold) left, in write order, so that dedupe and
   * reads again see everything ever acknowledged; the next fold writes them out.
   */
  private pendingFor(tenant: string): Promise<PendingTenant> {
    let state = this.pending.get(tenant);
    if (state === undefined) {
      state = recoverPendingTenant(this.store, tenant, this.deps.logger);
      this.pending.set(tenant, state);
      state.catch(() => this.pending.delete(tenant)); // store unreachable: try again next time
    }
    return state;
  }

  /**
   * Folds a tenant's pending manifests into catalogs, key records and subject indexes.
   * Callers that read those records from the store (erasure, compaction, sweeps, whole-tenant
   * verification and scans) run this first, under the tenant's lock.
   */
  async foldPending(tenant: string): Promise<void> {
    await (await this.pendingFor(tenant)).fold();
  }

  /** Folds every tenant's pending manifests (each under its lock). */
  async foldAll(): Promise<void> {
    for (const tenant of [...this.pending.keys()])
      await this.withTenantLock(tenant, () => this.foldPending(tenant));
  }

  /** The session's data key, unwrapped; undefined when it has none (never written, or erased). */
  async sessionKey(kek: KeyEncryptionKey, sessionRef: string): Promise<DataKey | undefined> {
    const cached = this.keyCache.get(`${kek.tenant}/${kek.id}/${sessionRef}`);
    if (cached !== undefined) return cached;
    const recordKey = keyRecordKey(kek.tenant, sessionRef);
    const record =
      (await (await this.pendingFor(kek.tenant)).session(sessionRef))?.key ??
      (await getRecord<KeyRecord>(this.store, recordKey));
    if (record === undefined || record === null) return undefined;
    const key = unwrapDataKey(kek, record, sessionRef, recordKey);
    this.cacheKey(kek, sessionRef, key);
    return key;
  }

  /** Forgets cached data keys of a session (after erasure). */
  forgetKey(tenant: string, sessionRef: string): void {
    for (const cacheKey of this.keyCache.keys()) {
      if (cacheKey.startsWith(`${tenant}/`) && cacheKey.endsWith(`/${sessionRef}`))
        this.keyCache.delete(cacheKey);
    }
  }

  private cacheKey(kek: KeyEncryptionKey, sessionRef: string, key: DataKey): void {
    if (this.keyCache.size > 10_000) this.keyCache.clear();
    this.keyCache.set(`${kek.tenant}/${kek.id}/${sessionRef}`, key);
  }

  /** Whether an object written at `createdAt` is past the tenant's retention at `now`. */
  isExpired(tenant: string, createdAt: number, now = this.clock()): boolean {
    const { retentionDays } = this.deps.policies.forTenant(tenant);
    return retentionDays > 0 && now - createdAt >= retentionDays * DAY_MS;
  }

  /** A session's catalog; NotFoundError when the archive has nothing of it. */
  async catalog(tenant: string, sessionId: string): Promise<{ ref: string; catalog: SessionCatalog }> {
    const ref = reference(tenant, "session", sessionId);
    const pending = (await (await this.pendingFor(tenant)).session(ref))?.catalog;
    const catalog =
      pending === undefined
        ? await getRecord<SessionCatalog>(this.store, catalogKey(tenant, ref))
        : { ...pending, users: [...pending.users], entries: [...pending.entries] };
    if (catalog === undefined || catalog.entries.length === 0) {
      throw new NotFoundError(`session "${sessionId}" is not in tenant "${tenant}"'s archive`);
    }
    return { ref, catalog };
  }

  /** Reads and checks an object; undefined when it is gone because its retention passed. */
  async readObject(
    tenant: string,
    entry: Pick<CatalogEntry, "object" | "createdAt">,
  ): Promise<ParsedObject | undefined> {
    const bytes = await this.store.get(entry.object);
    if (bytes === undefined) {
      if (this.isExpired(tenant, entry.createdAt)) return undefined;
      this.deps.metrics.readFailures.inc({ reason: "missing" });
      throw new MovedWhileReadingError(`${entry.object}: object missing`);
    }
    try {
      return parseObject(bytes, entry.object);
    } catch (error) {
      this.deps.metrics.readFailures.inc({ reason: "checksum" });
      throw error;
    }
  }

  /** A session's whole transcript, ordered by seq, each event's bytes exactly as written. */
  async getSession(tenant: string, sessionId: string): Promise<ArchivedEvent[]> {
    for (let attempt = 1; ; attempt += 1) {
      const { ref, catalog } = await this.catalog(tenant, sessionId);
      try {
        return await this.readSession(tenant, sessionId, ref, catalog);
      } catch (error) {
        // Compaction may have moved the session (new catalog, old sections cut) between
        // reading the catalog and an object: read again from the new catalog.
        if (!(error instanceof MovedWhileReadingError) || attempt >= 3) throw error;
        const current = await this.catalog(tenant, sessionId).catch(() => undefined);
        if (JSON.stringify(current?.catalog) === JSON.stringify(catalog)) throw error;
      }
    }
  }

  private async readSession(
    tenant: string,
    sessionId: string,
    ref: string,
    catalog: SessionCatalog,
  ): Promise<ArchivedEvent[]> {
    const kek = await this.deps.keks.forTenant(tenant);
    const dek = await this.sessionKey(kek, ref);
    if (dek === undefined) {
      this.deps.metrics.readFailures.inc({ reason: "key destroyed" });
      throw new DataCorruptionError(`session "${sessionId}": its data key is destroyed (erased?)`);
    }
    const byObject = new Map<string, CatalogEntry[]>();
    for (const entry of catalog.entries)
      byObject.set(entry.object, [...(byObject.get(entry.object) ?? []), entry]);
    const seen = new Set<string>();
    const events: ArchivedEvent[] = [];
    for (const [objectKey, entries] of byObject) {
      const object = await this.readObject(tenant, entries[0]!);
      if (object === undefined) continue;
      for (const entry of entries) {
        const section = object.header.sections.find((candidate) => candidate.id === entry.section);
        if (section === undefined || section.session !== ref) {
          this.deps.metrics.readFailures.inc({ reason: "section missing" });
          throw new MovedWhileReadingError(
            `${objectKey}: section ${entry.section} of session "${sessionId}" is missing`,
          );
        }
        let opened: Buffer[];
        try {
          opened = openSection(object, section, dek, objectKey);
        } catch (error) {
          this.deps.metrics.readFailures.inc({ reason: "authentication" });
          throw error;
        }
        for (const bytes of opened) {
          const stored = StoredEvent.decode(bytes);
          if (seen.has(stored.eventId)) continue;
          seen.add(stored.eventId);
          events.push({ bytes: Buffer.from(bytes), eventId: stored.eventId, seq: stored.seq });
        }
      }
    }
    return events.sort(
      (a, b) => a.seq - b.seq || (a.eventId < b.eventId ? -1 : a.eventId > b.eventId ? 1 : 0),
    );
  }

  /** Tenants that have anything in the store. */
  async tenants(): Promise<string[]> {
    const names = new Set<string>();
    for (const info of await this.store.list("tenants/")) {
      const name = info.key.split("/")[1];
      if (name !== undefined) names.add(name);
    }
    return [...names].sort();
  }

  /**
   * Every readable session of a tenant (or of every tenant), one transcript at a time —
   * what `sessiontrack index rebuild` replays (see scan.ts).
   */
  scan(tenant?: string): AsyncGenerator<ScannedSession> {
    return scanArchive(this, tenant);
  }
}
