// Capture accuracy: every event the bot's SDK saw acknowledged must be in ingest's
// write-ahead log (and, once they run, in the archive and the index).
import { StoredEvent } from "@sessiontrack/proto";
import { scanWal } from "@sessiontrack/wal";
import { existsSync } from "node:fs";
import { join } from "node:path";

/** Event ids stored in the WAL under an ingest data dir, and frames that failed their checksum. */
export async function walEventIds(dataDir: string): Promise<{ ids: Set<string>; damaged: number }> {
  const walDir = join(dataDir, "wal");
  const ids = new Set<string>();
  let damaged = 0;
  if (!existsSync(walDir)) return { ids, damaged };
  for await (const entry of scanWal(walDir)) {
    if (!entry.checksumOk || entry.data === null) {
      damaged += 1;
      continue;
    }
    ids.add(StoredEvent.decode(entry.data).eventId);
  }
  return { ids, damaged };
}

/** How many of the bot's events each store holds. */
export interface CaptureAccuracy {
  /** Capture calls the bot made. */
  attempted: number;
  /** Distinct ids ingest acknowledged to the SDK. */
  acked: number;
  /** Of those, how many the WAL holds (segments every sink confirmed may be gone). */
  ackedInWal: number;
  /** Of those, how many the WAL or a sink holds: the events SessionTrack kept. */
  ackedStored: number;
  /** SDK drop/reject counters (each reported, never silent). */
  dropped: number;
  rejected: number;
  /** Still unacknowledged after the final flush (in memory or in the spool). */
  pending: number;
  walDamagedFrames: number;
  /** ackedStored / acked (must be 1). */
  ofAcked: number;
  /** ackedStored / attempted (must be >= 0.999). */
  ofAttempted: number;
  /** Stores beyond the WAL that were checked, by name, with the acked ids they hold. */
  sinks: Record<string, { held: number; ofAcked: number } | { notMeasured: string }>;
}

/** Compares the acknowledged ids with what the WAL holds. */
export function accuracyOf(options: {
  attempted: number;
  ackedIds: readonly string[];
  wal: { ids: Set<string>; damaged: number };
  dropped: number;
  rejected: number;
  pending: number;
  /** Acked ids each sink holds, by sink name; undefined = that sink was not measured (reason). */
  sinks: Record<string, ReadonlySet<string> | string>;
}): CaptureAccuracy {
  let inWal = 0;
  let stored = 0;
  const sinkSets = Object.values(options.sinks).filter(
    (v): v is ReadonlySet<string> => typeof v !== "string",
  );
  for (const id of options.ackedIds) {
    const wal = options.wal.ids.has(id);
    if (wal) inWal += 1;
    if (wal || sinkSets.some((set) => set.has(id))) stored += 1;
  }
  const acked = options.ackedIds.length;
  const sinks: CaptureAccuracy["sinks"] = {};
  for (const [name, held] of Object.entries(options.sinks)) {
    sinks[name] =
      typeof held === "string"
        ? { notMeasured: held }
        : { held: held.size, ofAcked: acked === 0 ? 0 : held.size / acked };
  }
  return {
    attempted: options.attempted,
    acked,
    ackedInWal: inWal,
    ackedStored: stored,
    dropped: options.dropped,
    rejected: options.rejected,
    pending: options.pending,
    walDamagedFrames: options.wal.damaged,
    ofAcked: acked === 0 ? 0 : stored / acked,
    ofAttempted: options.attempted === 0 ? 0 : stored / options.attempted,
    sinks,
  };
}
