/** Helpers shared by this package's tests: temp dirs, a fault-injecting file system, a recording logger. */
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TestContext } from "node:test";
import { nodeFileSystem, type WalFileHandle, type WalFileSystem } from "./fs.js";
import { scanWal } from "./scan.js";
import type { WalLogger, WalRecordInput, WalScanEntry } from "./types.js";

/** A fresh directory under os.tmpdir(), removed when the test ends. */
export async function tempDir(t: TestContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "sessiontrack-wal-"));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** `count` records keyed `${prefix}${i}` with distinct, checkable payloads of `size` bytes (or varied sizes). */
export function makeRecords(count: number, prefix = "k", size?: number, start = 0): WalRecordInput[] {
  return Array.from({ length: count }, (_, n) => {
    const i = start + n;
    const length = size ?? 1 + ((i * 37) % 200);
    const data = new Uint8Array(length);
    for (let j = 0; j < length; j++) data[j] = (i * 7 + j) & 0xff;
    return { key: `${prefix}${i}`, data };
  });
}

/** Every file of `dir` with its content, to prove that nothing was modified. */
export async function snapshotDir(dir: string): Promise<Map<string, Buffer>> {
  const files = new Map<string, Buffer>();
  for (const name of (await readdir(dir)).sort()) files.set(name, await readFile(join(dir, name)));
  return files;
}

/** All entries scanWal yields for `dir`. */
export async function scanAll(dir: string): Promise<WalScanEntry[]> {
  const entries: WalScanEntry[] = [];
  for await (const entry of scanWal(dir)) entries.push(entry);
  return entries;
}

/** A logger that keeps what it was told. */
export function recordingLogger(): WalLogger & {
  entries: Array<{ level: string; obj: object; msg: string }>;
} {
  const entries: Array<{ level: string; obj: object; msg: string }> = [];
  return {
    entries,
    info: (obj, msg) => entries.push({ level: "info", obj, msg }),
    warn: (obj, msg) => entries.push({ level: "warn", obj, msg }),
    error: (obj, msg) => entries.push({ level: "error", obj, msg }),
  };
}

/** File-system operations a fault can be injected into. */
export type FaultOperation = "open" | "write" | "datasync" | "truncate" | "unlink" | "fsyncDir" | "rename";

interface Fault {
  operation: FaultOperation;
  code: string;
  pathIncludes: string;
  remaining: number;
  /** For writes: bytes actually written before failing, as a real short write on a full disk does. */
  partialBytes: number;
}

/** Node-style system error with an errno code. */
export function systemError(code: string, operation: string, path: string): NodeJS.ErrnoException {
  const error: NodeJS.ErrnoException = new Error(`${code}: injected fault, ${operation} '${path}'`);
  error.code = code;
  error.syscall = operation;
  error.path = path;
  return error;
}

/** Real node:fs with faults injected at chosen calls; counts calls per operation. */
export class FaultFileSystem implements WalFileSystem {
  readonly calls = new Map<FaultOperation, number>();
  private faults: Fault[] = [];

  /** Fails the next `times` calls of `operation` on paths containing `pathIncludes` with `code`. */
  inject(
    operation: FaultOperation,
    code: string,
    options: { times?: number; pathIncludes?: string; partialBytes?: number } = {},
  ): void {
    this.faults.push({
      operation,
      code,
      pathIncludes: options.pathIncludes ?? "",
      remaining: options.times ?? 1,
      partialBytes: options.partialBytes ?? 0,
    });
  }

  /** Removes every pending fault ("space returns"). */
  clear(): void {
    this.faults = [];
  }

  private take(operation: FaultOperation, path: string): Fault | undefined {
    this.calls.set(operation, (this.calls.get(operation) ?? 0) + 1);
    const fault = this.faults.find(
      (f) => f.operation === operation && f.remaining > 0 && path.includes(f.pathIncludes),
    );
    if (fault !== undefined) fault.remaining--;
    return fault;
  }

  private check(operation: FaultOperation, path: string): void {
    const fault = this.take(operation, path);
    if (fault !== undefined) throw systemError(fault.code, operation, path);
  }

  async open(path: string, flags: string): Promise<WalFileHandle> {
    this.check("open", path);
    return this.wrap(await nodeFileSystem.open(path, flags), path);
  }

  readFile = (path: string): Promise<Buffer> => nodeFileSystem.readFile(path);
  readdir = (path: string): Promise<string[]> => nodeFileSystem.readdir(path);
  mkdirp = (path: string): Promise<string | undefined> => nodeFileSystem.mkdirp(path);
  stat = (path: string): Promise<{ size: number }> => nodeFileSystem.stat(path);

  async unlink(path: string): Promise<void> {
    this.check("unlink", path);
    await nodeFileSystem.unlink(path);
  }

  async rename(from: string, to: string): Promise<void> {
    this.check("rename", to);
    await nodeFileSystem.rename(from, to);
  }

  async fsyncDir(path: string): Promise<void> {
    this.check("fsyncDir", path);
    await nodeFileSystem.fsyncDir(path);
  }

  private wrap(handle: WalFileHandle, path: string): WalFileHandle {
    return {
      write: async (buffer, offset, length, position) => {
        const fault = this.take("write", path);
        if (fault === undefined) return handle.write(buffer, offset, length, position);
        const partial = Math.min(fault.partialBytes, length);
        if (partial > 0) await handle.write(buffer, offset, partial, position);
        throw systemError(fault.code, "write", path);
      },
      read: (buffer, offset, length, position) => handle.read(buffer, offset, length, position),
      datasync: async () => {
        this.check("datasync", path);
        await handle.datasync();
      },
      sync: () => handle.sync(),
      truncate: async (length) => {
        this.check("truncate", path);
        await handle.truncate(length);
      },
      close: () => handle.close(),
    };
  }
}
