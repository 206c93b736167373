import {
  BinaryReader,
  BinaryWriter,
  Event,
  IngestServiceService,
  StreamResponse,
  WireType,
} from "@sessiontrack/proto";

/** One numbered batch of already-encoded events, as sent on `IngestService.Stream`. */
export interface EncodedBatch {
  batchSeq: number;
  frames: readonly Uint8Array[];
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
  const writer = new BinaryWriter();
  if (batch.batchSeq !== 0) writer.uint32(8).uint64(batch.batchSeq);
  for (const frame of batch.frames) writer.uint32(18).bytes(frame);
  const bytes = writer.finish();
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** Decodes a StreamResponse. */
export function deserializeStreamResponse(bytes: Buffer): StreamResponse {
  return StreamResponse.decode(bytes);
}

/** Encodes one event, normalizing missing fields to their proto3 defaults first. */
export function encodeEvent(event: unknown): Uint8Array {
  return Event.encode(Event.fromPartial(event as Event)).finish();
}

/** Reads `event_id` (field 1) out of an encoded Event without decoding the rest; "" if absent. */
export function eventIdOf(frame: Uint8Array): string {
  const reader = new BinaryReader(frame);
  while (reader.pos < reader.len) {
    const [field, wireType] = reader.tag();
    if (field === 1 && wireType === WireType.LengthDelimited) return reader.string();
    reader.skip(wireType, field);
  }
  return "";
}
