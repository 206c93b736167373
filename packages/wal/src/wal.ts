/**
 * The write-ahead log ingest acknowledges on: appends are grouped, written with one write and
 * made durable with one fdatasync per group; nothing resolves before its bytes are synced.
 */
import {
  ConfigError,
  InvalidEventError,
  StorageFullError,
  StorageUnavailableError,
} from "@sessiontrack/errors";
import { loadCursors, persistCursor } from "./cursors.js";
import { WalDirectoryLock } from "./lock.js";
import { frameBytes } from "./format.js";
import {
  encodeChunk,
  newPendingAppend,
  planGroup,
  type PendingAppend,
  type PendingRecord,
  type SegmentChunk,
  validateRecordInput,
} from "./group-commit.js";
import { errorCode, type WalFileSystem } from "./fs.js";
import { createDirectoryDurably, resolveWalOptions, type ResolvedWalOptions } from "./options.js";
import { readRecords, type ReadLimits } from "./reader.js";
import { replaySegments, type SegmentState } from "./replay.js";
import { deleteConfirmedSegments } from "./retention.js";
import { WalSegmentWriter } from "./segment-writer.js";
import type {
  WalAppendResult,
  WalLogger,
  WalOptions,
  WalRecord,
  WalRecordInput,
  WalReplayReport,
  WalStats,
} from "./types.js";

/** A group commit stops taking queued appends past this many bytes, bounding memory and latency. */
const MAX_GROUP_BYTES = 16 * 1024 * 1024;

/** A durable, CRC32C-framed, segmented write-ahead log with group commit and per-sink cursors. */
export class WriteAheadLog {
  private readonly keys: Map<string, number>;
  private readonly inFlight = new Map<string, PendingRecord>();
  private readonly listeners = new Set<(lastLsn: number) => void>();
  private queue: PendingAppend[] = [];
  private writerRunning = false;
  private writerDone: Promise<void> = Promise.resolve();
  private confirmChain: Promise<void> = Promise.resolve();
  private failure: string | null = null;
  private failureCause: unknown = undefined;
  private closing: Promise<void> | null = null;
  private lastLsn: number;
  private appends = 0;
  private records = 0;

  private readonly dir: string;
  private readonly fs: WalFileSystem;
  private readonly logger: WalLogger;
  private readonly segmentBytes: number;
  private readonly maxRetainedBytes: number;
  private readonly sinks: readonly string[];
  private lock: WalDirectoryLock | undefined;

  private constructor(
    config: ResolvedWalOptions,
    private readonly segments: SegmentState[],
    private readonly writer: WalSegmentWriter,
    private readonly cursors: Map<string, number>,
    keys: Map<string, number>,
    /** What open() found and repaired on disk. */
    readonly replay: WalReplayReport,
  ) {
    ({
      dir: this.dir,
      fs: this.fs,
      logger: this.logger,
      segmentBytes: this.segmentBytes,
      maxRetainedBytes: this.maxRetainedBytes,
      sinks: this.sinks,
    } = config);
    this.keys = keys;
    this.lastLsn = replay.lastLsn;
  }

  /** Opens (creating when missing) the log in `options.dir`, replaying and verifying every segment. */
  static async open(options: WalOptions): Promise<WriteAheadLog> {
    const config = resolveWalOptions(options);
    const { dir, fs } = config;
    await createDirectoryDurably(dir, fs);
    const lock = WalDirectoryLock.acquire(dir);
    try {
      const log = await WriteAheadLog.openLocked(config);
      log.lock = lock;
      return log;
    } catch (error) {
      lock.release();
      throw error;
    }
  }

  private static async openLocked(config: ResolvedWalOptions): Promise<WriteAheadLog> {
    const { dir, fs, logger, sinks } = config;
    const replayed = await replaySegments(dir, fs, logger);
    // Before the log object exists a failure just fails open(); afterwards it fails the log.
    const opened: { log?: WriteAheadLog } = {};
    const fail = (what: string, cause: unknown): StorageUnavailableError =>
      opened.log === undefined
        ? new StorageUnavailableError(`write-ahead log ${dir}: ${what}`, { cause })
        : opened.log.fail(what, cause);
    let writer: WalSegmentWriter;
    const last = replayed.segments.at(-1);
    if (last === undefined) {
      const created = await WalSegmentWriter.createFirst(dir, fs, logger, fail, replayed.lastLsn + 1);
      replayed.segments.push(created.segment);
      writer = created.writer;
    } else {
      writer = await WalSegmentWriter.resume(dir, fs, logger, fail, last);
    }
    let cursors: Map<string, number>;
    try {
      cursors = await loadCursors(dir, fs, sinks, replayed.lastLsn, logger);
    } catch (error) {
      await writer.close();
      throw error;
    }
    const report = replayed.report;
    const log = new WriteAheadLog(config, replayed.segments, writer, cursors, replayed.keys, report);
    opened.log = log;
    logger.info({ dir, ...report, truncated: report.truncated.length }, "wal: opened");
    return log;
  }

  /**
   * Appends records and resolves, in input order, once they are fdatasync'd. A key already
   * stored, or being stored by a concurrent call, is not written again: its result carries
   * the existing lsn and `duplicate: true`. Rejects with InvalidEventError (nothing queued),
   * StorageFullError (nothing acknowledged; retry later) or StorageUnavailableError.
   */
  async append(records: readonly WalRecordInput[]): Promise<WalAppendResult[]> {
    this.assertWritable();
    const keyBytes = records.map((record, index) => validateRecordInput(record, index, this.segmentBytes));
    const results: WalAppendResult[] = new Array<WalAppendResult>(records.length);
    const waits: Array<{ index: number; record: PendingRecord; duplicate: boolean }> = [];
    const call: PendingAppend = newPendingAppend();
    for (const [index, { key, data }] of records.entries()) {
      const durableLsn = this.keys.get(key);
      if (durableLsn !== undefined) {
        results[index] = { lsn: durableLsn, duplicate: true };
        continue;
      }
      const inFlight = this.inFlight.get(key);
      if (inFlight !== undefined) {
        waits.push({ index, record: inFlight, duplicate: true });
        continue;
      }
      const bytes = frameBytes(keyBytes[index]!, data.length);
      const record: PendingRecord = {
        key,
        keyBytes: keyBytes[index]!,
        data,
        frameBytes: bytes,
        lsn: 0,
        owner: call,
      };
      call.records.push(record);
      call.bytes += bytes;
      this.inFlight.set(key, record);
      waits.push({ index, record, duplicate: false });
    }
    if (call.records.length > 0) {
      this.queue.push(call);
      this.startWriter();
    }
    // Most records share one owner (this call), so await each owner once rather than per record.
    let awaited: PendingAppend | null = null;
    for (const { record } of waits) {
      if (record.owner === awaited) continue;
      awaited = record.owner;
      await awaited.done;
    }
    for (const { index, record, duplicate } of waits) results[index] = { lsn: record.lsn, duplicate };
    return results;
  }

  /**
   * Durable records with `lsn >= fromLsn`, in order, within `limits` (unbounded by default;
   * at least one record is returned when any is available). Records in deleted segments are gone.
   */
  async readFrom(fromLsn: number, limits: ReadLimits = {}): Promise<WalRecord[]> {
    if (!Number.isSafeInteger(fromLsn)) {
      throw new InvalidEventError(`wal readFrom: fromLsn must be an integer, got ${fromLsn}`, {
        field: "fromLsn",
      });
    }
    for (const [name, value] of Object.entries(limits)) {
      if (value !== undefined && !(typeof value === "number" && value > 0)) {
        throw new InvalidEventError(`wal readFrom: ${name} must be positive, got ${String(value)}`, {
          field: name,
        });
      }
    }
    if (this.closing !== null) throw new StorageUnavailableError(`write-ahead log ${this.dir} is closed`);
    return readRecords(this.fs, this.segments.slice(), fromLsn, this.lastLsn, limits);
  }

  /** The highest lsn whose record is fdatasync'd (0 when the log is empty). */
  lastDurableLsn(): number {
    return this.lastLsn;
  }

  /** Calls `listener` with the last durable lsn after each group commit; returns the unsubscribe function. */
  onDurable(listener: (lastLsn: number) => void): () => void {
    this.listeners.add(listener);
    return () => {
      this.listeners.delete(listener);
    };
  }

  /** The last lsn `sink` confirmed (0 = nothing). */
  getCursor(sink: string): number {
    const cursor = this.cursors.get(sink);
    if (cursor === undefined) throw this.unknownSink(sink);
    return cursor;
  }

  /**
   * Durably records that `sink` delivered every record up to `lsn`, then deletes sealed
   * segments whose records every sink has confirmed. A cursor never moves backwards.
   */
  async confirm(sink: string, lsn: number): Promise<void> {
    if (!this.cursors.has(sink)) throw this.unknownSink(sink);
    if (!Number.isSafeInteger(lsn) || lsn < 0 || lsn > this.lastLsn) {
      throw new InvalidEventError(
        `wal confirm(${sink}): lsn ${lsn} must be an integer from 0 to the last durable lsn ${this.lastLsn}`,
        { field: "lsn" },
      );
    }
    if (this.closing !== null) throw new StorageUnavailableError(`write-ahead log ${this.dir} is closed`);
    const run = this.confirmChain.then(async () => {
      if (lsn > this.cursors.get(sink)!) {
        await persistCursor(this.dir, this.fs, sink, lsn);
        this.cursors.set(sink, lsn);
      }
      await deleteConfirmedSegments(this.dir, this.fs, this.logger, this.segments, this.keys, [
        ...this.cursors.values(),
      ]);
    });
    this.confirmChain = run.catch(() => undefined);
    return run;
  }

  /** Counters for metrics and tests. */
  stats(): WalStats {
    return {
      segments: this.segments.length,
      retainedBytes: this.retainedBytes(),
      lastLsn: this.lastLsn,
      keys: this.keys.size,
      appends: this.appends,
      records: this.records,
      syncs: this.writer.syncs,
      failed: this.failure,
    };
  }

  /** Finishes queued appends, then closes the files. Later appends reject with StorageUnavailableError. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      while (this.writerRunning) await this.writerDone;
      await this.confirmChain;
      try {
        await this.writer.close();
      } finally {
        this.lock?.release();
      }
      this.logger.info({ dir: this.dir, lastLsn: this.lastLsn }, "wal: closed");
    })();
    return this.closing;
  }

  /** Sum of the retained segments' sizes; segments are few, so summing beats keeping a counter in step. */
  private retainedBytes(): number {
    return this.segments.reduce((sum, segment) => sum + segment.size, 0);
  }

  private assertWritable(): void {
    if (this.closing !== null) throw new StorageUnavailableError(`write-ahead log ${this.dir} is closed`);
    if (this.failure !== null) throw this.failedError();
  }

  private failedError(): StorageUnavailableError {
    return new StorageUnavailableError(
      `write-ahead log ${this.dir} has failed and accepts no appends until it is reopened: ${this.failure}`,
      { cause: this.failureCause },
    );
  }

  /** Enters the failed state (first failure wins) and returns the error to reject with. */
  private fail(what: string, cause: unknown): StorageUnavailableError {
    if (this.failure === null) {
      const code = errorCode(cause);
      this.failure = code === undefined ? what : `${what} (${code})`;
      this.failureCause = cause;
      this.logger.error({ err: cause, dir: this.dir }, `wal: ${this.failure}; failing closed`);
    }
    return this.failedError();
  }

  private unknownSink(sink: string): ConfigError {
    return new ConfigError(
      `wal: unknown sink "${sink}"; configured sinks: ${this.sinks.join(", ") || "(none)"}`,
    );
  }

  private startWriter(): void {
    if (this.writerRunning) return;
    this.writerRunning = true;
    this.writerDone = this.drainQueue();
  }

  /** The single writer loop: one group commit at a time, each taking everything queued. */
  private async drainQueue(): Promise<void> {
    try {
      // Let appends issued in the same tick join the first group.
      await Promise.resolve();
      while (this.queue.length > 0) {
        const group = this.takeGroup();
        try {
          await this.commitGroup(group);
        } catch (error) {
          // A bug, not an I/O error (those are handled inside): fail closed rather than hang callers.
          const failed = this.fail("the writer loop failed unexpectedly", error);
          for (const call of group) this.rejectCall(call, failed);
        }
      }
    } finally {
      this.writerRunning = false;
    }
  }

  private takeGroup(): PendingAppend[] {
    let bytes = 0;
    let count = 0;
    while (count < this.queue.length && (count === 0 || bytes < MAX_GROUP_BYTES))
      bytes += this.queue[count++]!.bytes;
    const group = this.queue.slice(0, count);
    this.queue = this.queue.slice(count);
    return group;
  }

  private async commitGroup(group: PendingAppend[]): Promise<void> {
    if (this.failure !== null) {
      for (const call of group) this.rejectCall(call, this.failedError());
      return;
    }
    const { admitted, rejected, chunks } = planGroup(group, {
      segmentSize: this.writer.active.size,
      segmentBytes: this.segmentBytes,
      retainedBytes: this.retainedBytes(),
      maxRetainedBytes: this.maxRetainedBytes,
      lastLsn: this.lastLsn,
    });
    for (const { call, addedBytes } of rejected) {
      this.rejectCall(
        call,
        new StorageFullError(
          `write-ahead log ${this.dir} is full: ${this.retainedBytes()} bytes are retained in ${this.segments.length} ` +
            `segments and ${addedBytes} more would exceed maxRetainedBytes ${this.maxRetainedBytes}; ` +
            "space is freed as sinks confirm delivery",
        ),
      );
    }
    let settled = 0;
    for (const chunk of chunks) {
      try {
        if (chunk.rollTo !== null) this.segments.push(await this.writer.roll(chunk.rollTo));
        await this.writer.writeDurably(encodeChunk(chunk));
      } catch (error) {
        const reason = error instanceof Error ? error : new StorageUnavailableError(String(error));
        for (const call of admitted.slice(settled)) this.rejectCall(call, reason);
        return;
      }
      this.commitChunk(chunk);
      while (settled < admitted.length && admitted[settled]!.records.at(-1)!.lsn <= this.lastLsn) {
        this.appends++;
        admitted[settled++]!.resolve();
      }
      this.notifyDurable();
    }
  }

  /** Makes a synced chunk visible: offsets, keys, sizes and the durable lsn advance together. */
  private commitChunk(chunk: SegmentChunk): void {
    const segment = this.writer.active;
    let offset = segment.size;
    for (const record of chunk.records) {
      segment.offsets.push(offset);
      segment.keys.push(record.key);
      offset += record.frameBytes;
      this.keys.set(record.key, record.lsn);
      if (this.inFlight.get(record.key) === record) this.inFlight.delete(record.key);
    }
    segment.size = offset;
    this.records += chunk.records.length;
    this.lastLsn = chunk.records.at(-1)!.lsn;
  }

  private rejectCall(call: PendingAppend, error: Error): void {
    for (const record of call.records) {
      if (this.inFlight.get(record.key) === record) this.inFlight.delete(record.key);
    }
    call.reject(error);
  }

  private notifyDurable(): void {
    for (const listener of this.listeners) {
      try {
        listener(this.lastLsn);
      } catch (error) {
        this.logger.error({ err: error, dir: this.dir }, "wal: an onDurable listener threw");
      }
    }
  }
}
