/** A read-only, damage-tolerant walk over every frame in a log directory (`sessiontrack wal dump`). */
import { join } from "node:path";
import {
  decodeSegmentHeader,
  findFrameMagic,
  parseSegmentFileName,
  readFrame,
  SEGMENT_HEADER_BYTES,
} from "./format.js";
import { nodeFileSystem, type WalFileSystem } from "./fs.js";
import type { WalScanEntry } from "./types.js";

/** Segment file names in `dir`, ordered by base LSN. */
export async function listSegmentFiles(dir: string, fs: WalFileSystem): Promise<string[]> {
  const names = await fs.readdir(dir);
  return names
    .filter((name) => parseSegmentFileName(name) !== null)
    .sort((a, b) => parseSegmentFileName(a)! - parseSegmentFileName(b)!);
}

/**
 * Yields every frame it can find in the segments of `dir`, in file order, without modifying
 * anything. Damaged frames come with `checksumOk: false` and an `error`; after one, the scan
 * resumes at the next frame magic. A damaged segment header is reported as an entry at offset 0.
 */
export async function* scanWal(
  dir: string,
  fs: WalFileSystem = nodeFileSystem,
): AsyncGenerator<WalScanEntry> {
  for (const segment of await listSegmentFiles(dir, fs)) {
    const file = await fs.readFile(join(dir, segment));
    const header = decodeSegmentHeader(file);
    if ("error" in header) {
      yield { segment, offset: 0, lsn: null, key: null, data: null, checksumOk: false, error: header.error };
    }
    // Past a damaged header, resume at the first thing that looks like a frame.
    let offset = "error" in header ? nextMagicOr(file, 0) : SEGMENT_HEADER_BYTES;
    while (offset < file.length) {
      const frame = readFrame(file, offset);
      if (frame.ok) {
        yield { segment, offset, lsn: frame.lsn, key: frame.key, data: frame.data, checksumOk: true };
        offset = frame.end;
        continue;
      }
      yield {
        segment,
        offset,
        lsn: frame.lsn,
        key: frame.key,
        data: frame.data,
        checksumOk: false,
        error: frame.reason,
      };
      offset = nextMagicOr(file, offset + 1);
    }
  }
}

function nextMagicOr(file: Buffer, from: number): number {
  const at = findFrameMagic(file, from);
  return at === -1 ? file.length : at;
}
