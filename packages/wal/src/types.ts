/** Public types of the write-ahead log. */
import type { WalFileSystem } from "./fs.js";

/** One record to append. */
export interface WalRecordInput {
  /** Idempotency key (ingest uses `${tenant}/${eventId}`): well-formed UTF-8, at most 1024 bytes. */
  key: string;
  data: Uint8Array;
}

/** The outcome of appending one record. */
export interface WalAppendResult {
  lsn: number;
  /** True when the key was already stored (or being stored); nothing new was written for it. */
  duplicate: boolean;
}

/** A durable record read back from the log. */
export interface WalRecord {
  lsn: number;
  key: string;
  data: Uint8Array;
}

/** The pino-compatible subset of a logger the log writes to. */
export interface WalLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

/** How to open a write-ahead log. */
export interface WalOptions {
  /** Directory holding segments and cursor files; created when missing. */
  dir: string;
  /** Upper bound of a segment file's size; default 64 MiB. Segments roll before exceeding it. */
  segmentBytes?: number;
  /** Upper bound of all retained segments; appends beyond it fail with StorageFullError. Default Infinity. */
  maxRetainedBytes?: number;
  /** Delivery sinks that each keep a cursor; segments are deleted once all confirmed them. Default none. */
  sinks?: readonly string[];
  logger?: WalLogger;
  /** File-system layer, injectable for fault tests; default real `node:fs`. */
  fs?: WalFileSystem;
}

/** A torn tail cut off during replay. */
export interface WalTruncation {
  segment: string;
  offset: number;
  bytes: number;
  reason: string;
}

/** What {@link WriteAheadLog.open} found on disk. */
export interface WalReplayReport {
  segments: number;
  records: number;
  lastLsn: number;
  truncated: WalTruncation[];
}

/** Counters for metrics and tests. */
export interface WalStats {
  /** Retained segment files. */
  segments: number;
  /** Sum of the retained segment files' sizes. */
  retainedBytes: number;
  /** Last durable LSN. */
  lastLsn: number;
  /** Idempotency keys held in memory (one per retained record). */
  keys: number;
  /** append() calls that wrote at least one record. */
  appends: number;
  /** Records written and made durable since open. */
  records: number;
  /** fdatasync calls since open. */
  syncs: number;
  /** Why the log stopped accepting appends, or null while healthy. */
  failed: string | null;
}

/** One frame found by {@link scanWal}; fields are null where the bytes could not be decoded. */
export interface WalScanEntry {
  segment: string;
  offset: number;
  lsn: number | null;
  key: string | null;
  data: Uint8Array | null;
  checksumOk: boolean;
  error?: string;
}
