import { existsSync } from "node:fs";
import { join } from "node:path";

import { StoredEvent } from "@sessiontrack/proto";
import { scanWal } from "@sessiontrack/wal";

/** What a write-ahead log holds, read back from disk without opening it for writing. */
export interface WalContents {
  /** How many times each event id is stored. */
  counts: Map<string, number>;
  /** Frames whose checksum failed. */
  damaged: number;
  records: number;
}

/** Reads every record of the WAL under an ingest data dir. */
export async function readWalContents(dataDir: string): Promise<WalContents> {
  const walDir = existsSync(join(dataDir, "wal")) ? join(dataDir, "wal") : dataDir;
  const counts = new Map<string, number>();
  let damaged = 0;
  let records = 0;
  for await (const entry of scanWal(walDir)) {
    if (!entry.checksumOk || entry.data === null) {
      damaged += 1;
      continue;
    }
    records += 1;
    const stored = StoredEvent.decode(entry.data);
    counts.set(stored.eventId, (counts.get(stored.eventId) ?? 0) + 1);
  }
  return { counts, damaged, records };
}

/** A small seeded PRNG (mulberry32), so a failing random schedule can be replayed. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Resolves after `ms` milliseconds. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolveSleep) => setTimeout(resolveSleep, ms));
}
