/**
 * Planning of one group commit: which queued append() calls fit, which lsn each record gets,
 * and how the records split over the active segment and the segments rolled to.
 */
import { InvalidEventError } from "@sessiontrack/errors";
import { encodeFrame, frameBytes, MAX_KEY_BYTES, SEGMENT_HEADER_BYTES } from "./format.js";
import type { WalRecordInput } from "./types.js";

const LONE_SURROGATE = /\p{Cs}/u;

/** A record waiting for its group commit. */
export interface PendingRecord {
  key: string;
  keyBytes: number;
  data: Uint8Array;
  frameBytes: number;
  /** Assigned when its group is planned. */
  lsn: number;
  owner: PendingAppend;
}

/** The new records of one append() call; settles once, when all are durable or the group failed. */
export interface PendingAppend {
  records: PendingRecord[];
  bytes: number;
  done: Promise<void>;
  resolve: () => void;
  reject: (error: Error) => void;
}

/** Consecutive records of a group that go to one segment, after rolling to it when `rollTo` is set. */
export interface SegmentChunk {
  rollTo: number | null;
  records: PendingRecord[];
  bytes: number;
}

/** What the writer knows when it plans a group. */
export interface GroupPlanContext {
  /** Durable size of the active segment. */
  segmentSize: number;
  segmentBytes: number;
  retainedBytes: number;
  maxRetainedBytes: number;
  lastLsn: number;
}

/** The outcome of planning: calls to write (lsns assigned) and calls that would overflow maxRetainedBytes. */
export interface GroupPlan {
  admitted: PendingAppend[];
  rejected: Array<{ call: PendingAppend; addedBytes: number }>;
  chunks: SegmentChunk[];
}

/** True when a record of `recordBytes` must go to a new segment; an empty segment always takes it. */
function mustRoll(segmentSize: number, recordBytes: number, segmentBytes: number): boolean {
  return segmentSize > SEGMENT_HEADER_BYTES && segmentSize + recordBytes > segmentBytes;
}

/**
 * Assigns lsns and splits the group into per-segment chunks. A call is admitted whole or
 * not at all: those that would push the retained bytes past maxRetainedBytes are returned
 * in `rejected`, before anything is written.
 */
export function planGroup(group: readonly PendingAppend[], context: GroupPlanContext): GroupPlan {
  const { segmentBytes, maxRetainedBytes } = context;
  const plan: GroupPlan = { admitted: [], rejected: [], chunks: [] };
  let segmentSize = context.segmentSize;
  let retained = context.retainedBytes;
  let lsn = context.lastLsn;
  let chunk: SegmentChunk | null = null;
  for (const call of group) {
    let size = segmentSize;
    let added = 0;
    for (const record of call.records) {
      if (mustRoll(size, record.frameBytes, segmentBytes)) {
        size = SEGMENT_HEADER_BYTES;
        added += SEGMENT_HEADER_BYTES;
      }
      size += record.frameBytes;
      added += record.frameBytes;
    }
    if (retained + added > maxRetainedBytes) {
      plan.rejected.push({ call, addedBytes: added });
      continue;
    }
    retained += added;
    for (const record of call.records) {
      if (mustRoll(segmentSize, record.frameBytes, segmentBytes)) {
        chunk = { rollTo: lsn + 1, records: [], bytes: 0 };
        plan.chunks.push(chunk);
        segmentSize = SEGMENT_HEADER_BYTES;
      } else if (chunk === null) {
        chunk = { rollTo: null, records: [], bytes: 0 };
        plan.chunks.push(chunk);
      }
      record.lsn = ++lsn;
      chunk.records.push(record);
      chunk.bytes += record.frameBytes;
      segmentSize += record.frameBytes;
    }
    plan.admitted.push(call);
  }
  return plan;
}

/** The chunk's frames, concatenated for a single write. */
export function encodeChunk(chunk: SegmentChunk): Buffer {
  const buffer = Buffer.allocUnsafe(chunk.bytes);
  let offset = 0;
  for (const record of chunk.records) {
    offset = encodeFrame(buffer, offset, record.lsn, record.key, record.keyBytes, record.data);
  }
  return buffer;
}

/** A call with no records yet whose `done` settles when the writer resolves or rejects it. */
export function newPendingAppend(): PendingAppend {
  let resolve!: () => void;
  let reject!: (error: Error) => void;
  const done = new Promise<void>((onResolve, onReject) => {
    resolve = onResolve;
    reject = onReject;
  });
  // Callers may stop awaiting after an earlier failure; a later rejection must not be "unhandled".
  done.catch(() => undefined);
  return { records: [], bytes: 0, done, resolve, reject };
}

/**
 * Checks one input record; returns its key's UTF-8 byte length. A record that can never be
 * stored throws InvalidEventError naming its index and field.
 */
export function validateRecordInput(record: WalRecordInput, index: number, segmentBytes: number): number {
  const { key, data } = record;
  if (typeof key !== "string" || key.length === 0) {
    throw new InvalidEventError("wal record key must be a non-empty string", {
      eventIndex: index,
      field: "key",
    });
  }
  if (LONE_SURROGATE.test(key)) {
    throw new InvalidEventError("wal record key is not well-formed UTF-16 (lone surrogate)", {
      eventIndex: index,
      field: "key",
    });
  }
  const keyBytes = Buffer.byteLength(key, "utf8");
  if (keyBytes > MAX_KEY_BYTES) {
    throw new InvalidEventError(
      `wal record key is ${keyBytes} bytes, more than the limit of ${MAX_KEY_BYTES}`,
      {
        eventIndex: index,
        field: "key",
      },
    );
  }
  if (!(data instanceof Uint8Array)) {
    throw new InvalidEventError("wal record data must be a Uint8Array", { eventIndex: index, field: "data" });
  }
  const size = frameBytes(keyBytes, data.length);
  const limit = segmentBytes - SEGMENT_HEADER_BYTES;
  if (size > limit) {
    throw new InvalidEventError(
      `wal record of ${size} bytes (data ${data.length}, key ${keyBytes}, framing ${size - data.length - keyBytes}) ` +
        `exceeds the limit of ${limit} bytes that fit in one segment (segmentBytes ${segmentBytes})`,
      { eventIndex: index, field: "data" },
    );
  }
  return keyBytes;
}
