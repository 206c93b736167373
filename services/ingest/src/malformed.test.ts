import assert from "node:assert/strict";
import { test } from "node:test";

import * as grpc from "@grpc/grpc-js";

import { AppendResponse, Role } from "@sessiontrack/proto";

import {
  appendRaw,
  auth,
  encodeBatch,
  encodeEvent,
  startHarness,
  validEvent,
  withExtraField,
  type Harness,
} from "./test-harness.js";

interface MalformedCase {
  name: string;
  /** Request bytes, built once the harness (and its keys) exist. */
  bytes: () => Buffer;
  /** Authorization header; default: the ingest key. */
  authorization?: (h: Harness) => string | undefined;
  code: grpc.status;
  message: RegExp;
}

const text = (value: string) => ({ kind: { $case: "text" as const, value: { text: value } } });
const MiB = 1024 * 1024;

const CASES: MalformedCase[] = [
  {
    name: "random garbage bytes",
    bytes: () => Buffer.from([0xff, 0xff, 0xff, 0xff, 0x0f]),
    code: grpc.status.INVALID_ARGUMENT,
    message: /request is not a valid sessiontrack\.v1\.AppendRequest/,
  },
  {
    name: "truncated protobuf (batch cut mid-event)",
    bytes: () => encodeBatch([encodeEvent(validEvent())]).subarray(0, 40),
    code: grpc.status.INVALID_ARGUMENT,
    message: /not a valid sessiontrack\.v1\.AppendRequest/,
  },
  {
    name: "events field sent with the varint wire type",
    bytes: () => Buffer.from([0x08, 0x01]),
    code: grpc.status.INVALID_ARGUMENT,
    message: /field 1 has wire type 0/,
  },
  {
    name: "event bytes that are not an Event",
    bytes: () => encodeBatch([encodeEvent(validEvent()), Buffer.from([0x0a, 0x7f, 0x01])]),
    code: grpc.status.INVALID_ARGUMENT,
    message: /^events\[1\]: not a valid sessiontrack\.v1\.Event/,
  },
  {
    name: "invalid UTF-8 in session_id",
    bytes: () =>
      encodeBatch([
        withExtraField(encodeEvent(validEvent()), (w) => w.uint32(0x12).bytes(Uint8Array.from([0xc3, 0x28]))),
      ]),
    code: grpc.status.INVALID_ARGUMENT,
    message: /^events\[0\]: not a valid sessiontrack\.v1\.Event: a string field is not valid UTF-8/,
  },
  {
    name: "invalid UTF-8 inside a message's text, second event",
    bytes: () => {
      const good = encodeEvent(validEvent());
      // field 12 (message) → field 6 (parts) → field 1 (text) → field 1 (text string)
      const badText = Uint8Array.from([0x0a, 0x03, 0x61, 0xff, 0x62]);
      const part = Buffer.concat([Buffer.from([0x0a, badText.length]), badText]);
      const message = Buffer.concat([Buffer.from([0x18, 0x02, 0x32, part.length]), part]);
      const bad = withExtraField(encodeEvent(validEvent({ payload: undefined })), (w) =>
        w.uint32(0x62).bytes(message),
      );
      return encodeBatch([good, bad]);
    },
    code: grpc.status.INVALID_ARGUMENT,
    message: /^events\[1\]: not a valid sessiontrack\.v1\.Event: a string field is not valid UTF-8/,
  },
  {
    name: "missing event_id",
    bytes: () => encodeBatch([encodeEvent(validEvent({ eventId: "" }))]),
    code: grpc.status.INVALID_ARGUMENT,
    message: /^events\[0\]\.event_id: is required$/,
  },
  {
    name: "event_id that is neither UUID nor ULID",
    bytes: () => encodeBatch([encodeEvent(validEvent({ eventId: "order-42" }))]),
    code: grpc.status.INVALID_ARGUMENT,
    message: /^events\[0\]\.event_id: "order-42" is neither a UUID/,
  },
  {
    name: "missing session_id",
    bytes: () => encodeBatch([encodeEvent(validEvent()), encodeEvent(validEvent({ sessionId: "" }))]),
    code: grpc.status.INVALID_ARGUMENT,
    message: /^events\[1\]\.session_id: is required$/,
  },
  {
    name: "control characters in session_id",
    bytes: () => encodeBatch([encodeEvent(validEvent({ sessionId: "abc\u0000def" }))]),
    code: grpc.status.INVALID_ARGUMENT,
    message: /^events\[0\]\.session_id: contains control characters$/,
  },
  {
    name: "seq 0",
    bytes: () => encodeBatch([encodeEvent(validEvent({ seq: 0 }))]),
    code: grpc.status.INVALID_ARGUMENT,
    message: /^events\[0\]\.seq: must be at least 1/,
  },
  {
    name: "seq above 2^53",
    bytes: () =>
      encodeBatch([withExtraField(encodeEvent(validEvent()), (w) => w.uint32(0x18).uint64(2n ** 60n))]),
    code: grpc.status.INVALID_ARGUMENT,
    message: /^events\[0\]: not a valid sessiontrack\.v1\.Event: .*MAX_SAFE_INTEGER/,
  },
  {
    name: "missing time",
    bytes: () => encodeBatch([encodeEvent(validEvent({ time: undefined }))]),
    code: grpc.status.INVALID_ARGUMENT,
    message: /^events\[0\]\.time: is required$/,
  },
  {
    name: "time an hour in the future",
    bytes: () => encodeBatch([encodeEvent(validEvent({ time: new Date(Date.now() + 3_600_000) }))]),
    code: grpc.status.INVALID_ARGUMENT,
    message: /^events\[0\]\.time: is more than 5 minutes in the future$/,
  },
  {
    name: "time before 2000",
    bytes: () => encodeBatch([encodeEvent(validEvent({ time: new Date("1999-12-31T23:59:59Z") }))]),
    code: grpc.status.INVALID_ARGUMENT,
    message: /^events\[0\]\.time: is before 2000-01-01$/,
  },
  {
    name: "missing bot_id",
    bytes: () => encodeBatch([encodeEvent(validEvent({ botId: "" }))]),
    code: grpc.status.INVALID_ARGUMENT,
    message: /^events\[0\]\.bot_id: is required$/,
  },
  {
    name: "missing payload",
    bytes: () => encodeBatch([encodeEvent(validEvent({ payload: undefined }))]),
    code: grpc.status.INVALID_ARGUMENT,
    message: /^events\[0\]\.payload: is required/,
  },
  {
    name: "message with no parts",
    bytes: () =>
      encodeBatch([
        encodeEvent(
          validEvent({ payload: { $case: "message", value: { role: Role.ROLE_USER, parts: [] } as never } }),
        ),
      ]),
    code: grpc.status.INVALID_ARGUMENT,
    message: /^events\[0\]\.message\.parts: must hold at least one part$/,
  },
  {
    name: "assistant message without a model",
    bytes: () =>
      encodeBatch([
        encodeEvent(
          validEvent({
            payload: {
              $case: "message",
              value: { role: Role.ROLE_ASSISTANT, provider: "openai", parts: [text("hi")] } as never,
            },
          }),
        ),
      ]),
    code: grpc.status.INVALID_ARGUMENT,
    message: /^events\[0\]\.message\.model: is required on assistant messages$/,
  },
  {
    name: "empty batch",
    bytes: () => Buffer.alloc(0),
    code: grpc.status.INVALID_ARGUMENT,
    message: /^batch is empty/,
  },
  {
    name: "batch over --max-batch-events",
    bytes: () => encodeBatch(Array.from({ length: 101 }, () => encodeEvent(validEvent()))),
    code: grpc.status.INVALID_ARGUMENT,
    message: /^batch holds 101 events; the limit is 100 \(--max-batch-events\)$/,
  },
  {
    name: "event over 1 MiB",
    bytes: () =>
      encodeBatch([
        encodeEvent(validEvent({ labels: { note: "x".repeat(1000) } })),
        encodeEvent(
          validEvent({
            payload: {
              $case: "message",
              value: { role: Role.ROLE_USER, parts: [text("x".repeat(MiB + 10))] } as never,
            },
          }),
        ),
      ]),
    code: grpc.status.INVALID_ARGUMENT,
    message: /^events\[1\]: event is \d+ bytes; the limit is 1048576$/,
  },
  {
    name: "batch over --max-batch-bytes",
    bytes: () =>
      encodeBatch(
        Array.from({ length: 5 }, () =>
          encodeEvent(
            validEvent({
              payload: {
                $case: "message",
                value: { role: Role.ROLE_USER, parts: [text("y".repeat(MiB - 4096))] } as never,
              },
            }),
          ),
        ),
      ),
    code: grpc.status.INVALID_ARGUMENT,
    message: /^batch holds \d+ bytes of events; the limit is 4194304 \(--max-batch-bytes\)$/,
  },
  {
    name: "request larger than the server accepts at all",
    bytes: () => Buffer.alloc(6 * MiB, 0x0a),
    code: grpc.status.RESOURCE_EXHAUSTED,
    message: /larger than max|exceeds|too large/i,
  },
  {
    name: "missing authorization",
    bytes: () => encodeBatch([encodeEvent(validEvent())]),
    authorization: () => undefined,
    code: grpc.status.UNAUTHENTICATED,
    message: /missing "authorization: Bearer <api key>" metadata/,
  },
  {
    name: "unknown API key",
    bytes: () => encodeBatch([encodeEvent(validEvent())]),
    authorization: () => "Bearer st_this-key-was-never-issued-anywhere",
    code: grpc.status.UNAUTHENTICATED,
    message: /^unknown API key$/,
  },
  {
    name: "malformed authorization header",
    bytes: () => encodeBatch([encodeEvent(validEvent())]),
    authorization: (h) => `Basic ${h.ingestKey}`,
    code: grpc.status.UNAUTHENTICATED,
    message: /malformed "authorization" metadata/,
  },
  {
    name: "read-only key appending",
    bytes: () => encodeBatch([encodeEvent(validEvent())]),
    authorization: (h) => `Bearer ${h.readKey}`,
    code: grpc.status.PERMISSION_DENIED,
    message: /key "reader" of tenant "acme" lacks the role for this call/,
  },
];

test(`Append refuses ${CASES.length} kinds of malformed input with a precise status, and keeps serving`, async (t) => {
  const harness = await startHarness(t, { "max-batch-events": "100", "max-batch-bytes": String(4 * MiB) });
  assert.ok(CASES.length >= 20);
  for (const testCase of CASES) {
    const authorization =
      testCase.authorization === undefined ? `Bearer ${harness.ingestKey}` : testCase.authorization(harness);
    const { error } = await appendRaw(harness.client, testCase.bytes(), auth(authorization));
    assert.ok(error, `${testCase.name}: expected an error`);
    assert.equal(grpc.status[error.code], grpc.status[testCase.code], `${testCase.name}: ${error.details}`);
    assert.match(error.details, testCase.message, testCase.name);
  }
  // Nothing malformed reached the log, and the server still accepts good batches.
  assert.equal(harness.server.wal.lastDurableLsn(), 0);
  const { error, response } = await appendRaw(
    harness.client,
    encodeBatch([encodeEvent(validEvent())]),
    auth(`Bearer ${harness.ingestKey}`),
  );
  assert.equal(error, null);
  assert.deepEqual(AppendResponse.decode(response!), { accepted: 1, duplicates: 0 });
});
