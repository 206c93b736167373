import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { ConfigError } from "@sessiontrack/errors";
import { Event, Role, type Part, type RedactionHit } from "@sessiontrack/proto";

import { compileRedactionPolicy, type RedactionSettings } from "./policy.js";
import { createRedactor } from "./redactor.js";

const SALT = "tenant-acme-salt-0123456789";

function messageEvent(parts: Part[], extra: Partial<Event> = {}): Event {
  return Event.fromPartial({
    eventId: "01934b7e-0000-7000-8000-000000000001",
    sessionId: "session-1",
    seq: 1,
    time: new Date("2026-01-01T00:00:00Z"),
    botId: "support-bot",
    userId: "user-1",
    payload: {
      $case: "message",
      value: { turnId: "t1", role: Role.ROLE_USER, parts },
    },
    ...extra,
  });
}

const text = (value: string): Part => ({ kind: { $case: "text", value: { text: value } } });

function textOf(event: Event, index = 0): string {
  const payload = event.payload;
  assert.equal(payload?.$case, "message");
  const kind = payload.value.parts[index]?.kind;
  assert.equal(kind?.$case, "text");
  return kind.value.text;
}

const sortHits = (hits: RedactionHit[]): RedactionHit[] =>
  [...hits].sort((a, b) => a.path.localeCompare(b.path) || a.rule.localeCompare(b.rule));

describe("actions", () => {
  test("mask is the default for every built-in detector", () => {
    const redactor = createRedactor("acme");
    const event = messageEvent([
      text(
        "Mail john@example.com or call +44 20 7946 0958, card 4111 1111 1111 1111, from 10.1.2.3, key AKIAIOSFODNN7EXAMPLE, password=hunter2x",
      ),
    ]);
    const hits = redactor.redactEvent(event);
    assert.equal(
      textOf(event),
      "Mail [email] or call [phone], card [payment_card], from [ip_address], key [api_key], password=[secret]",
    );
    assert.deepEqual(
      sortHits(hits).map((hit) => [hit.rule, hit.action, hit.count, hit.path]),
      ["api_key", "email", "ip_address", "payment_card", "phone", "secret"].map((rule) => [
        rule,
        "mask",
        1,
        "message.parts[0].text",
      ]),
    );
  });

  test("hash gives a recognisable, stable token per tenant, different across tenants", () => {
    const settings: RedactionSettings = { hashSalt: SALT, detectors: { email: "hash" } };
    const acme = createRedactor("acme", settings);
    const other = createRedactor("globex", { ...settings, hashSalt: "globex-salt-9876543210" });
    const a = acme.redactText("write to John.Doe@Example.com please")!;
    const b = acme.redactText("john.doe@example.com")!;
    const c = other.redactText("john.doe@example.com")!;
    const token = /\[email:([0-9a-f]{16})\]/;
    assert.match(a.text, /^write to \[email:[0-9a-f]{16}\] please$/);
    assert.equal(token.exec(a.text)![1], token.exec(b.text)![1], "same tenant, same (normalised) value");
    assert.notEqual(token.exec(b.text)![1], token.exec(c.text)![1], "per-tenant salt");
    assert.deepEqual(a.hits, [{ rule: "email", action: "hash", count: 1 }]);
  });

  test("drop removes the whole field and records every rule that fired there as drop", () => {
    const redactor = createRedactor("acme", { detectors: { payment_card: "drop" } });
    const event = messageEvent(
      [text("card 4111111111111111 for john@example.com"), text("no secrets here")],
      {
        labels: { env: "prod", card: "5555555555554444" },
      },
    );
    const hits = redactor.redactEvent(event);
    assert.equal(textOf(event, 0), "");
    assert.equal(textOf(event, 1), "no secrets here");
    assert.deepEqual(event.labels, { env: "prod" });
    assert.deepEqual(sortHits(hits), [
      { rule: "payment_card", action: "drop", count: 1, path: "labels.card" },
      { rule: "email", action: "drop", count: 1, path: "message.parts[0].text" },
      { rule: "payment_card", action: "drop", count: 1, path: "message.parts[0].text" },
    ]);
  });

  test("counts several matches of one rule in one field", () => {
    const redactor = createRedactor("acme");
    const result = redactor.redactText("a@example.com, b@example.com and c@example.org");
    assert.deepEqual(result?.hits, [{ rule: "email", action: "mask", count: 3 }]);
    assert.equal(result?.text, "[email], [email] and [email]");
  });

  test("a detector set to off does not run", () => {
    const redactor = createRedactor("acme", { detectors: { email: "off" } });
    assert.equal(redactor.redactText("john@example.com"), null);
    assert.equal(redactor.redactText("call 555-123-4567")?.text, "call [phone]");
  });

  test("overlaps go to the earlier detector: a JWT after Bearer is a jwt, a key's digits are not a phone", () => {
    const redactor = createRedactor("acme");
    const jwt =
      "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c";
    assert.deepEqual(redactor.redactText(`Authorization: Bearer ${jwt}`), {
      text: "Authorization: Bearer [jwt]",
      dropped: false,
      hits: [{ rule: "jwt", action: "mask", count: 1 }],
    });
    assert.equal(redactor.redactText("api_key=7d8e9f0a1b2c3d4e5f6a7b8c")?.text, "api_key=[api_key]");
  });
});

describe("fields and paths", () => {
  const redactor = createRedactor("acme");
  const email = "jane@example.com";

  test("every free-text field of a message is redacted, with its path", () => {
    const event = messageEvent(
      [
        text(`hi ${email}`),
        {
          kind: {
            $case: "toolCall",
            value: { callId: "c1", name: "lookup", argumentsJson: `{"email":"${email}"}` },
          },
        },
        {
          kind: {
            $case: "toolResult",
            value: { callId: "c1", name: "lookup", content: `found ${email}`, isError: false },
          },
        },
        {
          kind: {
            $case: "attachment",
            value: { uri: "s3://bucket/a.png", mimeType: "image/png", sizeBytes: 1, sha256: "", name: "a" },
          },
        },
      ],
      { labels: { contact: email, "odd key": email, env: "prod" } },
    );
    const hits = redactor.redactEvent(event);
    assert.deepEqual(
      sortHits(hits).map((hit) => hit.path),
      [
        "labels.contact",
        'labels["odd key"]',
        "message.parts[0].text",
        "message.parts[1].tool_call.arguments_json",
        "message.parts[2].tool_result.content",
      ],
    );
    const encoded = Buffer.from(Event.encode(event).finish());
    assert.equal(encoded.includes(email), false);
    assert.equal(JSON.stringify(hits).includes(email), false, "hits never hold the value");
  });

  test("feedback comments, session attributes and custom data (recursively) are redacted", () => {
    const feedback = Event.fromPartial({
      ...messageEvent([]),
      payload: {
        $case: "feedback",
        value: { score: -1, comment: `call me on +1 555 123 4567`, kind: "thumbs" },
      },
    });
    assert.deepEqual(
      redactor.redactEvent(feedback).map((hit) => hit.path),
      ["feedback.comment"],
    );
    const start = Event.fromPartial({
      ...messageEvent([]),
      payload: {
        $case: "sessionStart",
        value: { channel: "web", attributes: { ip: "203.0.113.9", ua: "Firefox" } },
      },
    });
    assert.deepEqual(
      redactor.redactEvent(start).map((hit) => [hit.path, hit.rule]),
      [["session_start.attributes.ip", "ip_address"]],
    );
    const custom = Event.fromPartial({
      ...messageEvent([]),
      payload: {
        $case: "custom",
        value: {
          name: "retrieval",
          data: {
            query: email,
            docs: [{ owner: email, score: 0.9 }, "plain", email],
            nested: { deeper: { token: "password=s3cr3t!" } },
          },
        },
      },
    });
    const hits = redactor.redactEvent(custom);
    assert.deepEqual(
      sortHits(hits).map((hit) => [hit.path, hit.rule]),
      [
        ["custom.data.docs[0].owner", "email"],
        ["custom.data.docs[2]", "email"],
        ["custom.data.nested.deeper.token", "secret"],
        ["custom.data.query", "email"],
      ],
    );
    const bytes = Buffer.from(Event.encode(custom).finish());
    assert.equal(bytes.includes(email), false);
    assert.equal(bytes.includes("s3cr3t!"), false);
    const back = Event.decode(bytes);
    assert.equal(back.payload?.$case, "custom");
    assert.deepEqual(back.payload.value.data, {
      query: "[email]",
      docs: [{ owner: "[email]", score: 0.9 }, "plain", "[email]"],
      nested: { deeper: { token: "password=[secret]" } },
    });
  });

  test("drop in custom data removes object keys and nulls list elements", () => {
    const dropper = createRedactor("acme", { detectors: { email: "drop" } });
    const custom = Event.fromPartial({
      ...messageEvent([]),
      payload: {
        $case: "custom",
        value: { name: "x", data: { who: email, list: ["a", email, "b"], keep: 1 } },
      },
    });
    dropper.redactEvent(custom);
    assert.equal(custom.payload?.$case, "custom");
    assert.deepEqual(custom.payload.value.data, { list: ["a", null, "b"], keep: 1 });
  });
});

describe("redactEncoded", () => {
  const redactor = createRedactor("acme");

  test("returns a clean event's own bytes without decoding", () => {
    const bytes = Event.encode(messageEvent([text("Where is my order? It was due on Monday.")])).finish();
    const result = redactor.redactEncoded(bytes);
    assert.equal(result.event, bytes);
    assert.deepEqual(result.redactions, []);
  });

  test("keeps the original bytes when the prefilter's candidate turns out clean", () => {
    const bytes = Event.encode(messageEvent([text("Meet at 10:30:45, ISBN 978-3-16-148410-0")])).finish();
    const result = redactor.redactEncoded(bytes);
    assert.equal(result.event, bytes);
    assert.deepEqual(result.redactions, []);
  });

  test("re-encodes an event with sensitive values, which are then absent from the bytes", () => {
    const original = messageEvent([text("I am john@example.com, card 4111-1111-1111-1111")]);
    const result = redactor.redactEncoded(Event.encode(original).finish());
    const stored = Buffer.from(result.event);
    assert.equal(stored.includes("john@example.com"), false);
    assert.equal(stored.includes("4111-1111-1111-1111"), false);
    assert.equal(textOf(Event.decode(stored)), "I am [email], card [payment_card]");
    assert.deepEqual(
      sortHits(result.redactions).map((hit) => hit.rule),
      ["email", "payment_card"],
    );
  });

  test("custom rules bypass the byte prefilter and still apply", () => {
    const custom = createRedactor("acme", { rules: [{ name: "order_id", pattern: "\\bORD-\\d{5}\\b" }] });
    const bytes = Event.encode(messageEvent([text("about ORD-88213 please")])).finish();
    const result = custom.redactEncoded(bytes);
    assert.equal(textOf(Event.decode(result.event)), "about [order_id] please");
    assert.deepEqual(result.redactions, [
      { rule: "order_id", path: "message.parts[0].text", action: "mask", count: 1 },
    ]);
  });

  test("with every rule off, events pass untouched", () => {
    const off = createRedactor("acme", {
      detectors: {
        email: "off",
        phone: "off",
        payment_card: "off",
        ip_address: "off",
        api_key: "off",
        jwt: "off",
        secret: "off",
      },
    });
    const bytes = Event.encode(messageEvent([text("john@example.com")])).finish();
    assert.equal(off.redactEncoded(bytes).event, bytes);
  });
});

describe("custom rules", () => {
  test("run before the built-ins, with their own action", () => {
    const redactor = createRedactor("acme", {
      hashSalt: SALT,
      rules: [
        { name: "order_id", pattern: "ORD-\\d{8}", action: "hash" },
        { name: "codename", pattern: "project\\s+\\w+", flags: "i" },
      ],
    });
    const result = redactor.redactText("ORD-55512345 for PROJECT Falcon")!;
    assert.match(result.text, /^\[order_id:[0-9a-f]{16}\] for \[codename\]$/);
    assert.deepEqual(result.hits, [
      { rule: "order_id", action: "hash", count: 1 },
      { rule: "codename", action: "mask", count: 1 },
    ]);
  });
});

describe("configuration errors", () => {
  const cases: Array<[string, RedactionSettings, RegExp]> = [
    [
      "a bad regex",
      { rules: [{ name: "broken", pattern: "([a-z" }] },
      /tenant "acme".*rule 0 \("broken"\).*not a valid regular expression/,
    ],
    [
      "a regex matching the empty string",
      { rules: [{ name: "empty", pattern: "x*" }] },
      /rule 0 \("empty"\).*empty string/,
    ],
    [
      "an empty pattern",
      { rules: [{ name: "nothing", pattern: "" }] },
      /rule 0 \("nothing"\): pattern is empty/,
    ],
    ["bad flags", { rules: [{ name: "flags", pattern: "x", flags: "g" }] }, /rule 0 \("flags"\): flags/],
    ["a bad name", { rules: [{ name: "Bad Name", pattern: "x" }] }, /rule 0 \("Bad Name"\): name/],
    [
      "a name taken by a built-in",
      { rules: [{ name: "email", pattern: "x" }] },
      /rule 0 \("email"\): name is already used/,
    ],
    [
      "a duplicate name",
      {
        rules: [
          { name: "a", pattern: "x" },
          { name: "a", pattern: "y" },
        ],
      },
      /rule 1 \("a"\): name is already used/,
    ],
    [
      "an unknown detector",
      { detectors: { emails: "mask" } as never },
      /detectors\.emails is not a built-in detector/,
    ],
    [
      "an unknown action",
      { detectors: { email: "blur" } as never },
      /detectors\.email must be mask, hash, drop or off/,
    ],
    [
      "hash without a salt",
      { detectors: { email: "hash" } },
      /hashSalt .* required because email uses action hash/,
    ],
    [
      "a short salt",
      { hashSalt: "short", rules: [{ name: "r", pattern: "x", action: "hash" }] },
      /hashSalt of at least 16/,
    ],
  ];
  for (const [what, settings, message] of cases) {
    test(`${what} is a ConfigError naming the tenant and the rule`, () => {
      assert.throws(
        () => compileRedactionPolicy("acme", settings),
        (error: unknown) =>
          error instanceof ConfigError &&
          message.test(error.message) &&
          error.message.includes('tenant "acme"'),
      );
    });
  }
});
