// Property-style checks of the byte prefilter: it must never clear an event in which a
// detector would find something. Seeded, so a failure reproduces.
import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { Event, Role } from "@sessiontrack/proto";

import { BUILT_IN_DETECTORS, luhnValid } from "./detectors.js";
import { mayContainSensitiveData, PREFILTER, textCores, textMayContainSensitiveData } from "./prefilter.js";
import { createRedactor } from "./redactor.js";

/** mulberry32: a small seeded PRNG. */
function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

type Rng = () => number;
const pick = <T>(rng: Rng, items: readonly T[]): T => items[Math.floor(rng() * items.length)]!;
const int = (rng: Rng, min: number, max: number): number => min + Math.floor(rng() * (max - min + 1));
const chars = (rng: Rng, alphabet: string, count: number): string =>
  Array.from({ length: count }, () => pick(rng, [...alphabet])).join("");
const DIGITS = "0123456789";
const LOWER = "abcdefghijklmnopqrstuvwxyz";
const UPPER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ";
const ALNUM = LOWER + UPPER + DIGITS;
const HEXDIGITS = "0123456789abcdef";

function luhnComplete(partial: string): string {
  for (let check = 0; check <= 9; check += 1) if (luhnValid(partial + check)) return partial + check;
  throw new Error("unreachable");
}

/** Generators of sensitive values, each returning a value the detectors must catch. */
const GENERATORS: Array<(rng: Rng) => string> = [
  (rng) =>
    `${chars(rng, LOWER, int(rng, 1, 8))}${pick(rng, ["", ".", "+", "_"])}${chars(rng, LOWER + DIGITS, int(rng, 1, 6))}@${chars(rng, LOWER, int(rng, 2, 10))}.${pick(rng, ["com", "org", "de", "co.uk", "io"])}`,
  (rng) => `+${int(rng, 1, 99)} ${chars(rng, DIGITS, 3)} ${chars(rng, DIGITS, 3)} ${chars(rng, DIGITS, 4)}`,
  (rng) => `(${int(rng, 2, 9)}${chars(rng, DIGITS, 2)}) ${chars(rng, DIGITS, 3)}-${chars(rng, DIGITS, 4)}`,
  (rng) => `0${int(rng, 1, 9)}${chars(rng, DIGITS, 2)} ${chars(rng, DIGITS, 7)}`,
  (rng) => {
    const separator = pick(rng, [" ", ".", "-"]);
    const pairs = Array.from({ length: 4 }, () => chars(rng, DIGITS, 2));
    return [`0${int(rng, 1, 9)}`, ...pairs].join(separator);
  },
  (rng) => {
    const card = luhnComplete(pick(rng, ["4", "51", "55", "6011", "37"]) + chars(rng, DIGITS, 14 - 1));
    const separator = pick(rng, ["", " ", "-"]);
    return card.replace(/(\d{4})(?=\d)/g, `$1${separator}`);
  },
  (rng) => `${int(rng, 1, 223)}.${int(rng, 0, 255)}.${int(rng, 0, 255)}.${int(rng, 1, 254)}`,
  (rng) => `2001:db8:${chars(rng, HEXDIGITS, 4)}::${int(rng, 1, 9)}${chars(rng, HEXDIGITS, 2)}`,
  (rng) => Array.from({ length: 8 }, () => chars(rng, HEXDIGITS, int(rng, 1, 3)) + int(rng, 0, 9)).join(":"),
  (rng) => `sk-proj-${chars(rng, ALNUM, 30)}A1b`,
  (rng) => `AKIA${chars(rng, UPPER + DIGITS, 16)}`,
  (rng) => `ghp_${chars(rng, ALNUM, 36)}`,
  (rng) => `xoxb-${chars(rng, DIGITS, 12)}-${chars(rng, ALNUM, 24)}`,
  (rng) => `api_key=${chars(rng, ALNUM, 20)}9z`,
  (rng) => {
    const b64 = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString("base64url");
    return `${b64({ alg: "HS256", typ: "JWT" })}.${b64({ sub: chars(rng, ALNUM, 8) })}.${chars(rng, ALNUM, 43)}`;
  },
  (rng) => `password=${chars(rng, ALNUM, int(rng, 6, 16))}1`,
  (rng) => `Bearer ${chars(rng, ALNUM, int(rng, 20, 40))}`,
  (rng) => `-----BEGIN RSA PRIVATE KEY-----\n${chars(rng, ALNUM, 64)}\n-----END RSA PRIVATE KEY-----`,
  (rng) => `postgres://app:${chars(rng, ALNUM, 10)}@db:5432/x`,
];

// Filler: prose with multibyte characters, non-ASCII spaces, small numbers and punctuation.
const WORDS = [
  "the",
  "order",
  "is",
  "late",
  "naïve",
  "café",
  "日本語",
  "👍",
  "über",
  "résumé",
  "key",
  "token",
  "password",
  "Bearer",
  "basic",
  "12",
  "3.5",
  "10:30",
  "v1.2",
  "#42",
  "—",
  "«quoted»",
  "a\u00a0b",
  "tab\there",
  "line\nbreak",
  "A",
  "sk",
  "eyJ",
  "::",
  "@",
  "1-2",
  "(3)",
  "x=1",
  "id:7",
];
const filler = (rng: Rng, count: number): string =>
  Array.from({ length: count }, () => pick(rng, WORDS)).join(" ");

/** Puts a string into one of the free-text fields of an event. */
function eventWith(rng: Rng, value: string): Event {
  const base = {
    eventId: "01934b7e-0000-7000-8000-000000000001",
    sessionId: "session-1",
    seq: 1,
    time: new Date("2026-01-01T00:00:00Z"),
    botId: "support-bot",
    userId: "user-1",
  };
  switch (int(rng, 0, 6)) {
    case 0:
      return Event.fromPartial({ ...base, labels: { env: "prod", note: value } });
    case 1:
      return Event.fromPartial({
        ...base,
        payload: { $case: "sessionStart", value: { channel: "web", attributes: { from: value } } },
      });
    case 2:
      return Event.fromPartial({
        ...base,
        payload: { $case: "feedback", value: { score: 1, comment: value, kind: "thumbs" } },
      });
    case 3:
      return Event.fromPartial({
        ...base,
        payload: { $case: "custom", value: { name: "c", data: { deep: { list: [1, value] } } } },
      });
    case 4:
      return Event.fromPartial({
        ...base,
        payload: {
          $case: "message",
          value: {
            turnId: "t",
            role: Role.ROLE_TOOL,
            parts: [{ kind: { $case: "toolCall", value: { callId: "c", name: "f", argumentsJson: value } } }],
          },
        },
      });
    default:
      return Event.fromPartial({
        ...base,
        payload: {
          $case: "message",
          value: {
            turnId: "t",
            role: Role.ROLE_USER,
            parts: [{ kind: { $case: "text", value: { text: value } } }],
          },
        },
      });
  }
}

describe("prefilter soundness", () => {
  const redactor = createRedactor("acme");

  test("random text with an injected sensitive value is always caught and redacted", () => {
    const rng = random(20261125);
    for (let round = 0; round < 3000; round += 1) {
      const generator = GENERATORS[round % GENERATORS.length]!;
      const value = generator(rng);
      const text = `${filler(rng, int(rng, 0, 30))} ${value} ${filler(rng, int(rng, 0, 30))}`;
      const bytes = Event.encode(eventWith(rng, text)).finish();
      const context = `round ${round}: ${JSON.stringify(text)}`;
      assert.ok(mayContainSensitiveData(bytes), `prefilter cleared ${context}`);
      const result = redactor.redactEncoded(bytes);
      assert.ok(result.redactions.length > 0, `nothing redacted in ${context}`);
      // The secret part of the value is gone from the stored bytes.
      const secretPart = value.includes("=")
        ? value.slice(value.indexOf("=") + 1)
        : value.replace(/^Bearer /, "");
      const core = secretPart.includes("://") ? secretPart.split(":")[2]!.split("@")[0]! : secretPart;
      assert.equal(
        Buffer.from(result.event).includes(core),
        false,
        `${JSON.stringify(core)} still stored: ${context}`,
      );
    }
  });

  test("whenever any detector matches a random string, the prefilter says candidate", () => {
    const rng = random(7);
    const alphabet = [
      ...DIGITS,
      ".",
      ":",
      "-",
      " ",
      "(",
      ")",
      "/",
      "+",
      "@",
      "=",
      "_",
      "a",
      "b",
      "e",
      "f",
      "k",
      "x",
      "A",
      "K",
      "I",
      "\u00a0",
      "é",
      "日",
      "\n",
      "\t",
      '"',
      "'",
      "key",
      "token",
      "secret",
      "password",
      "pwd",
      "Bearer ",
      "basic ",
      "is ",
      "eyJ",
      "sk-",
      "AKIA",
      "ghp_",
      "xoxb-",
      "-----BEGIN",
      "PRIVATE KEY-----",
      "://",
      "example.com",
      "st_",
      "0",
      "00",
      "+1 ",
    ];
    let matched = 0;
    for (let round = 0; round < 4000; round += 1) {
      const text = Array.from({ length: int(rng, 1, 60) }, () => pick(rng, alphabet)).join("");
      const hits = BUILT_IN_DETECTORS.flatMap((detector) => detector.find(text).map(() => detector.name));
      if (hits.length === 0) continue;
      matched += 1;
      assert.ok(
        textMayContainSensitiveData(text),
        `${hits.join(",")} matched but the scan cleared ${JSON.stringify(text)}`,
      );
      // Each detector that matched has one of its declared cores in the text.
      const cores = textCores(text);
      for (const detector of BUILT_IN_DETECTORS) {
        // Skipping the parts whose cores are absent changes nothing.
        assert.deepEqual(
          detector.find(text, cores),
          detector.find(text),
          `${detector.name}: ${JSON.stringify(text)}`,
        );
        if (detector.find(text).length === 0) continue;
        assert.notEqual(
          cores & detector.cores!,
          0,
          `${detector.name} matched without its cores: ${JSON.stringify(text)}`,
        );
      }
      const bytes = Event.encode(eventWith(rng, text)).finish();
      assert.ok(
        mayContainSensitiveData(bytes),
        `${hits.join(",")} in an event cleared: ${JSON.stringify(text)}`,
      );
    }
    assert.ok(
      matched > 300,
      `only ${matched} random strings matched a detector: the test would prove little`,
    );
  });

  test("the byte scan covers the documented core regex", () => {
    const rng = random(99);
    const alphabet = [
      ...DIGITS,
      ".",
      ":",
      "-",
      " ",
      "(",
      ")",
      "/",
      "@",
      "=",
      "a",
      "e",
      "f",
      "key",
      "Token",
      "PASSWORD",
      "eyJ",
      "bearer\t",
      "is ",
    ];
    for (let round = 0; round < 4000; round += 1) {
      const text = Array.from({ length: int(rng, 1, 40) }, () => pick(rng, alphabet)).join("");
      if (PREFILTER.test(text)) assert.ok(textMayContainSensitiveData(text), JSON.stringify(text));
    }
  });
});

describe("prefilter effectiveness", () => {
  const clean = [
    "Hi, I ordered a pair of running shoes last week (order 88213) and the tracking page has not changed.",
    "I'm sorry about the wait. The carrier collected it yesterday evening; estimate is Thursday before noon.",
    "Can you summarise this article in three bullet points? Keep it under 100 words.",
    "Sure! Here's a summary: 1) prices rose 3.5% in May; 2) wages kept pace; 3) rates held.",
    "Das Paket kommt morgen zwischen 9 und 12 Uhr. Vielen Dank für Ihre Geduld!",
    "日本語でお願いします。明日の午後3時に予約できますか？",
    "Run `npm install` and then restart the dev server with the --watch flag.",
  ];
  for (const text of clean) {
    test(`clears ordinary text: ${text.slice(0, 40)}`, () => {
      const bytes = Event.encode(eventWith(random(1), text)).finish();
      assert.equal(mayContainSensitiveData(bytes), false);
    });
  }

  test("treats malformed bytes as a candidate rather than clearing them", () => {
    assert.equal(mayContainSensitiveData(Buffer.from([0x0a, 0xff])), true);
    assert.equal(mayContainSensitiveData(Buffer.from([0x0b])), true);
  });
});
