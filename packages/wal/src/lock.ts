import { closeSync, openSync, readFileSync, unlinkSync, writeSync } from "node:fs";
import { join } from "node:path";

import { StorageUnavailableError } from "@sessiontrack/errors";

/** Directories this process holds open as a WriteAheadLog. */
const heldInThisProcess = new Set<string>();

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: the process exists but belongs to someone else.
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

/**
 * A `LOCK` file holding the owner's pid, so two writers never share one log directory
 * (they would interleave frames and corrupt it). A lock left by a process that no longer
 * runs (after kill -9) is stale and taken over.
 */
export class WalDirectoryLock {
  private released = false;

  private constructor(
    private readonly dir: string,
    private readonly path: string,
  ) {}

  /** Takes the lock or throws StorageUnavailableError naming the process that holds it. */
  static acquire(dir: string): WalDirectoryLock {
    const path = join(dir, "LOCK");
    if (heldInThisProcess.has(dir)) {
      throw new StorageUnavailableError(`write-ahead log ${dir} is already open in this process`);
    }
    for (let attempt = 0; attempt < 3; attempt += 1) {
      try {
        const fd = openSync(path, "wx");
        try {
          writeSync(fd, `${process.pid}\n`);
        } finally {
          closeSync(fd);
        }
        heldInThisProcess.add(dir);
        return new WalDirectoryLock(dir, path);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== "EEXIST") {
          throw new StorageUnavailableError(`write-ahead log ${dir}: cannot create ${path}`, {
            cause: error,
          });
        }
      }
      const owner = Number.parseInt(readFileSync(path, "utf8").trim(), 10);
      if (Number.isInteger(owner) && owner !== process.pid && isAlive(owner)) {
        throw new StorageUnavailableError(
          `write-ahead log ${dir} is in use by process ${owner} (${path}); one directory, one writer`,
        );
      }
      unlinkSync(path); // stale: its owner is gone
    }
    throw new StorageUnavailableError(`write-ahead log ${dir}: could not take ${path}`);
  }

  /** Removes the lock file; idempotent. */
  release(): void {
    if (this.released) return;
    this.released = true;
    heldInThisProcess.delete(this.dir);
    try {
      unlinkSync(this.path);
    } catch {
      // already gone: nothing to release
    }
  }
}
