import assert from "node:assert/strict";
import { test } from "node:test";
import type { CaptureConfig } from "@sessiontrack/proto";
import { cohortHash, decideCapture, inCohort } from "./sampling.js";
import { captureConfig } from "./testing/harness.js";

function config(overrides: Partial<CaptureConfig> = {}): CaptureConfig {
  return captureConfig("r1", overrides);
}

test("cohortHash is stable and spreads ids evenly", () => {
  assert.equal(cohortHash("session-42"), cohortHash("session-42"));
  let below = 0;
  for (let i = 0; i < 10_000; i++) if (inCohort(`session-${i}`, 0.3)) below++;
  assert.ok(below > 2700 && below < 3300, `expected ~3000 of 10000 in a 30% cohort, got ${below}`);
});

test("a session in a cohort stays in every larger cohort (sticky under rate increases)", () => {
  for (let i = 0; i < 500; i++) {
    const id = `s${i}`;
    if (inCohort(id, 0.1)) assert.ok(inCohort(id, 0.5), id);
  }
});

const cases: {
  name: string;
  cfg: CaptureConfig | undefined;
  ctx: Parameters<typeof decideCapture>[1];
  want: boolean;
}[] = [
  { name: "no config yet captures", cfg: undefined, ctx: { sessionId: "s", botId: "b" }, want: true },
  {
    name: "disabled captures nothing",
    cfg: config({ enabled: false }),
    ctx: { sessionId: "s", botId: "b" },
    want: false,
  },
  {
    name: "rate 1 captures",
    cfg: config({ sampleRate: 1 }),
    ctx: { sessionId: "s", botId: "b" },
    want: true,
  },
  {
    name: "rate 0 captures nothing",
    cfg: config({ sampleRate: 0 }),
    ctx: { sessionId: "s", botId: "b" },
    want: false,
  },
  {
    name: "user opt-out wins over rate 1",
    cfg: config({ optOut: { userIds: ["u1"], botIds: [] } }),
    ctx: { sessionId: "s", botId: "b", userId: "u1" },
    want: false,
  },
  {
    name: "bot opt-out wins over a matching cohort",
    cfg: config({
      optOut: { userIds: [], botIds: ["b"] },
      cohorts: [{ name: "all", botIds: ["b"], userGroups: [], sampleRate: 1 }],
    }),
    ctx: { sessionId: "s", botId: "b" },
    want: false,
  },
  {
    name: "first matching cohort rule wins",
    cfg: config({
      sampleRate: 0,
      cohorts: [
        { name: "beta", botIds: [], userGroups: ["beta"], sampleRate: 1 },
        { name: "none", botIds: [], userGroups: [], sampleRate: 0 },
      ],
    }),
    ctx: { sessionId: "s", botId: "b", userGroups: ["staff", "beta"] },
    want: true,
  },
  {
    name: "rule for another bot is skipped, the next rule applies",
    cfg: config({
      sampleRate: 1,
      cohorts: [
        { name: "other", botIds: ["other-bot"], userGroups: [], sampleRate: 1 },
        { name: "off", botIds: ["b"], userGroups: [], sampleRate: 0 },
      ],
    }),
    ctx: { sessionId: "s", botId: "b" },
    want: false,
  },
  {
    name: "rule needs both bot and group to match; else the default rate",
    cfg: config({
      sampleRate: 0,
      cohorts: [{ name: "beta-on-b", botIds: ["b"], userGroups: ["beta"], sampleRate: 1 }],
    }),
    ctx: { sessionId: "s", botId: "b", userGroups: ["staff"] },
    want: false,
  },
];

for (const c of cases) {
  test(`decideCapture: ${c.name}`, () => {
    assert.equal(decideCapture(c.cfg, c.ctx), c.want);
  });
}

test("decideCapture at a fractional rate follows cohortHash / 2^32 < rate", () => {
  for (let i = 0; i < 200; i++) {
    const sessionId = `sess-${i}`;
    const want = cohortHash(sessionId) / 2 ** 32 < 0.25;
    assert.equal(decideCapture(config({ sampleRate: 0.25 }), { sessionId, botId: "b" }), want);
  }
});
