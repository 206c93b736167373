import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { renameSync, writeFileSync } from "node:fs";
import { mkdir, open, readdir, readFile, rename, rm, stat, unlink } from "node:fs/promises";
import { dirname, join, relative, sep } from "node:path";
import { promisify } from "node:util";

import { InvalidEventError, StorageFullError, StorageUnavailableError } from "@sessiontrack/errors";

/** One stored object as a listing reports it. */
export interface ObjectInfo {
  key: string;
  size: number;
  lastModified: Date;
  /** Where the object lives: "hot" (default) or "cold" (local store's cold tier). */
  tier: "hot" | "cold";
}

/**
 * Where archive objects live. Keys are `/`-separated paths (`tenants/<t>/…`); both
 * implementations use the same keys, so the layout is the same on disk and in a bucket.
 * A put is atomic: readers see the whole old object or the whole new one.
 */
export interface ObjectStore {
  readonly kind: "local" | "s3";
  /** Human-readable location, for logs. */
  readonly location: string;
  put(key: string, data: Buffer): Promise<void>;
  /** Several puts at once (each atomic on its own; a local store fsyncs each directory once). */
  putMany(entries: ReadonlyArray<readonly [string, Buffer]>): Promise<void>;
  /** The object's bytes, or undefined when it does not exist. */
  get(key: string): Promise<Buffer | undefined>;
  /** Deletes the object if present (idempotent). */
  delete(key: string): Promise<void>;
  /** Every object whose key starts with `prefix` (a `/`-terminated folder), sorted by key. */
  list(prefix: string): Promise<ObjectInfo[]>;
  close(): Promise<void>;
}

const SAFE_KEY = /^[a-z0-9][a-z0-9._-]*(\/[a-z0-9][a-z0-9._-]*)*$/i;

/** Refuses keys that could leave the store's root or that S3 and a file system would read differently. */
export function checkObjectKey(key: string): void {
  if (!SAFE_KEY.test(key) || key.split("/").includes("..")) {
    throw new InvalidEventError(`object key "${key}" is not a safe relative path`);
  }
}

function ioError(error: unknown, what: string): Error {
  const code = (error as NodeJS.ErrnoException).code;
  if (code === "ENOSPC" || code === "EDQUOT") {
    return new StorageFullError(`archive store is full while ${what}: ${(error as Error).message}`, {
      cause: error,
    });
  }
  return new StorageUnavailableError(`archive store failed while ${what}: ${(error as Error).message}`, {
    cause: error,
  });
}

/** A group of at least this many puts is a bulk write (see putBulk). */
const BULK_MIN_ENTRIES = 64;
/** Files written (or renamed) synchronously before the event loop gets a turn. */
const BULK_BURST = 100;
const yieldToEventLoop = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));
const execFileAsync = promisify(execFile);

async function fsyncFile(path: string): Promise<void> {
  const handle = await open(path, "r+");
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

async function fsyncDirectory(dir: string): Promise<void> {
  const handle = await open(dir, "r");
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/**
 * A local directory as the object store (the embedded default): hot objects under
 * `<dir>/objects/<key>`, the cold tier under `<dir>/cold/<key>`. Writes go to a temp file
 * that is fsync'd, renamed over the target, and the directory fsync'd.
 */
export class LocalObjectStore implements ObjectStore {
  readonly kind = "local" as const;
  readonly location: string;
  private readonly hot: string;
  private readonly cold: string;
  private readonly knownDirs = new Set<string>();
  private syncfsWorks = process.platform === "linux";
  /** Whether a cold-tier directory exists; only moveToCold creates them (one process owns a store). */
  private readonly coldDirs = new Map<string, boolean>();

  constructor(readonly dir: string) {
    this.hot = join(dir, "objects");
    this.cold = join(dir, "cold");
    this.location = dir;
  }

  private path(tier: "hot" | "cold", key: string): string {
    checkObjectKey(key);
    return join(tier === "hot" ? this.hot : this.cold, ...key.split("/"));
  }

  private async ensureDir(dir: string): Promise<void> {
    if (this.knownDirs.has(dir)) return;
    const created = await mkdir(dir, { recursive: true });
    if (created !== undefined) {
      // New directories must survive a crash too: fsync each parent of what was created.
      let child = dir;
      while (child.length >= created.length) {
        const parent = dirname(child);
        await fsyncDirectory(parent);
        if (parent === child) break;
        child = parent;
      }
    }
    this.knownDirs.add(dir);
  }

  /** Whether the key's cold-tier directory exists, so that the key may have a cold copy. */
  private async mayBeCold(key: string): Promise<boolean> {
    const dir = dirname(this.path("cold", key));
    let exists = this.coldDirs.get(dir);
    if (exists === undefined) {
      exists = await stat(dir).then(
        () => true,
        (error: NodeJS.ErrnoException) => error.code !== "ENOENT",
      );
      this.coldDirs.set(dir, exists);
    }
    return exists;
  }

  /** Removes a cold copy that a rewritten object must not leave behind. */
  private async dropColdCopy(key: string): Promise<void> {
    if (await this.mayBeCold(key)) await rm(this.path("cold", key), { force: true });
  }

  async put(key: string, data: Buffer): Promise<void> {
    const target = this.path("hot", key);
    const dir = dirname(target);
    const temp = join(dir, `.${randomBytes(6).toString("hex")}.tmp`);
    try {
      await this.ensureDir(dir);
      const handle = await open(temp, "wx", 0o600);
      try {
        await handle.writeFile(data);
        await handle.sync();
      } finally {
        await handle.close();
      }
      await rename(temp, target);
      await fsyncDirectory(dir);
      // A rewritten object that had moved to the cold tier must not shadow the new bytes.
      await this.dropColdCopy(key);
    } catch (error) {
      await rm(temp, { force: true }).catch(() => undefined);
      throw ioError(error, `writing ${key}`);
    }
  }

  /**
   * Group commit: every temp file is written and fsync'd in parallel, then renamed, then
   * each directory involved is fsync'd once — instead of once per object. Large groups
   * (a fold writes thousands of sub-KB records) go through {@link putBulk}.
   */
  async putMany(entries: ReadonlyArray<readonly [string, Buffer]>): Promise<void> {
    if (entries.length === 0) return;
    if (entries.length === 1) return this.put(entries[0]![0], entries[0]![1]);
    if (entries.length >= BULK_MIN_ENTRIES) return this.putBulk(entries);
    const staged: Array<{ key: string; target: string; temp: string }> = [];
    try {
      await Promise.all(
        entries.map(async ([key, data]) => {
          const target = this.path("hot", key);
          const dir = dirname(target);
          const temp = join(dir, `.${randomBytes(6).toString("hex")}.tmp`);
          await this.ensureDir(dir);
          staged.push({ key, target, temp });
          const handle = await open(temp, "wx", 0o600);
          try {
            await handle.writeFile(data);
            await handle.sync();
          } finally {
            await handle.close();
          }
        }),
      );
      for (const { target, temp } of staged) await rename(temp, target);
      await Promise.all([...new Set(staged.map(({ target }) => dirname(target)))].map(fsyncDirectory));
      await Promise.all(staged.map(({ key }) => this.dropColdCopy(key)));
    } catch (error) {
      await Promise.all(staged.map(({ temp }) => rm(temp, { force: true }).catch(() => undefined)));
      throw ioError(error, `writing ${entries.length} objects`);
    }
  }

  /**
   * A large group commit with the same guarantee: temp files written, one syncfs(2) of the
   * store's file system (instead of an fsync each), renamed, one more syncfs. Tiny files are
   * written and renamed synchronously in short bursts: through the thread pool each costs
   * ~0.1–1 ms of queueing, in a burst ~25 µs. Without syncfs, each file and directory is fsync'd.
   */
  private async putBulk(entries: ReadonlyArray<readonly [string, Buffer]>): Promise<void> {
    const staged: Array<{ key: string; target: string; temp: string }> = [];
    try {
      for (const [index, [key, data]] of entries.entries()) {
        const target = this.path("hot", key);
        const dir = dirname(target);
        await this.ensureDir(dir);
        const temp = join(dir, `.${randomBytes(6).toString("hex")}.tmp`);
        staged.push({ key, target, temp });
        writeFileSync(temp, data, { flag: "wx", mode: 0o600 });
        if (index % BULK_BURST === BULK_BURST - 1) await yieldToEventLoop();
      }
      if (!(await this.syncFileSystem())) await Promise.all(staged.map(({ temp }) => fsyncFile(temp)));
      for (const [index, { target, temp }] of staged.entries()) {
        renameSync(temp, target);
        if (index % BULK_BURST === BULK_BURST - 1) await yieldToEventLoop();
      }
      if (!(await this.syncFileSystem())) {
        await Promise.all([...new Set(staged.map(({ target }) => dirname(target)))].map(fsyncDirectory));
      }
      await Promise.all(staged.map(({ key }) => this.dropColdCopy(key)));
    } catch (error) {
      await Promise.all(staged.map(({ temp }) => rm(temp, { force: true }).catch(() => undefined)));
      throw ioError(error, `writing ${entries.length} objects`);
    }
  }

  /** syncfs(2) of the store's file system (coreutils `sync -f`); false when that is unavailable. */
  private async syncFileSystem(): Promise<boolean> {
    if (!this.syncfsWorks) return false;
    try {
      await execFileAsync("sync", ["-f", this.dir], { timeout: 120_000 });
      return true;
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === "ENOENT" || code === "EACCES") this.syncfsWorks = false; // no such tool here
      return false;
    }
  }

  async get(key: string): Promise<Buffer | undefined> {
    for (const tier of ["hot", "cold"] as const) {
      if (tier === "cold" && !(await this.mayBeCold(key))) break;
      try {
        return await readFile(this.path(tier, key));
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw ioError(error, `reading ${key}`);
      }
    }
    return undefined;
  }

  async delete(key: string): Promise<void> {
    for (const tier of ["hot", "cold"] as const) {
      if (tier === "cold" && !(await this.mayBeCold(key))) break;
      const path = this.path(tier, key);
      try {
        await unlink(path);
        await fsyncDirectory(dirname(path));
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw ioError(error, `deleting ${key}`);
      }
    }
  }

  async list(prefix: string): Promise<ObjectInfo[]> {
    const found: ObjectInfo[] = [];
    const folder = prefix.replace(/\/+$/, "");
    if (folder !== "") checkObjectKey(folder);
    for (const tier of ["hot", "cold"] as const) {
      const root = tier === "hot" ? this.hot : this.cold;
      const start = folder === "" ? root : join(root, ...folder.split("/"));
      await this.walk(root, start, tier, found);
    }
    return found.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  }

  private async walk(root: string, dir: string, tier: "hot" | "cold", out: ObjectInfo[]): Promise<void> {
    let entries;
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") return;
      throw ioError(error, `listing ${dir}`);
    }
    for (const entry of entries) {
      if (entry.name.startsWith(".")) continue; // temp files of writes in progress
      const path = join(dir, entry.name);
      if (entry.isDirectory()) await this.walk(root, path, tier, out);
      else if (entry.isFile()) {
        const info = await stat(path).catch(() => undefined);
        if (info === undefined) continue;
        out.push({
          key: relative(root, path).split(sep).join("/"),
          size: info.size,
          lastModified: info.mtime,
          tier,
        });
      }
    }
  }

  /** Moves a hot object to the cold tier (rename; both directories fsync'd). */
  async moveToCold(key: string): Promise<void> {
    const from = this.path("hot", key);
    const to = this.path("cold", key);
    try {
      await this.ensureDir(dirname(to));
      this.coldDirs.set(dirname(to), true);
      await rename(from, to);
      await fsyncDirectory(dirname(to));
      await fsyncDirectory(dirname(from));
    } catch (error) {
      throw ioError(error, `moving ${key} to the cold tier`);
    }
  }

  async close(): Promise<void> {
    // Nothing held open between calls.
  }
}
