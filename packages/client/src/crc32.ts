import * as zlib from "node:zlib";

// CRC-32 (IEEE 802.3, the zlib/PNG polynomial) for spool frames: zlib's native crc32 where
// Node has it (20.15+, 22.2+), else a table (Node 20.10 has none). Every spooled event is
// checksummed on write and again on replay, so the native one matters while ingest is down.
const TABLE = new Uint32Array(256);
for (let n = 0; n < 256; n++) {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  TABLE[n] = c >>> 0;
}

/** CRC-32 (IEEE) of `bytes` by table lookup; the fallback, and the reference in tests. */
export function crc32Table(bytes: Uint8Array): number {
  let crc = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) {
    crc = (TABLE[(crc ^ bytes[i]!) & 0xff]! ^ (crc >>> 8)) >>> 0;
  }
  return (crc ^ 0xffffffff) >>> 0;
}

const nativeCrc32 = (zlib as { crc32?: (data: Uint8Array, value?: number) => number }).crc32;

/** CRC-32 (IEEE) of `bytes`, as an unsigned 32-bit number. */
export const crc32: (bytes: Uint8Array) => number =
  typeof nativeCrc32 === "function" ? (bytes) => nativeCrc32(bytes) >>> 0 : crc32Table;
