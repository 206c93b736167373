/** Deletion of segments every sink has confirmed, the only way records ever leave the log. */
import { StorageUnavailableError } from "@sessiontrack/errors";
import { errorCode, type WalFileSystem } from "./fs.js";
import type { SegmentState } from "./replay.js";
import type { WalLogger } from "./types.js";

/**
 * Deletes, oldest first, the sealed segments whose records are all at or below the lowest
 * cursor, then fsyncs the directory. The active (last) segment is never deleted, so the log
 * always remembers its last lsn. Removes the segments from `segments` and their keys from
 * `keys` as it goes.
 */
export async function deleteConfirmedSegments(
  dir: string,
  fs: WalFileSystem,
  logger: WalLogger,
  segments: SegmentState[],
  keys: Map<string, number>,
  cursors: readonly number[],
): Promise<void> {
  if (cursors.length === 0) return;
  const confirmedLsn = Math.min(...cursors);
  const deleted: string[] = [];
  try {
    while (segments.length > 1) {
      const oldest = segments[0]!;
      if (oldest.baseLsn + oldest.offsets.length - 1 > confirmedLsn) break;
      try {
        await fs.unlink(oldest.path);
      } catch (error) {
        if (errorCode(error) !== "ENOENT") throw error;
      }
      segments.shift();
      for (const [index, key] of oldest.keys.entries()) {
        if (keys.get(key) === oldest.baseLsn + index) keys.delete(key);
      }
      deleted.push(oldest.name);
    }
  } catch (error) {
    throw new StorageUnavailableError(`write-ahead log ${dir}: deleting a confirmed segment failed`, {
      cause: error,
    });
  } finally {
    if (deleted.length > 0) {
      await fs.fsyncDir(dir);
      logger.info({ dir, deleted, confirmedLsn }, "wal: deleted confirmed segments");
    }
  }
}
