// The archive object: many events of one tenant, in sections (one per session), each
// section compressed then encrypted (AES-256-GCM) under its session's data key, the
// whole object sealed by a SHA-256 trailer that every read verifies first.
//
//   "STA" 0x01 │ u32 BE header length │ header JSON │ section payloads │ SHA-256 of all before
//
// A section payload is ciphertext ‖ 16-byte GCM tag; its plaintext is the compressed
// concatenation of (u32 BE length, StoredEvent bytes). Each section's GCM additional
// data binds the format version, tenant, section id, session, key id and counts, so
// editing the header is detected even if someone recomputes the trailer.
import { createCipheriv, createDecipheriv, createHash, randomBytes } from "node:crypto";
import {
  brotliCompressSync,
  brotliDecompressSync,
  constants,
  deflateRawSync,
  inflateRawSync,
} from "node:zlib";

import { DataCorruptionError } from "@sessiontrack/errors";

import { DEFLATE_DICTIONARY_V1 } from "./dictionary.js";
import type { DataKey } from "./keys.js";

export const FORMAT_VERSION = 1;
const MAGIC = Buffer.from([0x53, 0x54, 0x41, FORMAT_VERSION]); // "STA" + version
const TAG_BYTES = 16;
const CHECKSUM_BYTES = 32;
const MAX_HEADER_BYTES = 16 * 1024 * 1024;

/** How a section's plaintext is compressed. */
export type Codec = "deflate-d1" | "br" | "deflate";

/** One section's description in the object header. */
export interface SectionHeader {
  /** Unique within the object; catalogs point at (object, section id). */
  id: string;
  /** Reference (hashed id) of the session whose events the section holds. */
  session: string;
  /** Id of the data key that encrypts it. */
  keyId: string;
  events: number;
  codec: Codec;
  /** Plaintext bytes before compression. */
  rawBytes: number;
  /** base64 GCM nonce. */
  iv: string;
  /** Payload bytes (ciphertext + tag) in the object. */
  length: number;
}

/** The object header (JSON, stored in the clear, authenticated through each section's AAD). */
export interface ObjectHeader {
  format: number;
  tenant: string;
  /** Milliseconds since the epoch when the object was first written. */
  createdAt: number;
  events: number;
  sections: SectionHeader[];
}

/** A section ready to be placed in an object. */
export interface SealedSection {
  header: SectionHeader;
  payload: Buffer;
}

/** An object whose checksum has been verified. */
export interface ParsedObject {
  header: ObjectHeader;
  /** Payload bytes of a section, by id. */
  payload(sectionId: string): Buffer;
}

function sectionAad(tenant: string, section: SectionHeader): Buffer {
  return Buffer.from(
    `sessiontrack-archive\0${JSON.stringify([
      FORMAT_VERSION,
      tenant,
      section.id,
      section.session,
      section.keyId,
      section.events,
      section.codec,
      section.rawBytes,
    ])}`,
    "utf8",
  );
}

function compress(codec: Codec, data: Buffer): Buffer {
  switch (codec) {
    case "deflate-d1":
      return deflateRawSync(data, { level: 9, dictionary: DEFLATE_DICTIONARY_V1 });
    case "deflate":
      return deflateRawSync(data, { level: 9 });
    case "br":
      return brotliCompressSync(data, {
        params: {
          [constants.BROTLI_PARAM_QUALITY]: 9,
          [constants.BROTLI_PARAM_MODE]: constants.BROTLI_MODE_TEXT,
          // A window sized to the input: the default 4 MiB window makes small sections slow.
          [constants.BROTLI_PARAM_LGWIN]: Math.min(24, Math.max(16, Math.ceil(Math.log2(data.length + 1)))),
        },
      });
  }
}

function decompress(codec: Codec, data: Buffer, maxBytes: number): Buffer {
  const maxOutputLength = Math.max(1, maxBytes);
  if (codec === "deflate-d1")
    return inflateRawSync(data, { maxOutputLength, dictionary: DEFLATE_DICTIONARY_V1 });
  if (codec === "deflate") return inflateRawSync(data, { maxOutputLength });
  if (codec === "br") return brotliDecompressSync(data, { maxOutputLength });
  throw new Error(`unknown codec "${String(codec)}"`);
}

/** Compresses and encrypts one session's events (encoded StoredEvents) into a section. */
export function sealSection(
  tenant: string,
  session: string,
  dek: DataKey,
  events: readonly Buffer[],
  codec: Codec,
): SealedSection {
  const framed: Buffer[] = [];
  for (const event of events) {
    const length = Buffer.allocUnsafe(4);
    length.writeUInt32BE(event.length);
    framed.push(length, event);
  }
  const plain = Buffer.concat(framed);
  const compressed = compress(codec, plain);
  const iv = randomBytes(12);
  const header: SectionHeader = {
    id: randomBytes(6).toString("hex"),
    session,
    keyId: dek.id,
    events: events.length,
    codec,
    rawBytes: plain.length,
    iv: iv.toString("base64"),
    length: compressed.length + TAG_BYTES,
  };
  const cipher = createCipheriv("aes-256-gcm", dek.key, iv);
  cipher.setAAD(sectionAad(tenant, header));
  const payload = Buffer.concat([cipher.update(compressed), cipher.final(), cipher.getAuthTag()]);
  return { header, payload };
}

/** Lays sections out as one object with its SHA-256 trailer. */
export function assembleObject(
  tenant: string,
  createdAt: number,
  sections: ReadonlyArray<{ header: SectionHeader; payload: Buffer }>,
): Buffer {
  const header: ObjectHeader = {
    format: FORMAT_VERSION,
    tenant,
    createdAt,
    events: sections.reduce((sum, section) => sum + section.header.events, 0),
    sections: sections.map((section) => section.header),
  };
  const headerBytes = Buffer.from(JSON.stringify(header), "utf8");
  const length = Buffer.allocUnsafe(4);
  length.writeUInt32BE(headerBytes.length);
  const body = Buffer.concat([MAGIC, length, headerBytes, ...sections.map((section) => section.payload)]);
  return Buffer.concat([body, createHash("sha256").update(body).digest()]);
}

/** Verifies an object's trailer and parses its header; DataCorruptionError names `where`. */
export function parseObject(bytes: Buffer, where: string): ParsedObject {
  const fail = (reason: string): never => {
    throw new DataCorruptionError(`${where}: ${reason}`);
  };
  if (bytes.length < MAGIC.length + 4 + CHECKSUM_BYTES) fail("truncated object");
  const body = bytes.subarray(0, bytes.length - CHECKSUM_BYTES);
  const expected = bytes.subarray(bytes.length - CHECKSUM_BYTES);
  if (!createHash("sha256").update(body).digest().equals(expected)) fail("checksum mismatch");
  if (!body.subarray(0, 3).equals(MAGIC.subarray(0, 3))) fail("not a SessionTrack archive object");
  if (body[3] !== FORMAT_VERSION) fail(`unsupported format version ${body[3]}`);
  const headerLength = body.readUInt32BE(4);
  if (headerLength > MAX_HEADER_BYTES || 8 + headerLength > body.length) fail("header length out of range");
  let header: ObjectHeader;
  try {
    header = JSON.parse(body.subarray(8, 8 + headerLength).toString("utf8")) as ObjectHeader;
  } catch {
    return fail("header is not valid JSON");
  }
  if (header.format !== FORMAT_VERSION || !Array.isArray(header.sections)) fail("malformed header");
  const offsets = new Map<string, [number, number]>();
  let offset = 8 + headerLength;
  for (const section of header.sections) {
    offsets.set(section.id, [offset, offset + section.length]);
    offset += section.length;
  }
  if (offset !== body.length) fail("section lengths do not add up to the object size");
  return {
    header,
    payload(sectionId: string): Buffer {
      const range = offsets.get(sectionId);
      if (range === undefined) return fail(`section ${sectionId} is not in the object`);
      return body.subarray(range[0], range[1]);
    },
  };
}

/**
 * Decrypts, authenticates and decompresses one section, returning its encoded
 * StoredEvents. DataCorruptionError ("authentication failed") when the key, header or
 * payload does not match.
 */
export function openSection(
  object: ParsedObject,
  section: SectionHeader,
  dek: DataKey,
  where: string,
): Buffer[] {
  const payload = object.payload(section.id);
  let compressed: Buffer;
  try {
    const decipher = createDecipheriv("aes-256-gcm", dek.key, Buffer.from(section.iv, "base64"));
    decipher.setAAD(sectionAad(object.header.tenant, section));
    decipher.setAuthTag(payload.subarray(payload.length - TAG_BYTES));
    compressed = Buffer.concat([
      decipher.update(payload.subarray(0, payload.length - TAG_BYTES)),
      decipher.final(),
    ]);
  } catch (error) {
    throw new DataCorruptionError(`${where}: section ${section.id}: authentication failed`, { cause: error });
  }
  let plain: Buffer;
  try {
    plain = decompress(section.codec, compressed, section.rawBytes);
  } catch (error) {
    throw new DataCorruptionError(`${where}: section ${section.id}: cannot be decompressed`, {
      cause: error,
    });
  }
  const events: Buffer[] = [];
  let position = 0;
  while (position < plain.length) {
    if (position + 4 > plain.length) break;
    const length = plain.readUInt32BE(position);
    position += 4;
    if (position + length > plain.length) break;
    events.push(plain.subarray(position, position + length));
    position += length;
  }
  if (position !== plain.length || events.length !== section.events) {
    throw new DataCorruptionError(`${where}: section ${section.id}: event framing does not match its header`);
  }
  return events;
}

/**
 * The object without some sections (for erasure): the remaining sections' encrypted
 * bytes are copied unchanged, so nothing is decrypted. undefined when none remain.
 */
export function withoutSections(object: ParsedObject, drop: ReadonlySet<string>): Buffer | undefined {
  const keep = object.header.sections.filter((section) => !drop.has(section.id));
  if (keep.length === 0) return undefined;
  return assembleObject(
    object.header.tenant,
    object.header.createdAt,
    keep.map((header) => ({ header, payload: object.payload(header.id) })),
  );
}
