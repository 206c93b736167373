import { InvalidEventError } from "@sessiontrack/errors";
import { Custom } from "@sessiontrack/proto";
import { writeUuidv7 } from "./uuidv7.js";

/** The first slab; it grows to fit a big event, and a full one is replaced, not copied. */
const SLAB_BYTES = 64 * 1024;
/** Ingest refuses events over 1 MiB; such an event would fail its batch forever. */
export const MAX_EVENT_BYTES = 1024 * 1024;
/** Strings shorter than this are copied by a JS loop (ASCII), longer ones by Buffer#write. */
const SHORT_STRING = 48;

type Obj = Record<string, unknown>;

function fail(path: string, what: string): never {
  throw new InvalidEventError(`event field ${path} ${what}`, { field: path });
}

function describe(value: unknown): string {
  return typeof value === "number" ? String(value) : typeof value;
}

function str(value: unknown, path: string): string {
  if (value === undefined || value === null) return "";
  if (typeof value !== "string") fail(path, `must be a string, got ${typeof value}`);
  return value;
}

function uint(value: unknown, path: string, max: number): number {
  if (value === undefined || value === null) return 0;
  if (typeof value !== "number" || !Number.isInteger(value) || value < 0 || value > max) {
    fail(path, `must be an integer in 0..${max}, got ${describe(value)}`);
  }
  return value;
}

function int32(value: unknown, path: string): number {
  if (value === undefined || value === null) return 0;
  if (typeof value !== "number" || !Number.isInteger(value) || value < -0x80000000 || value > 0x7fffffff) {
    fail(path, `must be a 32-bit integer, got ${describe(value)}`);
  }
  return value;
}

function obj(value: unknown, path: string): Obj | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== "object") fail(path, `must be an object, got ${typeof value}`);
  return value as Obj;
}

/**
 * Encodes `sessiontrack.v1.Event` straight into reused memory, field by field in the
 * order ts-proto's `Event.encode(Event.fromPartial(e))` writes them, so the bytes are the
 * same (tests check it) without fromPartial's copies or BinaryWriter's fork/join objects.
 * Frames are views into a shared slab: a full slab is left to the frames that use it and
 * a fresh one is started, so nothing is copied twice. Missing fields are proto3 defaults;
 * a field of the wrong type throws {@link InvalidEventError} naming it. `custom` payloads
 * (google.protobuf.Struct) go through ts-proto.
 */
export class EventEncoder {
  private buf = Buffer.allocUnsafe(SLAB_BYTES);
  private pos = 0;
  private start = 0;

  /**
   * Encodes one event. `eventId` undefined = a new UUIDv7 written in place; `prefix` holds
   * the already-encoded session_id field, `tail` the bot_id, user_id and labels fields
   * (see {@link fields}); `timeMs` is the event time in Unix ms, `idTimeMs` the moment
   * a new event id stands for (when the event was captured).
   */
  encode(
    eventId: unknown,
    sessionField: Uint8Array,
    seq: number,
    timeMs: number,
    tail: Uint8Array,
    payload: object,
    idTimeMs = timeMs,
  ): Buffer {
    this.start = this.pos;
    try {
      if (eventId === undefined || eventId === null) {
        this.ensure(38);
        this.buf[this.pos++] = 10;
        this.buf[this.pos++] = 36;
        writeUuidv7(this.buf, this.pos, idTimeMs);
        this.pos += 36;
      } else {
        this.stringField(1, str(eventId, "event_id"));
      }
      this.raw(sessionField);
      if (seq !== 0) {
        this.tag(3, 0);
        this.varint(seq);
      }
      this.timestamp(timeMs);
      this.raw(tail);
      this.payload(payload as Obj);
    } catch (err) {
      this.pos = this.start;
      throw err;
    }
    const size = this.pos - this.start;
    if (size > MAX_EVENT_BYTES) {
      this.pos = this.start;
      throw new InvalidEventError(`event of ${size} bytes exceeds the ${MAX_EVENT_BYTES}-byte limit`);
    }
    return this.buf.subarray(this.start, this.pos);
  }

  /** Encodes the given string/map fields as bytes to splice into events (session constants). */
  fields(write: (encoder: EventEncoder) => void): Buffer {
    this.start = this.pos;
    try {
      write(this);
    } catch (err) {
      this.pos = this.start;
      throw err;
    }
    const bytes = Buffer.from(this.buf.subarray(this.start, this.pos));
    this.pos = this.start;
    return bytes;
  }

  /** `field` as a proto3 string (skipped when empty). */
  stringField(field: number, value: string): void {
    if (value === "") return;
    this.tag(field, 2);
    this.lengthDelimitedString(value);
  }

  /** A `map<string, string>` field. */
  mapField(field: number, map: unknown, path: string): void {
    const m = obj(map, path);
    if (m === undefined) return;
    for (const key in m) {
      if (!Object.prototype.hasOwnProperty.call(m, key)) continue;
      const value = m[key];
      if (value === undefined) continue;
      this.tag(field, 2);
      const at = this.beginLength();
      this.stringField(1, key);
      // Like ts-proto's fromPartial, a non-string value is stringified.
      this.stringField(2, typeof value === "string" ? value : `${value as number}`);
      this.endLength(at);
    }
  }

  private payload(payload: Obj): void {
    const value = obj(payload["value"], "payload.value");
    if (value === undefined) return;
    switch (payload["$case"]) {
      case "message":
        this.tag(12, 2);
        this.message(value);
        break;
      case "sessionStart": {
        this.tag(10, 2);
        const at = this.beginLength();
        this.stringField(1, str(value["channel"], "session_start.channel"));
        this.stringField(2, str(value["locale"], "session_start.locale"));
        const groups = value["userGroups"];
        if (groups !== undefined && groups !== null) {
          if (!Array.isArray(groups)) fail("session_start.user_groups", "must be an array");
          for (let i = 0; i < groups.length; i++) {
            this.tag(3, 2);
            this.lengthDelimitedString(str(groups[i], `session_start.user_groups[${i}]`));
          }
        }
        this.mapField(4, value["attributes"], "session_start.attributes");
        this.endLength(at);
        break;
      }
      case "sessionEnd": {
        this.tag(11, 2);
        const at = this.beginLength();
        this.int32Field(1, int32(value["reason"], "session_end.reason"));
        this.uintField(2, uint(value["turnCount"], "session_end.turn_count", 0xffffffff));
        this.endLength(at);
        break;
      }
      case "feedback": {
        this.tag(13, 2);
        const at = this.beginLength();
        this.stringField(1, str(value["targetEventId"], "feedback.target_event_id"));
        this.int32Field(2, int32(value["score"], "feedback.score"));
        this.stringField(3, str(value["comment"], "feedback.comment"));
        this.stringField(4, str(value["kind"], "feedback.kind"));
        this.endLength(at);
        break;
      }
      case "custom":
        this.tag(14, 2);
        this.bytesValue(Custom.encode(Custom.fromPartial(value)).finish());
        break;
      default:
        fail("payload.$case", `is not a known payload kind: ${String(payload["$case"])}`);
    }
  }

  private message(m: Obj): void {
    const at = this.beginLength();
    this.stringField(1, str(m["turnId"], "message.turn_id"));
    this.uintField(2, uint(m["turnIndex"], "message.turn_index", 0xffffffff));
    this.int32Field(3, int32(m["role"], "message.role"));
    this.stringField(4, str(m["provider"], "message.provider"));
    this.stringField(5, str(m["model"], "message.model"));
    const parts = m["parts"];
    if (parts !== undefined && parts !== null) {
      if (!Array.isArray(parts)) fail("message.parts", "must be an array");
      for (let i = 0; i < parts.length; i++) {
        this.tag(6, 2);
        this.part(obj(parts[i], `message.parts[${i}]`), i);
      }
    }
    const usage = obj(m["usage"], "message.usage");
    if (usage !== undefined) {
      this.tag(7, 2);
      const u = this.beginLength();
      this.uintField(1, uint(usage["inputTokens"], "message.usage.input_tokens", 0xffffffff));
      this.uintField(2, uint(usage["outputTokens"], "message.usage.output_tokens", 0xffffffff));
      this.endLength(u);
    }
    this.stringField(8, str(m["finishReason"], "message.finish_reason"));
    this.uintField(9, uint(m["latencyMs"], "message.latency_ms", 0xffffffff));
    this.endLength(at);
  }

  private part(p: Obj | undefined, i: number): void {
    const at = this.beginLength();
    const kind = p === undefined ? undefined : obj(p["kind"], `message.parts[${i}].kind`);
    const v = kind === undefined ? undefined : obj(kind["value"], `message.parts[${i}].kind.value`);
    if (kind !== undefined && v !== undefined) {
      const path = `message.parts[${i}]`;
      switch (kind["$case"]) {
        case "text": {
          this.tag(1, 2);
          const t = this.beginLength();
          this.stringField(1, str(v["text"], `${path}.text`));
          this.endLength(t);
          break;
        }
        case "toolCall": {
          this.tag(2, 2);
          const t = this.beginLength();
          this.stringField(1, str(v["callId"], `${path}.tool_call.call_id`));
          this.stringField(2, str(v["name"], `${path}.tool_call.name`));
          this.stringField(3, str(v["argumentsJson"], `${path}.tool_call.arguments_json`));
          this.endLength(t);
          break;
        }
        case "toolResult": {
          this.tag(3, 2);
          const t = this.beginLength();
          this.stringField(1, str(v["callId"], `${path}.tool_result.call_id`));
          this.stringField(2, str(v["name"], `${path}.tool_result.name`));
          this.stringField(3, str(v["content"], `${path}.tool_result.content`));
          const isError = v["isError"];
          if (isError !== undefined && isError !== null && typeof isError !== "boolean") {
            fail(`${path}.tool_result.is_error`, "must be a boolean");
          }
          if (isError === true) {
            this.tag(4, 0);
            this.byte(1);
          }
          this.endLength(t);
          break;
        }
        case "attachment": {
          this.tag(4, 2);
          const t = this.beginLength();
          this.stringField(1, str(v["uri"], `${path}.attachment.uri`));
          this.stringField(2, str(v["mimeType"], `${path}.attachment.mime_type`));
          this.uintField(3, uint(v["sizeBytes"], `${path}.attachment.size_bytes`, Number.MAX_SAFE_INTEGER));
          this.stringField(4, str(v["sha256"], `${path}.attachment.sha256`));
          this.stringField(5, str(v["name"], `${path}.attachment.name`));
          this.endLength(t);
          break;
        }
        default:
          fail(`${path}.kind.$case`, `is not a known part kind: ${String(kind["$case"])}`);
      }
    }
    this.endLength(at);
  }

  private timestamp(ms: number): void {
    const seconds = Math.trunc(ms / 1000);
    const nanos = (ms % 1000) * 1_000_000;
    this.tag(4, 2);
    const at = this.beginLength();
    if (seconds !== 0) {
      this.tag(1, 0);
      this.signedVarint(seconds);
    }
    if (nanos !== 0) {
      this.tag(2, 0);
      this.signedVarint(nanos);
    }
    this.endLength(at);
  }

  private uintField(field: number, value: number): void {
    if (value === 0) return;
    this.tag(field, 0);
    this.varint(value);
  }

  private int32Field(field: number, value: number): void {
    if (value === 0) return;
    this.tag(field, 0);
    this.signedVarint(value);
  }

  private tag(field: number, wireType: number): void {
    this.varint((field << 3) | wireType);
  }

  private byte(b: number): void {
    this.ensure(1);
    this.buf[this.pos++] = b;
  }

  /** Unsigned varint of a non-negative safe integer. */
  private varint(value: number): void {
    this.ensure(10);
    const buf = this.buf;
    let pos = this.pos;
    let v = value;
    // Above 2^31 - 1 bit operations would truncate: divide until the rest fits 31 bits.
    while (v > 0x7fffffff) {
      buf[pos++] = (v % 0x80) | 0x80;
      v = Math.floor(v / 0x80);
    }
    // Every event has some (its timestamp's seconds and nanos): shifts are cheaper than division.
    while (v > 0x7f) {
      buf[pos++] = (v & 0x7f) | 0x80;
      v >>>= 7;
    }
    buf[pos] = v;
    this.pos = pos + 1;
  }

  /** int32/int64 varint: negatives are sign-extended to ten bytes, as protobuf requires. */
  private signedVarint(value: number): void {
    if (value >= 0) {
      this.varint(value);
      return;
    }
    this.ensure(10);
    let v = BigInt.asUintN(64, BigInt(value));
    for (let i = 0; i < 9; i++) {
      this.buf[this.pos++] = Number(v & 0x7fn) | 0x80;
      v >>= 7n;
    }
    this.buf[this.pos++] = Number(v);
  }

  /** Bytes already encoded as fields. */
  raw(bytes: Uint8Array): void {
    this.ensure(bytes.length);
    this.buf.set(bytes, this.pos);
    this.pos += bytes.length;
  }

  private bytesValue(bytes: Uint8Array): void {
    this.varint(bytes.length);
    this.raw(bytes);
  }

  private lengthDelimitedString(value: string): void {
    const n = value.length;
    if (n < SHORT_STRING) {
      this.ensure(n + 1);
      const buf = this.buf;
      const at = this.pos;
      let i = 0;
      for (; i < n; i++) {
        const c = value.charCodeAt(i);
        if (c >= 0x80) break;
        buf[at + 1 + i] = c;
      }
      if (i === n) {
        buf[at] = n;
        this.pos = at + 1 + n;
        return;
      }
    }
    const at = this.beginLength(n * 3);
    this.pos += this.buf.write(value, this.pos, "utf8");
    this.endLength(at);
  }

  /** Reserves the length prefix of a nested field; `maxContent` sizes it to avoid a shift. */
  private beginLength(maxContent = 0): number {
    this.ensure(5 + maxContent);
    const at = this.pos - this.start;
    this.pos += 1;
    return at;
  }

  /** Writes the length of what followed `beginLength`, moving the content if it needs more than one byte. */
  private endLength(relativeAt: number): void {
    const at = this.start + relativeAt;
    const length = this.pos - at - 1;
    if (length < 0x80) {
      this.buf[at] = length;
      return;
    }
    const size = length < 0x4000 ? 2 : length < 0x200000 ? 3 : length < 0x10000000 ? 4 : 5;
    this.ensure(size - 1);
    const buf = this.buf;
    buf.copyWithin(at + size, at + 1, this.pos);
    this.pos += size - 1;
    let v = length;
    let i = at;
    while (v >= 0x80) {
      buf[i++] = (v & 0x7f) | 0x80;
      v >>>= 7;
    }
    buf[i] = v;
  }

  /** Makes room for `n` more bytes, moving the event being written to a new slab if needed. */
  private ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    const used = this.pos - this.start;
    const next = Buffer.allocUnsafe(Math.max(SLAB_BYTES, (used + n) * 2));
    this.buf.copy(next, 0, this.start, this.pos);
    this.buf = next;
    this.start = 0;
    this.pos = used;
  }
}
