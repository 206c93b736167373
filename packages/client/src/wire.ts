import { BinaryReader, IngestServiceService, StreamResponse, WireType } from "@sessiontrack/proto";

/** One numbered batch of already-encoded events, as sent on `IngestService.Stream`. */
export interface EncodedBatch {
  batchSeq: number;
  frames: readonly Uint8Array[];
  /** `capture_overhead_pct` (field 3): the SDK's measured share of the bot's CPU, sent once per window. */
  overheadPct?: number;
}

/** gRPC method path of `IngestService.Stream`. */
export const STREAM_PATH = IngestServiceService.stream.path;
/** gRPC method path of `IngestService.WatchConfig`. */
export const WATCH_CONFIG_PATH = IngestServiceService.watchConfig.path;

/**
 * Serializes a StreamRequest from pre-encoded Event bytes. `repeated Event events = 2` is a
 * sequence of length-delimited fields, so a spooled event's bytes go on the wire unchanged
 * and no event is ever encoded twice.
 */
export function serializeEncodedBatch(batch: EncodedBatch): Buffer {
  const frames = batch.frames;
  const overheadPct = batch.overheadPct ?? 0;
  let total = batch.batchSeq !== 0 ? 1 + varintSize(batch.batchSeq) : 0;
  for (let i = 0; i < frames.length; i++) total += 1 + varintSize(frames[i]!.length) + frames[i]!.length;
  if (overheadPct !== 0) total += 9;
  const out = Buffer.allocUnsafe(total);
  let at = 0;
  if (batch.batchSeq !== 0) {
    out[at++] = 8;
    at = writeVarint(out, at, batch.batchSeq);
  }
  for (let i = 0; i < frames.length; i++) {
    const frame = frames[i]!;
    out[at++] = 18;
    at = writeVarint(out, at, frame.length);
    out.set(frame, at);
    at += frame.length;
  }
  if (overheadPct !== 0) {
    // `double capture_overhead_pct = 3`: tag (3 << 3) | 1 (64-bit), little-endian IEEE 754.
    out[at++] = 25;
    out.writeDoubleLE(overheadPct, at);
  }
  return out;
}

function varintSize(value: number): number {
  let size = 1;
  for (let v = value; v >= 0x80; v = Math.floor(v / 0x80)) size++;
  return size;
}

function writeVarint(out: Buffer, offset: number, value: number): number {
  let at = offset;
  let v = value;
  while (v >= 0x80) {
    out[at++] = (v % 0x80) | 0x80;
    v = Math.floor(v / 0x80);
  }
  out[at++] = v;
  return at;
}

/** Decodes a StreamResponse. */
export function deserializeStreamResponse(bytes: Buffer): StreamResponse {
  return StreamResponse.decode(bytes);
}

/** Reads `event_id` (field 1) out of an encoded Event without decoding the rest; "" if absent. */
export function eventIdOf(frame: Uint8Array): string {
  // Fast path: the SDK's encoder writes event_id first with a one-byte length.
  if (frame.length > 2 && frame[0] === 10 && frame[1]! < 0x80 && frame[1]! + 2 <= frame.length) {
    return Buffer.from(frame.buffer, frame.byteOffset + 2, frame[1]).toString("utf8");
  }
  const reader = new BinaryReader(frame);
  while (reader.pos < reader.len) {
    const [field, wireType] = reader.tag();
    if (field === 1 && wireType === WireType.LengthDelimited) return reader.string();
    reader.skip(wireType, field);
  }
  return "";
}
