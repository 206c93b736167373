import { InvalidEventError } from "@sessiontrack/errors";
import { BinaryReader, Event, WireType } from "@sessiontrack/proto";

const strictUtf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
const decodeStrictUtf8 = (bytes: Uint8Array): string => strictUtf8.decode(bytes);

/** A batch as it arrived: each event still in its encoded bytes. */
export interface RawBatch {
  /** StreamRequest.batch_seq; 0 for Append. */
  batchSeq: number;
  events: Buffer[];
  /**
   * capture_overhead_pct as sent: 0 when absent (no measurement), NaN when the field has
   * the wrong wire type, so that the report is refused and counted but the batch is not.
   */
  captureOverheadPct: number;
}

function reason(error: unknown): string {
  if (error instanceof TypeError && /encoded data was not valid|invalid|decode/i.test(error.message)) {
    return "a string field is not valid UTF-8";
  }
  return error instanceof Error ? error.message : String(error);
}

/**
 * Splits an encoded AppendRequest (events = field 1, capture_overhead_pct = 2) or
 * StreamRequest (batch_seq = field 1, events = field 2, capture_overhead_pct = 3) into
 * its events' raw bytes, without decoding the events.
 * Keeping the bytes lets ingest store exactly what the client sent and report which
 * event of a batch is malformed.
 */
export function decodeBatchEnvelope(bytes: Uint8Array, kind: "AppendRequest" | "StreamRequest"): RawBatch {
  const eventsField = kind === "AppendRequest" ? 1 : 2;
  const overheadField = kind === "AppendRequest" ? 2 : 3;
  const events: Buffer[] = [];
  let batchSeq = 0;
  let captureOverheadPct = 0;
  try {
    const reader = new BinaryReader(bytes);
    while (reader.pos < reader.len) {
      const [field, wireType] = reader.tag();
      if (field === eventsField && wireType === WireType.LengthDelimited) {
        const event = reader.bytes();
        events.push(Buffer.from(event.buffer, event.byteOffset, event.byteLength));
      } else if (kind === "StreamRequest" && field === 1 && wireType === WireType.Varint) {
        const value = BigInt(reader.uint64());
        if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw new Error("batch_seq is larger than 2^53-1");
        batchSeq = Number(value);
      } else if (field === overheadField && wireType === WireType.Bit64) {
        captureOverheadPct = reader.double();
      } else if (field === overheadField) {
        // A malformed measurement is refused and counted, never a reason to refuse the events.
        captureOverheadPct = Number.NaN;
        reader.skip(wireType, field);
      } else if (field === eventsField || (kind === "StreamRequest" && field === 1)) {
        throw new Error(`field ${field} has wire type ${wireType}, which its declared type does not allow`);
      } else {
        reader.skip(wireType, field);
      }
    }
  } catch (error) {
    throw new InvalidEventError(
      `request is not a valid sessiontrack.v1.${kind}: ${reason(error)}`,
      {},
      { cause: error },
    );
  }
  return { batchSeq, events, captureOverheadPct };
}

/**
 * Decodes one event's bytes strictly: invalid UTF-8 in any string is an error (protobuf
 * readers usually substitute U+FFFD silently), as is a 64-bit value above 2^53-1.
 */
export function decodeEvent(bytes: Uint8Array, eventIndex: number): Event {
  try {
    return Event.decode(new BinaryReader(bytes, decodeStrictUtf8));
  } catch (error) {
    throw new InvalidEventError(
      `not a valid sessiontrack.v1.Event: ${reason(error)}`,
      { eventIndex },
      { cause: error },
    );
  }
}
