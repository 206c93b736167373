/** Reads durable records back from retained segments, verifying each frame's checksum again. */
import { DataCorruptionError } from "@sessiontrack/errors";
import { readFrame } from "./format.js";
import { errorCode, readFully, type WalFileSystem } from "./fs.js";
import type { SegmentState } from "./replay.js";
import type { WalRecord } from "./types.js";

/** Bounds of one readFrom() call. */
export interface ReadLimits {
  /** At most this many records; default unbounded. */
  maxRecords?: number;
  /** At most this many bytes of record frames, except that one record is always returned; default unbounded. */
  maxBytes?: number;
}

/**
 * Records with `fromLsn <= lsn <= lastLsn` from `segments` (a snapshot, oldest first), in
 * order and within `limits`. Records of segments deleted meanwhile are skipped: a sink
 * confirmed them already.
 */
export async function readRecords(
  fs: WalFileSystem,
  segments: readonly SegmentState[],
  fromLsn: number,
  lastLsn: number,
  limits: ReadLimits,
): Promise<WalRecord[]> {
  const maxRecords = limits.maxRecords ?? Infinity;
  const maxBytes = limits.maxBytes ?? Infinity;
  const records: WalRecord[] = [];
  let bytes = 0;
  for (const segment of segments) {
    // Snapshot before any await: the active segment keeps growing while we read.
    const count = Math.min(segment.offsets.length, lastLsn - segment.baseLsn + 1);
    const first = Math.max(0, fromLsn - segment.baseLsn);
    if (first >= count) continue;
    const frameEnd = (index: number): number =>
      index + 1 < segment.offsets.length ? segment.offsets[index + 1]! : segment.size;
    let end = first;
    let limited = false;
    while (end < count) {
      if (records.length + (end - first) >= maxRecords) {
        limited = true;
        break;
      }
      const frameBytes = frameEnd(end) - segment.offsets[end]!;
      if (bytes + frameBytes > maxBytes && records.length + (end - first) > 0) {
        limited = true;
        break;
      }
      bytes += frameBytes;
      end++;
    }
    if (end > first) {
      const start = segment.offsets[first]!;
      const buffer = await readRange(fs, segment.path, start, frameEnd(end - 1) - start);
      if (buffer !== null)
        appendFrames(records, buffer, segment, start, segment.baseLsn + first, end - first);
    }
    if (limited) break;
  }
  return records;
}

async function readRange(
  fs: WalFileSystem,
  path: string,
  position: number,
  length: number,
): Promise<Buffer | null> {
  let handle;
  try {
    handle = await fs.open(path, "r");
  } catch (error) {
    if (errorCode(error) === "ENOENT") return null;
    throw error;
  }
  try {
    return await readFully(handle, length, position);
  } finally {
    await handle.close();
  }
}

function appendFrames(
  records: WalRecord[],
  buffer: Buffer,
  segment: SegmentState,
  fileOffset: number,
  firstLsn: number,
  count: number,
): void {
  let offset = 0;
  for (let lsn = firstLsn; lsn < firstLsn + count; lsn++) {
    const frame = readFrame(buffer, offset);
    if (!frame.ok || frame.lsn !== lsn) {
      const reason = frame.ok ? `found lsn ${frame.lsn} where ${lsn} was expected` : frame.reason;
      throw new DataCorruptionError(
        `write-ahead log segment ${segment.path} is corrupt at byte offset ${fileOffset + offset}: ${reason}`,
      );
    }
    records.push({ lsn, key: frame.key, data: frame.data });
    offset = frame.end;
  }
}
