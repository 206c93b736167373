import assert from "node:assert/strict";
import { test } from "node:test";
import { InvalidEventError } from "@sessiontrack/errors";
import { EndReason, Event, Role } from "@sessiontrack/proto";
import { EventEncoder, MAX_EVENT_BYTES } from "./event-encoder.js";
import { eventIdOf } from "./wire.js";

interface Input {
  eventId?: string;
  sessionId: string;
  seq: number;
  time: Date;
  botId: string;
  userId?: string;
  labels?: Record<string, string>;
  payload: Record<string, unknown>;
}

function encodeFast(encoder: EventEncoder, e: Input): Buffer {
  const sessionField = encoder.fields((w) => w.stringField(2, e.sessionId));
  const tail = encoder.fields((w) => {
    w.stringField(5, e.botId);
    w.stringField(6, e.userId ?? "");
    w.mapField(7, e.labels, "labels");
  });
  return encoder.encode(e.eventId, sessionField, e.seq, e.time.getTime(), tail, e.payload);
}

function encodeReference(e: Input): Uint8Array {
  return Event.encode(Event.fromPartial(e as unknown as Event)).finish();
}

const long = "Where is my parcel? ".repeat(60);
const huge = "ä€😀 tracking ".repeat(2000);
const base = {
  eventId: "0192f0c4-5b2a-7c1d-8e9f-0a1b2c3d4e5f",
  sessionId: "conv-8f2c",
  seq: 3,
  time: new Date(1_764_000_000_123),
  botId: "support-bot",
};

const cases: [string, Input][] = [
  [
    "assistant message with text, tool call, usage",
    {
      ...base,
      userId: "user-123",
      labels: { tier: "gold", region: "eu" },
      payload: {
        $case: "message",
        value: {
          turnId: "t-1",
          turnIndex: 2,
          role: Role.ROLE_ASSISTANT,
          provider: "openai",
          model: "gpt-4o",
          parts: [
            { kind: { $case: "text", value: { text: long } } },
            {
              kind: { $case: "toolCall", value: { callId: "c1", name: "track", argumentsJson: '{"id":1}' } },
            },
          ],
          usage: { inputTokens: 212, outputTokens: 0 },
          finishReason: "stop",
          latencyMs: 640,
        },
      },
    },
  ],
  [
    "tool result (error), attachment, an empty part, unicode",
    {
      ...base,
      seq: 2 ** 40,
      payload: {
        $case: "message",
        value: {
          role: Role.ROLE_TOOL,
          parts: [
            {
              kind: {
                $case: "toolResult",
                value: { callId: "c1", name: "track", content: "¿dónde? 😀", isError: true },
              },
            },
            {
              kind: {
                $case: "attachment",
                value: {
                  uri: "s3://b/k",
                  mimeType: "image/png",
                  sizeBytes: 5_000_000_000,
                  sha256: "ab",
                  name: "x",
                },
              },
            },
            {},
          ],
        },
      },
    },
  ],
  [
    "a 20 KiB multibyte text",
    {
      ...base,
      payload: { $case: "message", value: { parts: [{ kind: { $case: "text", value: { text: huge } } }] } },
    },
  ],
  ["an empty message", { ...base, seq: 0, payload: { $case: "message", value: {} } }],
  [
    "session start with groups and attributes",
    {
      ...base,
      payload: {
        $case: "sessionStart",
        value: { channel: "web", locale: "en-GB", userGroups: ["beta", ""], attributes: { a: "1", b: "" } },
      },
    },
  ],
  [
    "session end",
    {
      ...base,
      payload: { $case: "sessionEnd", value: { reason: EndReason.END_REASON_TIMEOUT, turnCount: 7 } },
    },
  ],
  [
    "negative feedback",
    {
      ...base,
      payload: {
        $case: "feedback",
        value: { score: -1, kind: "thumbs", comment: "no", targetEventId: "e1" },
      },
    },
  ],
  [
    "custom with structured data",
    {
      ...base,
      payload: {
        $case: "custom",
        value: { name: "refund", data: { amount: 12.5, ok: true, tags: ["a"], n: null } },
      },
    },
  ],
  [
    "time before 1970, no user",
    { ...base, time: new Date(-1_500), payload: { $case: "feedback", value: { score: 1 } } },
  ],
];

for (const [name, input] of cases) {
  test(`encoder writes the same bytes as ts-proto: ${name}`, () => {
    const encoder = new EventEncoder();
    const fast = encodeFast(encoder, input);
    assert.deepEqual(Buffer.from(fast), Buffer.from(encodeReference(input)));
    assert.deepEqual(Event.decode(fast), Event.fromPartial(input as unknown as Event));
  });
}

test("a missing event id is a fresh UUIDv7 written in place, readable by eventIdOf", () => {
  const encoder = new EventEncoder();
  const { eventId: _omit, ...rest } = cases[0]![1];
  const frame = encodeFast(encoder, rest);
  const decoded = Event.decode(frame);
  assert.match(decoded.eventId, /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  assert.equal(eventIdOf(frame), decoded.eventId);
  assert.deepEqual(Buffer.from(frame), Buffer.from(encodeReference({ ...rest, eventId: decoded.eventId })));
});

test("frames stay intact when the encoder moves to a new slab", () => {
  const encoder = new EventEncoder();
  const frames: Buffer[] = [];
  const inputs: Input[] = [];
  for (let i = 0; i < 300; i++) {
    const input: Input = {
      ...base,
      eventId: `id-${i}`,
      seq: i + 1,
      payload: {
        $case: "message",
        value: { parts: [{ kind: { $case: "text", value: { text: `${i} ${long}` } } }] },
      },
    };
    inputs.push(input);
    frames.push(encodeFast(encoder, input));
  }
  frames.forEach((frame, i) =>
    assert.deepEqual(Buffer.from(frame), Buffer.from(encodeReference(inputs[i]!))),
  );
});

test("a field of the wrong type or an oversized event throws InvalidEventError naming it; the encoder stays usable", () => {
  const encoder = new EventEncoder();
  const bad: [Record<string, unknown>, string][] = [
    [{ $case: "message", value: { model: 4 } }, "message.model"],
    [{ $case: "message", value: { turnIndex: -1 } }, "message.turn_index"],
    [
      { $case: "message", value: { parts: [{ kind: { $case: "text", value: { text: {} } } }] } },
      "message.parts[0].text",
    ],
    [
      { $case: "message", value: { parts: [{ kind: { $case: "video", value: {} } }] } },
      "message.parts[0].kind.$case",
    ],
    [{ $case: "feedback", value: { score: 1.5 } }, "feedback.score"],
    [{ $case: "nonsense", value: {} }, "payload.$case"],
  ];
  for (const [payload, field] of bad) {
    assert.throws(
      () => encodeFast(encoder, { ...base, payload }),
      (err: unknown) => err instanceof InvalidEventError && err.message.includes(field),
    );
  }
  const text = "x".repeat(MAX_EVENT_BYTES);
  assert.throws(
    () =>
      encodeFast(encoder, {
        ...base,
        payload: { $case: "message", value: { parts: [{ kind: { $case: "text", value: { text } } }] } },
      }),
    /exceeds the 1048576-byte limit/,
  );
  const good = cases[0]![1];
  assert.deepEqual(Buffer.from(encodeFast(encoder, good)), Buffer.from(encodeReference(good)));
});
