import type { Logger } from "@sessiontrack/runtime";

import type { Archive } from "./archive.js";
import type { ArchiveMetrics } from "./metrics.js";
import type { LocalObjectStore } from "./object-store.js";
import type { RetentionPolicies } from "./policy.js";
import { objectsPrefix, sessionsPrefix } from "./records.js";

const DAY_MS = 24 * 60 * 60 * 1000;

/** What one sweep did. */
export interface SweepResult {
  movedToCold: number;
  expired: number;
}

/**
 * Enforces tiering and retention on the local store (S3 does it with lifecycle rules):
 * data objects older than coldAfterDays move to the cold tier, data objects and session
 * catalogs older than retentionDays are deleted. Age is measured from the object's last
 * write against `now`, which tests inject.
 */
export async function sweepLocalStore(
  archive: Archive,
  store: LocalObjectStore,
  policies: RetentionPolicies,
  metrics: ArchiveMetrics,
  logger: Logger,
  now: number,
): Promise<SweepResult> {
  const result: SweepResult = { movedToCold: 0, expired: 0 };
  for (const tenant of await archive.tenants()) {
    const { coldAfterDays, retentionDays } = policies.forTenant(tenant);
    if (coldAfterDays === 0 && retentionDays === 0) continue;
    await archive.withTenantLock(tenant, async () => {
      await archive.foldPending(tenant);
      const expired = (lastModified: Date): boolean =>
        retentionDays > 0 && now - lastModified.getTime() >= retentionDays * DAY_MS;
      for (const info of await store.list(objectsPrefix(tenant))) {
        if (expired(info.lastModified)) {
          await store.delete(info.key);
          result.expired += 1;
          metrics.tiering.inc({ action: "expired" });
        } else if (
          info.tier === "hot" &&
          coldAfterDays > 0 &&
          now - info.lastModified.getTime() >= coldAfterDays * DAY_MS
        ) {
          await store.moveToCold(info.key);
          result.movedToCold += 1;
          metrics.tiering.inc({ action: "cold" });
        }
      }
      for (const info of await store.list(sessionsPrefix(tenant))) {
        if (expired(info.lastModified)) {
          await store.delete(info.key);
          result.expired += 1;
          metrics.tiering.inc({ action: "expired" });
        }
      }
    });
  }
  if (result.movedToCold + result.expired > 0) logger.info(result, "tiering sweep");
  return result;
}
