import { InvalidEventError } from "@sessiontrack/errors";
import { Event, StoredEvent } from "@sessiontrack/proto";

/** A tenant name: a DNS label, as in the tenants file. */
export const TENANT_NAME = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
const MAX_ID_LENGTH = 256;

/** An event accepted for writing: its bytes exactly as received, plus what the archive indexes. */
export interface IncomingEvent {
  bytes: Buffer;
  tenant: string;
  eventId: string;
  sessionId: string;
  seq: number;
  userId: string;
}

function checkId(value: string, field: string, index: number): void {
  if (value === "") throw new InvalidEventError("is required", { eventIndex: index, field });
  if (value.length > MAX_ID_LENGTH) {
    throw new InvalidEventError(`is longer than ${MAX_ID_LENGTH} characters`, { eventIndex: index, field });
  }
}

/** Decodes and checks one StoredEvent of a WriteBatch; InvalidEventError names the event and field. */
export function decodeIncoming(bytes: Buffer, index: number): IncomingEvent {
  let stored: StoredEvent;
  try {
    stored = StoredEvent.decode(bytes);
  } catch (error) {
    throw new InvalidEventError(
      `is not a valid sessiontrack.v1.StoredEvent (${(error as Error).message})`,
      { eventIndex: index },
      { cause: error },
    );
  }
  if (!TENANT_NAME.test(stored.tenant)) {
    throw new InvalidEventError(`"${stored.tenant}" is not a tenant name (a DNS label)`, {
      eventIndex: index,
      field: "tenant",
    });
  }
  checkId(stored.eventId, "event_id", index);
  checkId(stored.sessionId, "session_id", index);
  if (stored.seq < 1) throw new InvalidEventError("must be at least 1", { eventIndex: index, field: "seq" });
  if (stored.event.length === 0)
    throw new InvalidEventError("is empty: the encoded Event is required", {
      eventIndex: index,
      field: "event",
    });
  let event: Event;
  try {
    event = Event.decode(stored.event);
  } catch (error) {
    throw new InvalidEventError(
      `is not a valid sessiontrack.v1.Event (${(error as Error).message})`,
      { eventIndex: index, field: "event" },
      { cause: error },
    );
  }
  if (event.eventId !== stored.eventId || event.sessionId !== stored.sessionId) {
    throw new InvalidEventError("event_id and session_id must match the encoded Event's", {
      eventIndex: index,
      field: "event",
    });
  }
  return {
    bytes,
    tenant: stored.tenant,
    eventId: stored.eventId,
    sessionId: stored.sessionId,
    seq: stored.seq,
    userId: event.userId,
  };
}
