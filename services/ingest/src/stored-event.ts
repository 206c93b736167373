import { StoredEvent } from "@sessiontrack/proto";

/** StoredEvent's `bytes event = 6`, as a length-delimited field tag. */
const EVENT_FIELD_TAG = (6 << 3) | 2;

/** Everything of a StoredEvent but the event bytes. */
export type StoredEventHeader = Omit<StoredEvent, "event">;

/**
 * Encodes a StoredEvent whose event bytes are appended as-is: the header is encoded
 * (small), then field 6 is written by hand, so the ~1 KiB event is copied once rather
 * than through a growing protobuf writer. The result decodes as a normal StoredEvent.
 */
export function encodeStoredEvent(header: StoredEventHeader, event: Uint8Array): Buffer {
  const head = StoredEvent.encode({ ...header, event: Buffer.alloc(0) })
    .uint32(EVENT_FIELD_TAG)
    .uint32(event.length)
    .finish();
  return Buffer.concat([head, event], head.length + event.length);
}
