import { randomFillSync } from "node:crypto";

const HEX: string[] = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"));
const RANDOM_POOL = new Uint8Array(8 * 512);
let poolOffset = RANDOM_POOL.length;
let lastMs = -1;
let counter = 0;

function randomBytes8(): number {
  if (poolOffset === RANDOM_POOL.length) {
    randomFillSync(RANDOM_POOL);
    poolOffset = 0;
  }
  const at = poolOffset;
  poolOffset += 8;
  return at;
}

/** Advances the clock/counter state; returns the pool offset of 8 fresh random bytes. */
function nextState(ms: number): number {
  if (ms > lastMs) {
    lastMs = ms;
    // Seed the counter in the lower half so a burst within one millisecond has room to count.
    counter = (RANDOM_POOL[randomBytes8()]! << 3) & 0x7ff;
  } else {
    counter++;
    if (counter > 0xfff) {
      // Counter exhausted: borrow the next millisecond rather than lose ordering.
      lastMs++;
      counter = 0;
    }
  }
  return randomBytes8();
}

/**
 * A new UUIDv7 (RFC 9562): 48-bit Unix milliseconds (`atMs`, default now), then a 12-bit
 * counter in `rand_a` (RFC 9562 §6.2 method 1), then 62 random bits. Ids made by one
 * process are strictly increasing as strings, even within one millisecond or when the wall
 * clock steps back (an `atMs` earlier than the last id's keeps the last id's ms).
 */
export function uuidv7(atMs = Date.now()): string {
  const r = nextState(atMs);
  const ms = lastMs;
  const high = Math.floor(ms / 0x10000);
  const low = ms % 0x10000;
  return (
    HEX[(high >>> 24) & 0xff]! +
    HEX[(high >>> 16) & 0xff]! +
    HEX[(high >>> 8) & 0xff]! +
    HEX[high & 0xff]! +
    "-" +
    HEX[low >>> 8]! +
    HEX[low & 0xff]! +
    "-" +
    HEX[0x70 | (counter >>> 8)]! +
    HEX[counter & 0xff]! +
    "-" +
    HEX[0x80 | (RANDOM_POOL[r]! & 0x3f)]! +
    HEX[RANDOM_POOL[r + 1]!]! +
    "-" +
    HEX[RANDOM_POOL[r + 2]!]! +
    HEX[RANDOM_POOL[r + 3]!]! +
    HEX[RANDOM_POOL[r + 4]!]! +
    HEX[RANDOM_POOL[r + 5]!]! +
    HEX[RANDOM_POOL[r + 6]!]! +
    HEX[RANDOM_POOL[r + 7]!]!
  );
}

const HEX_CHARS = new Uint8Array(Buffer.from("0123456789abcdef", "latin1"));

function hexByte(out: Uint8Array, at: number, b: number): number {
  out[at] = HEX_CHARS[b >>> 4]!;
  out[at + 1] = HEX_CHARS[b & 15]!;
  return at + 2;
}

/**
 * Writes a new UUIDv7 (the same sequence as {@link uuidv7}) for Unix ms `ms` (default now)
 * as 36 ASCII bytes at `offset`, so an encoder can stamp an event id without making a
 * string. An `ms` earlier than the last id's keeps the last id's ms: ids still increase.
 */
export function writeUuidv7(out: Uint8Array, offset: number, atMs = Date.now()): void {
  const r = nextState(atMs);
  const ms = lastMs;
  const high = Math.floor(ms / 0x10000);
  const low = ms % 0x10000;
  let at = offset;
  at = hexByte(out, at, (high >>> 24) & 0xff);
  at = hexByte(out, at, (high >>> 16) & 0xff);
  at = hexByte(out, at, (high >>> 8) & 0xff);
  at = hexByte(out, at, high & 0xff);
  out[at++] = 45;
  at = hexByte(out, at, low >>> 8);
  at = hexByte(out, at, low & 0xff);
  out[at++] = 45;
  at = hexByte(out, at, 0x70 | (counter >>> 8));
  at = hexByte(out, at, counter & 0xff);
  out[at++] = 45;
  at = hexByte(out, at, 0x80 | (RANDOM_POOL[r]! & 0x3f));
  at = hexByte(out, at, RANDOM_POOL[r + 1]!);
  out[at++] = 45;
  for (let i = 2; i < 8; i++) at = hexByte(out, at, RANDOM_POOL[r + i]!);
}

/** The Unix milliseconds encoded in a UUIDv7 string. */
export function uuidv7Time(id: string): number {
  return parseInt(id.slice(0, 8) + id.slice(9, 13), 16);
}
