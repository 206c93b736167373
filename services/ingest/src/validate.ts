import { InvalidEventError } from "@sessiontrack/errors";
import { Role, type Event, type Message } from "@sessiontrack/proto";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[1-8][0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/i;
const ULID = /^[0-7][0-9A-HJKMNP-TV-Z]{25}$/i;
// eslint-disable-next-line no-control-regex -- control characters are exactly what is refused
const CONTROL = /[\u0000-\u001f\u007f]/;
const EARLIEST = Date.UTC(2000, 0, 1);
const MAX_CLOCK_SKEW_MS = 5 * 60 * 1000;
const MAX_ID_BYTES = 256;
const MAX_LABELS = 64;
const MAX_LABEL_KEY_BYTES = 128;
const MAX_LABEL_VALUE_BYTES = 1024;
const MAX_PARTS = 1000;

function fail(eventIndex: number, field: string, message: string): never {
  throw new InvalidEventError(message, { eventIndex, field });
}

function requireId(value: string, eventIndex: number, field: string): void {
  if (value === "") fail(eventIndex, field, "is required");
  if (Buffer.byteLength(value) > MAX_ID_BYTES)
    fail(eventIndex, field, `is longer than ${MAX_ID_BYTES} bytes`);
  if (CONTROL.test(value)) fail(eventIndex, field, "contains control characters");
}

function validateMessage(message: Message, eventIndex: number): void {
  if (message.role === Role.ROLE_UNSPECIFIED || !(message.role in Role)) {
    fail(eventIndex, "message.role", "must be one of ROLE_SYSTEM, ROLE_USER, ROLE_ASSISTANT, ROLE_TOOL");
  }
  if (message.role === Role.ROLE_ASSISTANT) {
    if (message.provider === "") fail(eventIndex, "message.provider", "is required on assistant messages");
    if (message.model === "") fail(eventIndex, "message.model", "is required on assistant messages");
  }
  if (message.parts.length === 0) fail(eventIndex, "message.parts", "must hold at least one part");
  if (message.parts.length > MAX_PARTS)
    fail(eventIndex, "message.parts", `holds more than ${MAX_PARTS} parts`);
  message.parts.forEach((part, partIndex) => {
    const where = `message.parts[${partIndex}]`;
    const kind = part.kind;
    if (kind === undefined)
      fail(eventIndex, where, "has no content (set text, tool_call, tool_result or attachment)");
    switch (kind.$case) {
      case "text":
        break;
      case "toolCall":
        if (kind.value.name === "") fail(eventIndex, `${where}.tool_call.name`, "is required");
        break;
      case "toolResult":
        if (kind.value.callId === "") fail(eventIndex, `${where}.tool_result.call_id`, "is required");
        break;
      case "attachment":
        if (kind.value.uri === "") fail(eventIndex, `${where}.attachment.uri`, "is required");
        if (kind.value.sha256 !== "" && !/^[0-9a-f]{64}$/.test(kind.value.sha256)) {
          fail(eventIndex, `${where}.attachment.sha256`, "must be 64 lower-case hex characters");
        }
        break;
    }
  });
}

/**
 * Checks one decoded event; throws InvalidEventError naming the event's index in its
 * batch and the offending field.
 */
export function validateEvent(event: Event, eventIndex: number, now: number = Date.now()): void {
  if (event.eventId === "") fail(eventIndex, "event_id", "is required");
  if (!UUID.test(event.eventId) && !ULID.test(event.eventId)) {
    fail(
      eventIndex,
      "event_id",
      `"${event.eventId.slice(0, 64)}" is neither a UUID (v7 preferred) nor a ULID`,
    );
  }
  requireId(event.sessionId, eventIndex, "session_id");
  if (event.seq < 1) fail(eventIndex, "seq", "must be at least 1 (sequence numbers start at 1)");
  if (event.time === undefined) fail(eventIndex, "time", "is required");
  const time = event.time.getTime();
  if (Number.isNaN(time) || time < EARLIEST) fail(eventIndex, "time", "is before 2000-01-01");
  if (time > now + MAX_CLOCK_SKEW_MS) fail(eventIndex, "time", "is more than 5 minutes in the future");
  requireId(event.botId, eventIndex, "bot_id");
  if (Buffer.byteLength(event.userId) > MAX_ID_BYTES)
    fail(eventIndex, "user_id", `is longer than ${MAX_ID_BYTES} bytes`);
  const labels = Object.entries(event.labels);
  if (labels.length > MAX_LABELS) fail(eventIndex, "labels", `has more than ${MAX_LABELS} entries`);
  for (const [key, value] of labels) {
    if (key === "" || Buffer.byteLength(key) > MAX_LABEL_KEY_BYTES) {
      fail(eventIndex, "labels", `key "${key.slice(0, 32)}" must be 1 to ${MAX_LABEL_KEY_BYTES} bytes`);
    }
    if (Buffer.byteLength(value) > MAX_LABEL_VALUE_BYTES) {
      fail(eventIndex, `labels.${key}`, `is longer than ${MAX_LABEL_VALUE_BYTES} bytes`);
    }
  }
  const payload = event.payload;
  if (payload === undefined) {
    fail(eventIndex, "payload", "is required (session_start, session_end, message, feedback or custom)");
  }
  switch (payload.$case) {
    case "message":
      validateMessage(payload.value, eventIndex);
      break;
    case "custom":
      if (payload.value.name === "") fail(eventIndex, "custom.name", "is required");
      break;
    case "feedback":
    case "sessionStart":
    case "sessionEnd":
      break;
  }
}
