// Reading a whole tenant back (ScanEvents, `sessiontrack index rebuild`): every session
// its catalogs name, one transcript at a time.
import { InvalidEventError, SessionTrackError } from "@sessiontrack/errors";

import type { Archive, ArchivedEvent } from "./archive.js";
import { TENANT_NAME } from "./incoming.js";
import { getRecord, sessionsPrefix, type SessionCatalog } from "./records.js";

/** One session's transcript, as a scan yields it. */
export interface ScannedSession {
  tenant: string;
  sessionId: string;
  events: ArchivedEvent[];
}

/** Whether an error is one a scan should skip past (unreadable data) rather than stop on. */
function isDataProblem(error: unknown): boolean {
  return error instanceof SessionTrackError && (error.code === "DATA_LOSS" || error.code === "NOT_FOUND");
}

/** Session ids of a tenant, from its catalogs (fold pending manifests first). */
async function sessionIds(archive: Archive, tenant: string): Promise<string[]> {
  const ids: string[] = [];
  for (const info of await archive.store.list(sessionsPrefix(tenant))) {
    if (!info.key.endsWith(".json")) continue;
    const catalog = await getRecord<SessionCatalog>(archive.store, info.key).catch(() => undefined);
    if (catalog !== undefined) ids.push(catalog.sessionId);
  }
  return ids;
}

/**
 * Every readable session of a tenant (or of every tenant). Pending manifests are folded
 * first, so sessions only they describe are included. Unreadable sessions (corrupt, key
 * destroyed) are logged and skipped; a missing KEK or an unreachable store stops the scan.
 */
export async function* scanArchive(archive: Archive, tenant?: string): AsyncGenerator<ScannedSession> {
  if (tenant !== undefined && !TENANT_NAME.test(tenant)) {
    throw new InvalidEventError(`tenant: "${tenant}" is not a tenant name (a DNS label)`);
  }
  for (const name of tenant === undefined ? await archive.tenants() : [tenant]) {
    await archive.withTenantLock(name, () => archive.foldPending(name));
    for (const sessionId of await sessionIds(archive, name)) {
      let events: ArchivedEvent[];
      try {
        events = await archive.getSession(name, sessionId);
      } catch (error) {
        if (!isDataProblem(error)) throw error;
        archive.logger.warn({ err: error, tenant: name, sessionId }, "scan: session unreadable, skipped");
        continue;
      }
      yield { tenant: name, sessionId, events };
    }
  }
}
