/**
 * Writes to the active (last) segment and rolls to a new one. Every write is followed by
 * one fdatasync before anything is acknowledged; disk-full errors are undone by truncating
 * back to the last durable offset, every other I/O error is fatal for the open log.
 */
import { join } from "node:path";
import { StorageFullError, type StorageUnavailableError } from "@sessiontrack/errors";
import { encodeSegmentHeader, SEGMENT_HEADER_BYTES, segmentFileName } from "./format.js";
import { isNoSpaceError, writeFully, type WalFileHandle, type WalFileSystem } from "./fs.js";
import type { SegmentState } from "./replay.js";
import type { WalLogger } from "./types.js";

/** Puts the log into its failed state and returns the error to reject with. */
export type FailLog = (what: string, cause: unknown) => StorageUnavailableError;

/** Owner of the active segment's file handle. */
export class WalSegmentWriter {
  /** fdatasync calls made so far. */
  syncs = 0;

  private constructor(
    private readonly dir: string,
    private readonly fs: WalFileSystem,
    private readonly logger: WalLogger,
    private readonly fail: FailLog,
    private segment: SegmentState,
    private handle: WalFileHandle,
  ) {}

  /** Resumes writing at the end of the last replayed segment, after syncing it. */
  static async resume(
    dir: string,
    fs: WalFileSystem,
    logger: WalLogger,
    fail: FailLog,
    segment: SegmentState,
  ): Promise<WalSegmentWriter> {
    const handle = await fs.open(segment.path, "r+");
    const writer = new WalSegmentWriter(dir, fs, logger, fail, segment, handle);
    // A previous process may have died between write and fdatasync: replay read those bytes from
    // the page cache, and their keys may be acknowledged as duplicates, so make them durable first.
    try {
      await writer.datasync(handle, segment.path);
      await fs.fsyncDir(dir);
    } catch (error) {
      await handle.close().catch(() => undefined);
      throw error;
    }
    return writer;
  }

  /** Creates the first segment of an empty log. */
  static async createFirst(
    dir: string,
    fs: WalFileSystem,
    logger: WalLogger,
    fail: FailLog,
    baseLsn: number,
  ): Promise<{ writer: WalSegmentWriter; segment: SegmentState }> {
    const { segment, handle } = await createSegmentFile(dir, fs, baseLsn, fail);
    const writer = new WalSegmentWriter(dir, fs, logger, fail, segment, handle);
    writer.syncs++;
    return { writer, segment };
  }

  /** The segment being written. */
  get active(): SegmentState {
    return this.segment;
  }

  /**
   * Appends `buffer` at the durable end of the active segment and fdatasyncs it. Throws
   * StorageFullError when the disk is full (the segment is cut back, the log stays usable) and
   * the failed-log error for anything else. The caller advances `active.size` on success.
   */
  async writeDurably(buffer: Uint8Array): Promise<void> {
    const { segment, handle } = this;
    const position = segment.size;
    try {
      await writeFully(handle, buffer, position);
    } catch (error) {
      if (!isNoSpaceError(error))
        throw this.fail(`writing ${buffer.length} bytes to ${segment.path} failed`, error);
      try {
        await handle.truncate(position);
      } catch (truncateError) {
        throw this.fail(
          `cutting ${segment.path} back to ${position} bytes after a full disk failed`,
          truncateError,
        );
      }
      throw new StorageFullError(
        `write-ahead log ${this.dir}: the disk is full (writing ${buffer.length} bytes to ${segment.name}); ` +
          "nothing from this group was acknowledged",
        { cause: error },
      );
    }
    await this.datasync(handle, segment.path);
  }

  /**
   * Seals the active segment and starts a new one whose first record will be `baseLsn`.
   * Every byte of the active segment was already fdatasync'd by writeDurably, so the sealed
   * segment is durable before its successor exists and only the last segment can be torn.
   */
  async roll(baseLsn: number): Promise<SegmentState> {
    const created = await createSegmentFile(this.dir, this.fs, baseLsn, this.fail);
    this.syncs++;
    const sealed = this.handle;
    this.segment = created.segment;
    this.handle = created.handle;
    // Closing a file whose bytes are already synced cannot lose data, so a failure is only logged.
    await sealed.close().catch((error: unknown) => {
      this.logger.warn({ err: error, dir: this.dir }, "wal: closing a sealed segment failed");
    });
    return created.segment;
  }

  /** Closes the active segment's handle. */
  async close(): Promise<void> {
    await this.handle.close();
  }

  private async datasync(handle: WalFileHandle, path: string): Promise<void> {
    this.syncs++;
    try {
      await handle.datasync();
    } catch (error) {
      // After a failed fsync the page cache no longer tells what is on disk: never retry it.
      throw this.fail(`fdatasync of ${path} failed`, error);
    }
  }
}

/**
 * Creates a segment file holding only its header, fdatasync'd, and fsyncs the directory so
 * the new name survives a machine crash. A full disk while creating or writing the header
 * removes the half-made file and throws StorageFullError; any other failure fails the log.
 */
async function createSegmentFile(
  dir: string,
  fs: WalFileSystem,
  baseLsn: number,
  fail: FailLog,
): Promise<{ segment: SegmentState; handle: WalFileHandle }> {
  const name = segmentFileName(baseLsn);
  const path = join(dir, name);
  const diskFull = (cause: unknown): StorageFullError =>
    new StorageFullError(
      `write-ahead log ${dir}: the disk is full (creating segment ${name}); nothing from this group was acknowledged`,
      { cause },
    );
  let handle: WalFileHandle;
  try {
    handle = await fs.open(path, "wx");
  } catch (error) {
    if (isNoSpaceError(error)) throw diskFull(error);
    throw fail(`creating segment ${path} failed`, error);
  }
  try {
    await writeFully(handle, encodeSegmentHeader(baseLsn), 0);
  } catch (error) {
    await handle.close().catch(() => undefined);
    if (!isNoSpaceError(error)) throw fail(`writing the header of segment ${path} failed`, error);
    try {
      await fs.unlink(path);
      await fs.fsyncDir(dir);
    } catch (cleanupError) {
      throw fail(`removing the half-created segment ${path} after a full disk failed`, cleanupError);
    }
    throw diskFull(error);
  }
  try {
    await handle.datasync();
    await fs.fsyncDir(dir);
  } catch (error) {
    await handle.close().catch(() => undefined);
    throw fail(`syncing the new segment ${path} or its directory failed`, error);
  }
  const segment: SegmentState = { name, path, baseLsn, size: SEGMENT_HEADER_BYTES, offsets: [], keys: [] };
  return { segment, handle };
}
