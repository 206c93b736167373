// The cheap first pass on an event's raw bytes: most events hold no sensitive value, and
// for those ingest keeps the bytes as they are, with no decode or re-encode.
//
// Soundness: every built-in detector's match contains one of the "cores" below, written
// with ASCII-only classes. A string field's UTF-8 bytes appear verbatim inside the
// event's bytes, and ASCII characters are the same bytes in UTF-8 and latin1, so a match
// in a decoded field implies a core match in the latin1 view of the raw bytes. The
// prefilter may say "candidate" for a clean event (the detectors then find nothing); it
// never says "clean" for an event a detector would change. prefilter.test.ts checks this
// property on random text with injected values.
import {
  CORE_AT,
  CORE_BEARER_BASIC,
  CORE_DIGITS,
  CORE_IPV4,
  CORE_IPV6,
  CORE_JWT,
  CORE_KEY_PREFIX,
  CORE_KEY_VALUE,
  CORE_PASSWORD_IS,
  CORE_PRIVATE_KEY,
} from "./categories.js";
import { API_KEY_BODIES, GENERIC_KEY_NAME } from "./detectors.js";

const CORES = [
  "@", // email, URL with a password
  String.raw`\d(?:[ ./()-]{0,3}\d){7}`, // phone (8+ digits), payment card (13+)
  String.raw`\d\.\d{1,3}\.\d{1,3}\.\d`, // IPv4
  String.raw`[0-9a-f]:[0-9a-f]{0,4}:|::[0-9a-f]`, // IPv6 with two groups or more
  String.raw`eyJ[A-Za-z0-9_-]{5,}\.eyJ`, // JWT
  "-----BEGIN", // private key block
  String.raw`(?:password|passwd|passphrase|pwd)["']?[ \t]*[:=]`,
  String.raw`password[ \t]+is[ \t]`,
  String.raw`bearer[ \t]+[A-Za-z0-9_.~+/-]{16}`,
  String.raw`basic[ \t]+[A-Za-z0-9+/]{8}`,
  String.raw`${GENERIC_KEY_NAME}["']?[ \t]*[:=]`,
  ...API_KEY_BODIES,
];

/** One regex over all cores; case-insensitive only widens it, which stays sound. */
export const PREFILTER = new RegExp(CORES.join("|"), "i");

// Event fields 1..6 are ids, seq and time: never redacted, and ids such as UUIDs are full
// of digit runs that would make every event a candidate.
const FIRST_SCANNED_FIELD = 7;

/**
 * Whether an encoded sessiontrack.v1.Event may hold a value some built-in detector
 * finds. Looks at the bytes of every top-level field but the ids, without decoding.
 * Malformed bytes count as a candidate (decoding will then report them).
 */
export function mayContainSensitiveData(bytes: Uint8Array): boolean {
  const buffer = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
  const length = buffer.length;
  let pos = 0;
  let scanFrom = -1;
  while (pos < length) {
    const tagStart = pos;
    let tag = 0;
    let shift = 0;
    let byte: number;
    do {
      if (pos >= length || shift > 28) return true;
      byte = buffer[pos++]!;
      tag |= (byte & 0x7f) << shift;
      shift += 7;
    } while (byte & 0x80);
    const field = tag >>> 3;
    const wireType = tag & 7;
    if (field >= FIRST_SCANNED_FIELD) {
      // Everything from the first scanned field on is looked at in one pass: the scanned
      // fields (labels, payload) come last in an encoded Event.
      scanFrom = tagStart;
      break;
    }
    switch (wireType) {
      case 0:
        while (pos < length && buffer[pos]! & 0x80) pos += 1;
        pos += 1;
        break;
      case 1:
        pos += 8;
        break;
      case 2: {
        let size = 0;
        shift = 0;
        do {
          if (pos >= length || shift > 28) return true;
          byte = buffer[pos++]!;
          size += (byte & 0x7f) * (1 << shift);
          shift += 7;
        } while (byte & 0x80);
        pos += size;
        break;
      }
      case 5:
        pos += 4;
        break;
      default:
        return true;
    }
  }
  if (pos > length) return true;
  if (scanFrom < 0) return false;
  return scanBytes(buffer, scanFrom, length, false) !== 0;
}

// Byte classes for the scan loop.
const OTHER = 0;
const DIGIT = 1;
const SEPARATOR = 2; // space ( ) /  — phone separators
const DOT = 3;
const DASH = 4;
const COLON = 5;
const EQUALS = 6;
const UNDERSCORE = 7;
const AT = 8;
const LETTER_TRIGGER = 9; // letters that anchor cores: J (of eyJ), A, b, B, p, P
const CLASS = new Uint8Array(256);
for (let c = 48; c <= 57; c += 1) CLASS[c] = DIGIT;
for (const c of " ()/") CLASS[c.charCodeAt(0)] = SEPARATOR;
CLASS[46] = DOT;
CLASS[45] = DASH;
CLASS[58] = COLON;
CLASS[61] = EQUALS;
CLASS[95] = UNDERSCORE;
CLASS[64] = AT;
// 'J' rather than the far more frequent 'e' anchors "eyJ".
for (const c of "JAbBpP") CLASS[c.charCodeAt(0)] = LETTER_TRIGGER;

const HEX = new Uint8Array(256);
for (const c of "0123456789abcdefABCDEF") HEX[c.charCodeAt(0)] = 1;
const KEY_CHAR = new Uint8Array(256);
for (const c of "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")
  KEY_CHAR[c.charCodeAt(0)] = 1;

/** Whether `word` (lower-case ASCII) is at `at`, ignoring ASCII case. */
function wordAt(buffer: Buffer, at: number, word: string, end: number): boolean {
  if (at < 0 || at + word.length > end) return false;
  for (let j = 0; j < word.length; j += 1) {
    if ((buffer[at + j]! | 0x20) !== word.charCodeAt(j)) return false;
  }
  return true;
}

/** Whether `word` is at `at`, case-sensitively. */
function exactAt(buffer: Buffer, at: number, word: string, end: number): boolean {
  if (at < 0 || at + word.length > end) return false;
  for (let j = 0; j < word.length; j += 1) if (buffer[at + j] !== word.charCodeAt(j)) return false;
  return true;
}

const isBlank = (c: number | undefined): boolean => c === 32 || c === 9;

/** Counts key characters from `at`, up to `limit`. */
function keyRun(buffer: Buffer, at: number, end: number, limit: number): number {
  let n = 0;
  while (at + n < end && n < limit && KEY_CHAR[buffer[at + n]!] === 1) n += 1;
  return n;
}

const KEY_VALUE_NAMES = ["key", "token", "secret", "password", "passwd", "passphrase", "pwd"];

/** `<name>["']?[ \t]*` then the [:=] at `i`: a key=value whose name names a secret. */
function secretNameBefore(buffer: Buffer, from: number, i: number): boolean {
  let j = i - 1;
  while (j >= from && isBlank(buffer[j])) j -= 1;
  if (j >= from && (buffer[j] === 34 || buffer[j] === 39)) j -= 1;
  // Every name ends in y, n, t, d or e (key, token, secret, password/passwd/pwd, passphrase).
  const last = (buffer[j] ?? 0) | 0x20;
  if (last !== 121 && last !== 110 && last !== 116 && last !== 100 && last !== 101) return false;
  for (const name of KEY_VALUE_NAMES) if (wordAt(buffer, j - name.length + 1, name, i)) return true;
  return false;
}

/** `password[ \t]+is[ \t]` at `i`. */
function passwordIsAt(buffer: Buffer, i: number, end: number): boolean {
  if (!wordAt(buffer, i, "password", end)) return false;
  let j = i + 8;
  if (!isBlank(buffer[j])) return false;
  while (j < end && isBlank(buffer[j])) j += 1;
  return wordAt(buffer, j, "is", end) && isBlank(buffer[j + 2]);
}

/**
 * The cores anchored on byte `i` (of a class other than OTHER and DIGIT): '@', IPv6
 * colons, key=value names, and the fixed prefixes of keys, JWTs and private key blocks.
 * Kept out of scanBytes' loop, which stays small and fast for the common bytes.
 */
function coresAt(buffer: Buffer, i: number, from: number, end: number, kind: number): number {
  const c = buffer[i]!;
  switch (kind) {
    case DOT:
      return exactAt(buffer, i - 2, "SG", end) ? CORE_KEY_PREFIX : 0;
    case DASH: {
      let found = exactAt(buffer, i, "-----BEGIN", end) ? CORE_PRIVATE_KEY : 0;
      if (
        exactAt(buffer, i - 2, "sk", end) ||
        exactAt(buffer, i - 4, "xox", end) ||
        exactAt(buffer, i - 5, "glpat", end)
      ) {
        found |= CORE_KEY_PREFIX;
      }
      return found;
    }
    case AT:
      return CORE_AT;
    case COLON: {
      let found = 0;
      // IPv6: h:h{0,4}: or ::h
      if (i > from && HEX[buffer[i - 1]!] === 1) {
        let j = i + 1;
        while (j < end && j <= i + 5 && HEX[buffer[j]!] === 1) j += 1;
        if (buffer[j] === 58 && j < end) found |= CORE_IPV6;
      }
      if (buffer[i + 1] === 58 && i + 2 < end && HEX[buffer[i + 2]!] === 1) found |= CORE_IPV6;
      if (secretNameBefore(buffer, from, i)) found |= CORE_KEY_VALUE;
      return found;
    }
    case EQUALS:
      return secretNameBefore(buffer, from, i) ? CORE_KEY_VALUE : 0;
    case UNDERSCORE:
      return (exactAt(buffer, i - 3, "gh", end) && "pousr".includes(String.fromCharCode(buffer[i - 1]!))) ||
        exactAt(buffer, i - 6, "github", end) ||
        exactAt(buffer, i - 3, "npm", end) ||
        exactAt(buffer, i - 2, "hf", end) ||
        ((exactAt(buffer, i - 2, "sk", end) || exactAt(buffer, i - 2, "rk", end)) &&
          (exactAt(buffer, i + 1, "live_", end) || exactAt(buffer, i + 1, "test_", end))) ||
        (exactAt(buffer, i - 2, "st", end) && keyRun(buffer, i + 1, end, 43) === 43)
        ? CORE_KEY_PREFIX
        : 0;
    case LETTER_TRIGGER:
      if (c === 74) {
        return i - 2 >= from && buffer[i - 1] === 121 && buffer[i - 2] === 101 ? CORE_JWT : 0;
      }
      if (c === 65) {
        return exactAt(buffer, i, "AKIA", end) ||
          exactAt(buffer, i, "ASIA", end) ||
          exactAt(buffer, i, "ABIA", end) ||
          exactAt(buffer, i, "ACCA", end) ||
          exactAt(buffer, i, "AIza", end)
          ? CORE_KEY_PREFIX
          : 0;
      }
      if (c === 98 || c === 66) {
        return (wordAt(buffer, i, "bearer", end) && isBlank(buffer[i + 6])) ||
          (wordAt(buffer, i, "basic", end) && isBlank(buffer[i + 5]))
          ? CORE_BEARER_BASIC
          : 0;
      }
      return passwordIsAt(buffer, i, end) ? CORE_PASSWORD_IS : 0;
    default:
      return 0;
  }
}

// Letters that may end a prefix before '-': sk-, xox[abposr]-, glpat-.
const BEFORE_DASH = new Uint8Array(256);
for (const c of "kabposrt") BEFORE_DASH[c.charCodeAt(0)] = 1;

/**
 * A quick look at the neighbours of byte `i` ruling out most bytes before the call to
 * {@link coresAt}: each condition is implied by every core coresAt can report there.
 */
function mayAnchorCore(buffer: Buffer, i: number, kind: number): boolean {
  const c = buffer[i]!;
  switch (kind) {
    case DOT:
      return buffer[i - 1] === 71; // SG.
    case DASH:
      return buffer[i + 1] === 45 || BEFORE_DASH[buffer[i - 1] ?? 0] === 1;
    case LETTER_TRIGGER: {
      const next = (buffer[i + 1] ?? 0) | 0x20;
      if (c === 74) return true; // eyJ
      if (c === 65) return next !== 0x20 && "ksbci".includes(String.fromCharCode(next)); // AKIA ASIA ABIA ACCA AIza
      if (c === 98 || c === 66) return next === 101 || next === 97; // bearer, basic
      return next === 97 && ((buffer[i + 2] ?? 0) | 0x20) === 115; // password
    }
    default:
      return true;
  }
}

/**
 * One pass over the bytes that implements every core of the detectors (see the header):
 * digit runs for phones and cards and dotted quads here, the rest in {@link coresAt}.
 * Returns the CORE_* bits found; with `all` false, stops at the first.
 */
function scanBytes(buffer: Buffer, from: number, end: number, all: boolean): number {
  let found = 0;
  let digits = 0; // digits in the current run of digits and phone separators
  let separators = 0; // consecutive separators since the last digit
  let dottedGroups = 0; // "<digits>." groups in a row, for IPv4
  let previousDigit = false;
  for (let i = from; i < end; i += 1) {
    const kind = CLASS[buffer[i]!]!;
    if (kind === OTHER) {
      digits = 0;
      dottedGroups = 0;
      previousDigit = false;
      continue;
    }
    // A space outside a digit run changes nothing (digits === 0 implies !previousDigit).
    if (kind === SEPARATOR && digits === 0 && dottedGroups === 0) continue;
    if (kind === DIGIT) {
      digits += 1;
      if (digits >= 8) found |= CORE_DIGITS;
      if (dottedGroups >= 3) found |= CORE_IPV4;
      if (found !== 0 && !all) return found;
      separators = 0;
      previousDigit = true;
      continue;
    }
    const wasDigit = previousDigit;
    previousDigit = false;
    if (kind === SEPARATOR || kind === DOT || kind === DASH) {
      separators += 1;
      if (separators > 3) digits = 0;
      dottedGroups = kind === DOT && wasDigit ? dottedGroups + 1 : 0;
      if (kind !== SEPARATOR && mayAnchorCore(buffer, i, kind)) {
        found |= coresAt(buffer, i, from, end, kind);
        if (found !== 0 && !all) return found;
      }
      continue;
    }
    if (mayAnchorCore(buffer, i, kind)) {
      found |= coresAt(buffer, i, from, end, kind);
      if (found !== 0 && !all) return found;
    }
    // A letter or other punctuation ends a digit run.
    digits = 0;
    separators = 0;
    dottedGroups = 0;
  }
  return found;
}

/**
 * Whether a decoded string may hold a value some built-in detector finds: the same scan
 * over the string's UTF-8 bytes.
 */
export function textMayContainSensitiveData(text: string): boolean {
  const bytes = Buffer.from(text, "utf8");
  return scanBytes(bytes, 0, bytes.length, false) !== 0;
}

/** Every core (CORE_* bits) the string's UTF-8 bytes contain. */
export function textCores(text: string): number {
  const bytes = Buffer.from(text, "utf8");
  return scanBytes(bytes, 0, bytes.length, true);
}
