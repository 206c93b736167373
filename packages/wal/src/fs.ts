/**
 * The file-system operations the log uses, behind an interface so tests can inject ENOSPC
 * or EIO at chosen calls. {@link nodeFileSystem} is the real thing.
 */
import { mkdir, open, readFile, readdir, rename, stat, unlink } from "node:fs/promises";

/** An open file; Node's `FileHandle` satisfies this interface. */
export interface WalFileHandle {
  /** Positional write (pwrite); may write fewer bytes than asked. */
  write(
    buffer: Uint8Array,
    offset: number,
    length: number,
    position: number,
  ): Promise<{ bytesWritten: number }>;
  /** Positional read (pread). */
  read(buffer: Uint8Array, offset: number, length: number, position: number): Promise<{ bytesRead: number }>;
  datasync(): Promise<void>;
  sync(): Promise<void>;
  truncate(length: number): Promise<void>;
  close(): Promise<void>;
}

/** The subset of `node:fs/promises` the write-ahead log relies on. */
export interface WalFileSystem {
  /** Opens a file with Node's string flags (`"r"`, `"r+"`, `"wx"`, `"w"`). */
  open(path: string, flags: string): Promise<WalFileHandle>;
  readFile(path: string): Promise<Buffer>;
  readdir(path: string): Promise<string[]>;
  /** Creates the directory and its parents when missing; returns the first directory it created, if any. */
  mkdirp(path: string): Promise<string | undefined>;
  unlink(path: string): Promise<void>;
  rename(from: string, to: string): Promise<void>;
  stat(path: string): Promise<{ size: number }>;
  /** fsync of a directory, so that created, renamed and deleted entries survive a machine crash. */
  fsyncDir(path: string): Promise<void>;
}

/** The default {@link WalFileSystem}: real `node:fs/promises`. */
export const nodeFileSystem: WalFileSystem = {
  open: (path, flags) => open(path, flags),
  readFile: (path) => readFile(path),
  readdir: (path) => readdir(path),
  mkdirp: (path) => mkdir(path, { recursive: true }),
  unlink: (path) => unlink(path),
  rename: (from, to) => rename(from, to),
  stat: (path) => stat(path),
  fsyncDir: async (path) => {
    const handle = await open(path, "r");
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  },
};

/** Writes all of `buffer` at `position`, looping over short writes. */
export async function writeFully(handle: WalFileHandle, buffer: Uint8Array, position: number): Promise<void> {
  let written = 0;
  while (written < buffer.length) {
    const { bytesWritten } = await handle.write(buffer, written, buffer.length - written, position + written);
    if (bytesWritten <= 0)
      throw new Error(`write returned ${bytesWritten} bytes at position ${position + written}`);
    written += bytesWritten;
  }
}

/** Reads exactly `length` bytes at `position`, or fewer when the file ends first. */
export async function readFully(handle: WalFileHandle, length: number, position: number): Promise<Buffer> {
  const buffer = Buffer.allocUnsafe(length);
  let done = 0;
  while (done < length) {
    const { bytesRead } = await handle.read(buffer, done, length - done, position + done);
    if (bytesRead === 0) break;
    done += bytesRead;
  }
  return done === length ? buffer : buffer.subarray(0, done);
}

/** The errno code of a Node system error, if any. */
export function errorCode(error: unknown): string | undefined {
  if (typeof error === "object" && error !== null && "code" in error) {
    const code = error.code;
    return typeof code === "string" ? code : undefined;
  }
  return undefined;
}

/** True for "the disk is full" errors, which leave the log usable once space returns. */
export function isNoSpaceError(error: unknown): boolean {
  const code = errorCode(error);
  return code === "ENOSPC" || code === "EDQUOT";
}
