import { InvalidEventError } from "@sessiontrack/errors";
import { BinaryReader, Event, Role, StoredEvent, WireType } from "@sessiontrack/proto";

import type { IndexDocument } from "./backend.js";

const strictUtf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
const decodeStrictUtf8 = (bytes: Uint8Array): string => strictUtf8.decode(bytes);

/** The canonical form of one label in both backends: `key=value`, each URI-encoded. */
export function labelToken(key: string, value: string): string {
  return `${encodeURIComponent(key)}=${encodeURIComponent(value)}`;
}

/** Every string inside a Struct (decoded by ts-proto as plain JSON values). */
function collectStrings(value: unknown, out: string[]): void {
  if (typeof value === "string") out.push(value);
  else if (Array.isArray(value)) for (const child of value) collectStrings(child, out);
  else if (value !== null && typeof value === "object") {
    for (const child of Object.values(value)) collectStrings(child, out);
  }
}

/** The searchable text of an event: what a person would look for in a transcript. */
export function searchableText(event: Event): string {
  const payload = event.payload;
  const out: string[] = [];
  switch (payload?.$case) {
    case "message":
      for (const part of payload.value.parts) {
        const kind = part.kind;
        if (kind?.$case === "text") out.push(kind.value.text);
        else if (kind?.$case === "toolCall") out.push(kind.value.name, kind.value.argumentsJson);
        else if (kind?.$case === "toolResult") out.push(kind.value.name, kind.value.content);
        else if (kind?.$case === "attachment") out.push(kind.value.name);
      }
      break;
    case "feedback":
      out.push(payload.value.comment);
      break;
    case "custom":
      out.push(payload.value.name);
      collectStrings(payload.value.data ?? {}, out);
      break;
    default:
      break;
  }
  return out.filter((text) => text !== "").join("\n");
}

function decodeStrict<T>(decode: (reader: BinaryReader) => T, bytes: Uint8Array): T {
  return decode(new BinaryReader(bytes, decodeStrictUtf8));
}

function reason(error: unknown): string {
  if (error instanceof TypeError) return "a string field is not valid UTF-8";
  return error instanceof Error ? error.message : String(error);
}

/**
 * Turns one StoredEvent, as received, into an index document. The bytes are kept as-is
 * so GetSession returns exactly what was indexed. Throws InvalidEventError naming the
 * event (by its index in the batch) and the field.
 */
export function documentFromStoredEvent(bytes: Uint8Array, eventIndex: number): IndexDocument {
  let stored: StoredEvent;
  try {
    stored = decodeStrict((reader) => StoredEvent.decode(reader), bytes);
  } catch (error) {
    throw new InvalidEventError(
      `not a valid sessiontrack.v1.StoredEvent: ${reason(error)}`,
      { eventIndex },
      { cause: error },
    );
  }
  const fail = (field: string, message: string): never => {
    throw new InvalidEventError(message, { eventIndex, field });
  };
  if (stored.tenant === "") fail("tenant", "is required");
  if (stored.eventId === "") fail("event_id", "is required");
  if (stored.sessionId === "") fail("session_id", "is required");
  let event: Event;
  try {
    event = decodeStrict((reader) => Event.decode(reader), stored.event);
  } catch (error) {
    throw new InvalidEventError(
      `not a valid sessiontrack.v1.Event: ${reason(error)}`,
      { eventIndex, field: "event" },
      { cause: error },
    );
  }
  if (event.eventId !== stored.eventId) {
    fail("event.event_id", `is "${event.eventId}" but the StoredEvent says "${stored.eventId}"`);
  }
  if (event.sessionId !== stored.sessionId) {
    fail("event.session_id", `is "${event.sessionId}" but the StoredEvent says "${stored.sessionId}"`);
  }
  const time = event.time ?? stored.receivedAt;
  if (time === undefined) fail("event.time", "is required (and the StoredEvent has no received_at)");
  const message = event.payload?.$case === "message" ? event.payload.value : undefined;
  return {
    tenant: stored.tenant,
    eventId: stored.eventId,
    sessionId: stored.sessionId,
    seq: stored.seq,
    timeMs: time!.getTime(),
    botId: event.botId,
    userId: event.userId,
    model: message?.model ?? "",
    provider: message?.provider ?? "",
    role: message?.role ?? Role.ROLE_UNSPECIFIED,
    labels: Object.entries(event.labels).map(([key, value]) => labelToken(key, value)),
    text: searchableText(event),
    stored: bytes,
  };
}

/**
 * Splits an encoded IndexEventsRequest into its StoredEvents' raw bytes without
 * re-encoding them, so they are stored byte for byte.
 */
export function splitIndexEventsRequest(bytes: Uint8Array): Uint8Array[] {
  const events: Uint8Array[] = [];
  try {
    const reader = new BinaryReader(bytes);
    while (reader.pos < reader.len) {
      const [field, wireType] = reader.tag();
      if (field === 1 && wireType === WireType.LengthDelimited) events.push(reader.bytes());
      else if (field === 1) throw new Error(`field 1 (events) has wire type ${wireType}, expected 2`);
      else reader.skip(wireType, field);
    }
  } catch (error) {
    throw new InvalidEventError(
      `request is not a valid sessiontrack.v1.IndexEventsRequest: ${reason(error)}`,
      {},
      { cause: error },
    );
  }
  return events;
}

/** Tag of field 1 (length-delimited) followed by the varint length: one repeated message's prefix. */
function fieldOnePrefix(length: number): Uint8Array {
  const out = [(1 << 3) | 2];
  let rest = length;
  while (rest > 0x7f) {
    out.push((rest & 0x7f) | 0x80);
    rest = Math.floor(rest / 128);
  }
  out.push(rest);
  return Uint8Array.from(out);
}

/** Encodes a GetSessionResponse from StoredEvent bytes, copying each one unchanged. */
export function encodeGetSessionResponse(events: readonly Uint8Array[]): Buffer {
  const chunks: Uint8Array[] = [];
  for (const event of events) chunks.push(fieldOnePrefix(event.length), event);
  return Buffer.concat(chunks);
}
