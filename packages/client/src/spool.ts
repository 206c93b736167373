import {
  closeSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readFileSync,
  readdirSync,
  renameSync,
  statSync,
  unlinkSync,
  writeSync,
} from "node:fs";
import { join } from "node:path";
import { crc32 } from "./crc32.js";

/** Bytes before every frame: u32le payload length, u32le CRC-32 of the payload. */
export const FRAME_HEADER_BYTES = 8;
const MAX_FRAME_BYTES = 64 * 1024 * 1024;
const SEALED_SUFFIX = ".spool";
const OPEN_SUFFIX = ".open";

/** Replay state of one frame of a loaded segment. */
const enum FrameState {
  Pending = 0,
  InFlight = 1,
  Done = 2,
}

/**
 * One sealed spool file loaded for replay. Frames are handed out in order, marked in flight,
 * and done once acked or reported; the file is deleted only when every frame is done.
 */
export class SpoolSegment {
  private readonly states: Uint8Array;
  private nextPending = 0;
  private doneCount = 0;

  constructor(
    readonly path: string,
    readonly bytes: number,
    readonly frames: readonly Uint8Array[],
    /** True when an earlier process wrote it: its events count as replayed, not as this client's. */
    readonly adopted: boolean,
  ) {
    this.states = new Uint8Array(frames.length);
  }

  /** True when every frame was acked or reported. */
  get finished(): boolean {
    return this.doneCount === this.frames.length;
  }

  /** Up to `max` pending frames (and `maxBytes`, but at least one) in order, now marked in flight. */
  takePending(max: number, maxBytes = Infinity): { indexes: number[]; frames: Uint8Array[] } {
    const indexes: number[] = [];
    const frames: Uint8Array[] = [];
    let bytes = 0;
    let i = this.nextPending;
    for (; i < this.frames.length && indexes.length < max; i++) {
      if (this.states[i] !== FrameState.Pending) continue;
      if (indexes.length > 0 && bytes + this.frames[i]!.length > maxBytes) break;
      bytes += this.frames[i]!.length;
      this.states[i] = FrameState.InFlight;
      indexes.push(i);
      frames.push(this.frames[i]!);
    }
    this.nextPending = i;
    return { indexes, frames };
  }

  /** True when some frame still waits to be sent. */
  get hasPending(): boolean {
    for (let i = this.nextPending; i < this.frames.length; i++) {
      if (this.states[i] === FrameState.Pending) return true;
    }
    return false;
  }

  markDone(indexes: readonly number[]): void {
    for (const i of indexes) {
      if (this.states[i] !== FrameState.Done) {
        this.states[i] = FrameState.Done;
        this.doneCount++;
      }
    }
  }

  /** After a broken stream: everything in flight is pending again (resent with the same ids). */
  resetInFlight(): void {
    for (let i = 0; i < this.states.length; i++) {
      if (this.states[i] === FrameState.InFlight) this.states[i] = FrameState.Pending;
    }
    this.nextPending = 0;
  }
}

/** Result of reading a spool file: its intact frames, and whether a bad tail was cut off. */
export interface ParsedSpoolFile {
  frames: Uint8Array[];
  tornTailBytes: number;
}

/** Frames of a spool file up to its first short, oversized or checksum-failing frame. */
export function parseSpoolFile(data: Uint8Array): ParsedSpoolFile {
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const frames: Uint8Array[] = [];
  let at = 0;
  while (data.length - at >= FRAME_HEADER_BYTES) {
    const length = view.getUint32(at, true);
    const checksum = view.getUint32(at + 4, true);
    const start = at + FRAME_HEADER_BYTES;
    if (length > MAX_FRAME_BYTES || start + length > data.length) break;
    const payload = data.subarray(start, start + length);
    if (crc32(payload) !== checksum) break;
    frames.push(payload);
    at = start + length;
  }
  return { frames, tornTailBytes: data.length - at };
}

/** Encodes frames into one buffer ready to append. */
export function encodeFrames(payloads: readonly Uint8Array[]): Buffer {
  let total = 0;
  for (const p of payloads) total += FRAME_HEADER_BYTES + p.length;
  const out = Buffer.allocUnsafe(total);
  let at = 0;
  for (const p of payloads) {
    out.writeUInt32LE(p.length, at);
    out.writeUInt32LE(crc32(p), at + 4);
    out.set(p, at + FRAME_HEADER_BYTES);
    at += FRAME_HEADER_BYTES + p.length;
  }
  return out;
}

function isProcessAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** Outcome of {@link DiskSpool.append}: how many frames were written; the rest did not fit. */
export interface SpoolAppendResult {
  written: number;
  error?: Error;
}

/**
 * Append-only spool of encoded events on local disk, replayed oldest first.
 *
 * Files are named `<ms>-<pid>-<n>` so they sort by age. The file being written ends in
 * `.open` and is renamed to `.spool` when sealed; at start a client adopts every `.spool`
 * file and every `.open` file whose writer process is gone, so several live clients can
 * share a directory without deleting each other's open file. Writes are synchronous
 * page-cache writes done off the capture path (from the SDK's timer), which keeps
 * ordering trivial; the open file is fsync'd on close.
 */
export class DiskSpool {
  private readonly sealed: { path: string; bytes: number; adopted: boolean }[] = [];
  private activeFd: number | undefined;
  private activePath = "";
  private activeBytes = 0;
  private fileCounter = 0;
  private bytesOnDisk = 0;

  constructor(
    readonly dir: string,
    private readonly maxBytes: number,
    private readonly segmentMaxBytes = 4 * 1024 * 1024,
  ) {}

  /** Creates the directory and adopts files left by earlier processes. */
  open(): void {
    mkdirSync(this.dir, { recursive: true });
    const names = readdirSync(this.dir).sort();
    for (const name of names) {
      let adopt = name.endsWith(SEALED_SUFFIX);
      if (!adopt && name.endsWith(OPEN_SUFFIX)) {
        const pid = Number(name.split("-")[1]);
        adopt = pid === process.pid || !Number.isInteger(pid) || !isProcessAlive(pid);
      }
      if (!adopt) continue;
      const path = join(this.dir, name);
      try {
        const bytes = statSync(path).size;
        this.sealed.push({ path, bytes, adopted: true });
        this.bytesOnDisk += bytes;
      } catch {
        // Another client replayed and deleted it between readdir and stat.
      }
    }
  }

  /** Bytes of spool files this client knows of (sealed, loaded and open). */
  get totalBytes(): number {
    return this.bytesOnDisk;
  }

  /** True when nothing waits on disk to be loaded for replay (loaded segments are tracked by the caller). */
  get drained(): boolean {
    return this.sealed.length === 0 && this.activeBytes === 0;
  }

  /**
   * Appends frames in order until the byte cap is reached. Frames past the cap are not
   * written (the caller counts them as dropped); the oldest data is never given up.
   */
  append(payloads: readonly Uint8Array[]): SpoolAppendResult {
    let fit = 0;
    let bytes = 0;
    for (const p of payloads) {
      const size = FRAME_HEADER_BYTES + p.length;
      if (this.bytesOnDisk + bytes + size > this.maxBytes) break;
      bytes += size;
      fit++;
    }
    if (fit === 0) return { written: 0 };
    try {
      if (this.activeFd === undefined) this.openActive();
      const buffer = encodeFrames(fit === payloads.length ? payloads : payloads.slice(0, fit));
      let offset = 0;
      while (offset < buffer.length) offset += writeSync(this.activeFd!, buffer, offset);
      this.activeBytes += buffer.length;
      this.bytesOnDisk += buffer.length;
      if (this.activeBytes >= this.segmentMaxBytes) this.sealActive();
      return { written: fit };
    } catch (err) {
      return { written: 0, error: err instanceof Error ? err : new Error(String(err)) };
    }
  }

  /** Closes the open file and queues it for replay. */
  sealActive(): void {
    if (this.activeFd === undefined) return;
    const fd = this.activeFd;
    this.activeFd = undefined;
    closeSync(fd);
    const sealedPath = this.activePath.slice(0, -OPEN_SUFFIX.length) + SEALED_SUFFIX;
    renameSync(this.activePath, sealedPath);
    this.sealed.push({ path: sealedPath, bytes: this.activeBytes, adopted: false });
    this.activeBytes = 0;
  }

  /**
   * Loads the oldest sealed file for replay, sealing the open one first when nothing else
   * waits. Returns undefined when the spool holds nothing more to load.
   */
  loadNext(onTornTail: (path: string, bytes: number) => void): SpoolSegment | undefined {
    if (this.sealed.length === 0 && this.activeBytes > 0) this.sealActive();
    for (;;) {
      const next = this.sealed.shift();
      if (next === undefined) return undefined;
      let data: Buffer;
      try {
        data = readFileSync(next.path);
      } catch {
        // Replayed and deleted by another client sharing the directory.
        this.bytesOnDisk -= next.bytes;
        continue;
      }
      const parsed = parseSpoolFile(data);
      if (parsed.tornTailBytes > 0) onTornTail(next.path, parsed.tornTailBytes);
      const segment = new SpoolSegment(next.path, next.bytes, parsed.frames, next.adopted);
      if (segment.frames.length === 0) {
        this.release(segment);
        continue;
      }
      return segment;
    }
  }

  /** Deletes a segment whose every frame was acked or reported. */
  release(segment: SpoolSegment): void {
    try {
      unlinkSync(segment.path);
    } catch {
      // Already gone (another client replayed it); nothing is lost.
    }
    this.bytesOnDisk -= segment.bytes;
  }

  /** Flushes and closes the open file; it is replayed by the next client on this directory. */
  close(): void {
    if (this.activeFd === undefined) return;
    const fd = this.activeFd;
    this.activeFd = undefined;
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    if (this.activeBytes === 0) {
      try {
        unlinkSync(this.activePath);
      } catch {
        // Nothing to clean.
      }
    } else {
      renameSync(this.activePath, this.activePath.slice(0, -OPEN_SUFFIX.length) + SEALED_SUFFIX);
    }
    this.activeBytes = 0;
  }

  private openActive(): void {
    const name = `${String(Date.now()).padStart(15, "0")}-${process.pid}-${String(this.fileCounter++).padStart(8, "0")}${OPEN_SUFFIX}`;
    this.activePath = join(this.dir, name);
    this.activeFd = openSync(this.activePath, "wx");
  }
}
