import { Event, Role } from "@sessiontrack/proto";

const PLACEHOLDER_ID = "01900000-0000-7000-8000-000000000000";

const USER_TEXT =
  "Hi, I ordered a pair of running shoes last week (order 88213) and the tracking page has said " +
  "'label created' for five days now. I need them for a half marathon on Sunday. Can you tell me " +
  "where the parcel actually is, whether it will arrive by Friday, and if not, whether I can cancel " +
  "and get a refund, or swap to express shipping at no extra cost? I've been a customer for years.";
const ASSISTANT_TEXT =
  "I'm sorry about the wait. I've checked order 88213: the carrier collected it yesterday evening " +
  "and it is now at the regional hub; the current estimate is Thursday before noon, so it should " +
  "arrive in time for Sunday. If it hasn't moved by Thursday morning, reply here and I'll arrange a " +
  "free express replacement. ";

/**
 * A realistic ~1 KiB chat event, encoded once, with its event id at a known offset so
 * a load generator can stamp unique ids into copies without re-encoding.
 */
export interface EventTemplate {
  bytes: Buffer;
  idOffset: number;
}

/** Builds the template for a user or assistant message of about `targetBytes`. */
export function chatEventTemplate(role: "user" | "assistant", targetBytes = 1024): EventTemplate {
  const base = role === "user" ? USER_TEXT : ASSISTANT_TEXT;
  const event = (text: string): Event =>
    Event.fromPartial({
      eventId: PLACEHOLDER_ID,
      sessionId: "bench-session-000001",
      seq: 7,
      time: new Date(),
      botId: "bench-support-bot",
      userId: "user-1042",
      labels: { env: "bench", locale: "en-GB" },
      payload: {
        $case: "message",
        value: {
          turnId: "turn-0003",
          turnIndex: 3,
          role: role === "user" ? Role.ROLE_USER : Role.ROLE_ASSISTANT,
          provider: "openai",
          model: "gpt-4o-mini",
          parts: [{ kind: { $case: "text", value: { text } } }],
          usage: { inputTokens: 812, outputTokens: 164 },
          finishReason: "stop",
          latencyMs: 930,
        },
      },
    });
  let text = base;
  while (Event.encode(event(text)).finish().length < targetBytes) text += ` ${base.slice(0, 64)}`;
  const bytes = Buffer.from(Event.encode(event(text)).finish());
  const idOffset = bytes.indexOf(PLACEHOLDER_ID);
  if (idOffset < 0) throw new Error("placeholder id not found in encoded event");
  return { bytes, idOffset };
}

/** Writes a unique UUIDv7-shaped id for `counter` into the copy at the template's offset. */
export function stampEventId(target: Buffer, offset: number, runTag: number, counter: number): void {
  // Keep the layout xxxxxxxx-xxxx-7xxx-8xxx-xxxxxxxxxxxx; vary the run tag and the counter.
  target.write(runTag.toString(16).padStart(8, "0").slice(-8), offset, "latin1");
  target.write(counter.toString(16).padStart(12, "0").slice(-12), offset + 24, "latin1");
}

function varint(value: number): number[] {
  const out: number[] = [];
  let v = value;
  while (v >= 0x80) {
    out.push((v & 0x7f) | 0x80);
    v = Math.floor(v / 128);
  }
  out.push(v);
  return out;
}

/** Encodes a StreamRequest/AppendRequest-shaped batch by hand from already-encoded events. */
export function encodeBatch(eventField: number, events: readonly Buffer[], batchSeq?: number): Buffer {
  const parts: Buffer[] = [];
  if (batchSeq !== undefined) parts.push(Buffer.from([0x08, ...varint(batchSeq)]));
  const tag = (eventField << 3) | 2;
  for (const event of events) {
    parts.push(Buffer.from([tag, ...varint(event.length)]), event);
  }
  return Buffer.concat(parts);
}
