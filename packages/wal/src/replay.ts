/**
 * Replay on open: verify every frame of every segment, rebuild the in-memory state, and
 * repair only a torn tail of the last segment. Anything else that fails to verify is
 * corruption and is reported without touching a byte.
 */
import { join } from "node:path";
import { DataCorruptionError } from "@sessiontrack/errors";
import {
  decodeSegmentHeader,
  encodeSegmentHeader,
  findNextValidFrame,
  parseSegmentFileName,
  readFrame,
  SEGMENT_HEADER_BYTES,
} from "./format.js";
import { writeFully, type WalFileSystem } from "./fs.js";
import { listSegmentFiles } from "./scan.js";
import type { WalLogger, WalReplayReport, WalTruncation } from "./types.js";

/** In-memory picture of one retained segment. */
export interface SegmentState {
  name: string;
  path: string;
  baseLsn: number;
  /** Bytes of the file that hold the header and durable frames. */
  size: number;
  /** File offset of the frame of record `baseLsn + i`. */
  offsets: number[];
  /** Key of record `baseLsn + i`. */
  keys: string[];
}

/** Everything open() needs to resume writing. */
export interface ReplayResult {
  segments: SegmentState[];
  keys: Map<string, number>;
  lastLsn: number;
  report: WalReplayReport;
}

/** Repair of the last segment, decided during verification and applied only if nothing is corrupt. */
type TornTail =
  | { kind: "truncate"; segment: SegmentState; truncation: WalTruncation }
  | { kind: "rewriteHeader"; segment: SegmentState; truncation: WalTruncation };

function corruption(path: string, offset: number, reason: string): DataCorruptionError {
  return new DataCorruptionError(
    `write-ahead log segment ${path} is corrupt at byte offset ${offset}: ${reason}; ` +
      "the log was not modified (inspect it with `sessiontrack wal dump`)",
  );
}

/** Verifies and loads the segments in `dir`, truncating only a torn tail of the last one. */
export async function replaySegments(
  dir: string,
  fs: WalFileSystem,
  logger: WalLogger,
): Promise<ReplayResult> {
  const names = await listSegmentFiles(dir, fs);
  const segments: SegmentState[] = [];
  const keys = new Map<string, number>();
  let nextLsn: number | null = null;
  let records = 0;
  let torn: TornTail | null = null;

  for (const [index, name] of names.entries()) {
    const isLast = index === names.length - 1;
    const path = join(dir, name);
    const nameLsn = parseSegmentFileName(name)!;
    const file = await fs.readFile(path);
    const header = decodeSegmentHeader(file);
    if (nextLsn !== null && nameLsn !== nextLsn) {
      throw corruption(
        path,
        0,
        `segment starts at lsn ${nameLsn} but lsn ${nextLsn} was expected (gap or overlap)`,
      );
    }
    if ("error" in header) {
      if (!isLast) throw corruption(path, 0, `${header.error} in a sealed segment`);
      const validAt = findNextValidFrame(file, 0);
      if (validAt !== -1)
        throw corruption(path, 0, `${header.error}, yet a valid frame follows at offset ${validAt}`);
      const segment = newSegmentState(dir, name, nameLsn);
      segments.push(segment);
      torn = {
        kind: "rewriteHeader",
        segment,
        truncation: {
          segment: name,
          offset: 0,
          bytes: file.length,
          reason: `torn segment header: ${header.error}`,
        },
      };
      break;
    }
    if (header.baseLsn !== nameLsn) {
      throw corruption(path, 0, `header says base lsn ${header.baseLsn} but the file name says ${nameLsn}`);
    }
    const segment = newSegmentState(dir, name, nameLsn);
    let expectedLsn: number = nameLsn;
    let offset = SEGMENT_HEADER_BYTES;
    while (offset < file.length) {
      const frame = readFrame(file, offset);
      if (!frame.ok) {
        if (!isLast) throw corruption(path, offset, `${frame.reason} in a sealed segment`);
        const validAt = findNextValidFrame(file, offset + 1);
        if (validAt !== -1) {
          throw corruption(path, offset, `${frame.reason}, yet a valid frame follows at offset ${validAt}`);
        }
        torn = {
          kind: "truncate",
          segment,
          truncation: { segment: name, offset, bytes: file.length - offset, reason: frame.reason },
        };
        break;
      }
      if (frame.lsn !== expectedLsn) {
        throw corruption(path, offset, `frame has lsn ${frame.lsn} where lsn ${expectedLsn} was expected`);
      }
      segment.offsets.push(offset);
      segment.keys.push(frame.key);
      keys.set(frame.key, frame.lsn);
      expectedLsn++;
      records++;
      offset = frame.end;
    }
    segment.size = offset;
    segments.push(segment);
    nextLsn = expectedLsn;
  }

  const truncated: WalTruncation[] = [];
  if (torn !== null) {
    await repairTornTail(dir, fs, torn);
    truncated.push(torn.truncation);
    logger.warn(
      { dir, ...torn.truncation },
      `wal: cut a torn tail of ${torn.truncation.bytes} bytes from ${torn.truncation.segment} at offset ${torn.truncation.offset}`,
    );
  }
  const lastSegment = segments.at(-1);
  const lastLsn = lastSegment === undefined ? 0 : lastSegment.baseLsn + lastSegment.offsets.length - 1;
  return {
    segments,
    keys,
    lastLsn,
    report: { segments: segments.length, records, lastLsn, truncated },
  };
}

function newSegmentState(dir: string, name: string, baseLsn: number): SegmentState {
  return { name, path: join(dir, name), baseLsn, size: SEGMENT_HEADER_BYTES, offsets: [], keys: [] };
}

async function repairTornTail(dir: string, fs: WalFileSystem, torn: TornTail): Promise<void> {
  const handle = await fs.open(torn.segment.path, "r+");
  try {
    if (torn.kind === "truncate") {
      await handle.truncate(torn.truncation.offset);
    } else {
      // The file name is the authority for the base LSN; the header never finished reaching disk.
      await handle.truncate(0);
      await writeFully(handle, encodeSegmentHeader(torn.segment.baseLsn), 0);
    }
    await handle.sync();
  } finally {
    await handle.close();
  }
  if (torn.kind === "rewriteHeader") await fs.fsyncDir(dir);
}
