/**
 * On-disk layout of segments and record frames (all integers little-endian).
 *
 * Segment header (20 bytes): magic u32 | version u16 | reserved u16 | baseLsn u64 | crc32c u32 of bytes 0..16.
 * Record frame: magic u32 | length u32 | crc32c u32 | lsn u64 | keyLen u16 | key | data, where
 * `length` counts the bytes after the crc field and the crc covers exactly those bytes.
 */
import { crc32c } from "./crc32c.js";

/** "STWL" read as a little-endian u32. */
export const SEGMENT_MAGIC = 0x4c575453;
export const SEGMENT_VERSION = 1;
export const SEGMENT_HEADER_BYTES = 20;

/** Bytes D7 1A C3 5E: not valid UTF-8 at a character start, so rare inside text payloads. */
export const FRAME_MAGIC = 0x5ec31ad7;
/** magic + length + crc. */
export const FRAME_PREFIX_BYTES = 12;
/** lsn + keyLen, the fixed part of the checksummed body. */
export const FRAME_BODY_FIXED_BYTES = 10;
export const FRAME_OVERHEAD_BYTES = FRAME_PREFIX_BYTES + FRAME_BODY_FIXED_BYTES;
export const MAX_KEY_BYTES = 1024;

const SEGMENT_FILE_PATTERN = /^(\d{20})\.wal$/;
const TWO_POW_32 = 0x1_0000_0000;

/** File name of the segment whose first record has `baseLsn`. */
export function segmentFileName(baseLsn: number): string {
  return `${String(baseLsn).padStart(20, "0")}.wal`;
}

/** The base LSN encoded in a segment file name, or null when the name is not a segment's. */
export function parseSegmentFileName(name: string): number | null {
  const match = SEGMENT_FILE_PATTERN.exec(name);
  return match === null ? null : Number(match[1]);
}

/** Total on-disk size of a frame holding a key and data of these byte lengths. */
export function frameBytes(keyBytes: number, dataBytes: number): number {
  return FRAME_OVERHEAD_BYTES + keyBytes + dataBytes;
}

function writeU64(buffer: Buffer, value: number, offset: number): void {
  buffer.writeUInt32LE(value % TWO_POW_32, offset);
  buffer.writeUInt32LE(Math.floor(value / TWO_POW_32), offset + 4);
}

function readU64(buffer: Buffer, offset: number): number {
  return buffer.readUInt32LE(offset) + buffer.readUInt32LE(offset + 4) * TWO_POW_32;
}

/** A fresh segment header for `baseLsn`. */
export function encodeSegmentHeader(baseLsn: number): Buffer {
  const header = Buffer.alloc(SEGMENT_HEADER_BYTES);
  header.writeUInt32LE(SEGMENT_MAGIC, 0);
  header.writeUInt16LE(SEGMENT_VERSION, 4);
  writeU64(header, baseLsn, 8);
  header.writeUInt32LE(crc32c(header.subarray(0, 16)), 16);
  return header;
}

/** The header's base LSN, or a reason why the first bytes of `file` are not a valid header. */
export function decodeSegmentHeader(file: Buffer): { baseLsn: number } | { error: string } {
  if (file.length < SEGMENT_HEADER_BYTES) {
    return { error: `segment header incomplete (${file.length} of ${SEGMENT_HEADER_BYTES} bytes)` };
  }
  if (file.readUInt32LE(0) !== SEGMENT_MAGIC) return { error: "bad segment header magic" };
  if (file.readUInt32LE(16) !== crc32c(file.subarray(0, 16)))
    return { error: "segment header checksum mismatch" };
  const version = file.readUInt16LE(4);
  if (version !== SEGMENT_VERSION) return { error: `unsupported segment format version ${version}` };
  return { baseLsn: readU64(file, 8) };
}

/**
 * Encodes one frame into `target` at `offset` (the caller sized `target` with {@link frameBytes}).
 * `keyBytes` must be `Buffer.byteLength(key)`. Returns the offset just past the frame.
 */
export function encodeFrame(
  target: Buffer,
  offset: number,
  lsn: number,
  key: string,
  keyBytes: number,
  data: Uint8Array,
): number {
  const bodyStart = offset + FRAME_PREFIX_BYTES;
  const bodyLength = FRAME_BODY_FIXED_BYTES + keyBytes + data.length;
  target.writeUInt32LE(FRAME_MAGIC, offset);
  target.writeUInt32LE(bodyLength, offset + 4);
  writeU64(target, lsn, bodyStart);
  target.writeUInt16LE(keyBytes, bodyStart + 8);
  target.write(key, bodyStart + FRAME_BODY_FIXED_BYTES, keyBytes, "utf8");
  target.set(data, bodyStart + FRAME_BODY_FIXED_BYTES + keyBytes);
  const end = bodyStart + bodyLength;
  target.writeUInt32LE(crc32c(target.subarray(bodyStart, end)), offset + 8);
  return end;
}

/** A frame whose checksum verified. */
export interface ValidFrame {
  ok: true;
  lsn: number;
  key: string;
  data: Buffer;
  end: number;
}

/** A frame that could not be verified; fields are filled in as far as the bytes allow. */
export interface BadFrame {
  ok: false;
  reason: string;
  lsn: number | null;
  key: string | null;
  data: Buffer | null;
  /** Where the frame claims to end, when its length field is plausible. */
  end: number | null;
}

const keyDecoder = new TextDecoder("utf-8");

/** Parses and verifies the frame starting at `offset` in `file`, never reading past `file.length`. */
export function readFrame(file: Buffer, offset: number): ValidFrame | BadFrame {
  const available = file.length - offset;
  if (available < FRAME_PREFIX_BYTES) {
    return badFrame(`incomplete frame header (${available} of ${FRAME_PREFIX_BYTES} bytes)`);
  }
  if (file.readUInt32LE(offset) !== FRAME_MAGIC) return badFrame("bad frame magic");
  const bodyLength = file.readUInt32LE(offset + 4);
  const bodyStart = offset + FRAME_PREFIX_BYTES;
  if (bodyLength < FRAME_BODY_FIXED_BYTES) return badFrame(`frame length ${bodyLength} is too small`);
  if (bodyLength > available - FRAME_PREFIX_BYTES) {
    return badFrame(
      `incomplete frame (length ${bodyLength}, ${available - FRAME_PREFIX_BYTES} bytes left in file)`,
    );
  }
  const end = bodyStart + bodyLength;
  const lsn = readU64(file, bodyStart);
  const keyLength = file.readUInt16LE(bodyStart + 8);
  const keyEnd = bodyStart + FRAME_BODY_FIXED_BYTES + keyLength;
  const keyFits = keyEnd <= end;
  const key = keyFits ? keyDecoder.decode(file.subarray(bodyStart + FRAME_BODY_FIXED_BYTES, keyEnd)) : null;
  const data = keyFits ? file.subarray(keyEnd, end) : null;
  const storedCrc = file.readUInt32LE(offset + 8);
  if (storedCrc !== crc32c(file.subarray(bodyStart, end))) {
    return { ok: false, reason: "checksum mismatch", lsn, key, data, end };
  }
  if (key === null || data === null) {
    return { ok: false, reason: `key length ${keyLength} exceeds frame`, lsn, key, data, end };
  }
  return { ok: true, lsn, key, data, end };
}

function badFrame(reason: string): BadFrame {
  return { ok: false, reason, lsn: null, key: null, data: null, end: null };
}

const FRAME_MAGIC_BYTES = Buffer.from([0xd7, 0x1a, 0xc3, 0x5e]);

/** Offset of the next frame magic at or after `from`, or -1. */
export function findFrameMagic(file: Buffer, from: number): number {
  return file.indexOf(FRAME_MAGIC_BYTES, from);
}

/** Offset of the next frame at or after `from` whose checksum verifies, or -1. */
export function findNextValidFrame(file: Buffer, from: number): number {
  for (let at = findFrameMagic(file, from); at !== -1; at = findFrameMagic(file, at + 1)) {
    if (readFrame(file, at).ok) return at;
  }
  return -1;
}
