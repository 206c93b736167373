import assert from "node:assert/strict";
import { test } from "node:test";

import { cohortHash, fnv1a32, inCanaryCohort, inCohort } from "./index.js";

function referenceFnv1a(text: string): number {
  let hash = 0x811c9dc5;
  for (const byte of Buffer.from(text, "utf8")) hash = Math.imul(hash ^ byte, 0x01000193);
  return hash >>> 0;
}

test("fnv1a32 matches the published FNV-1a 32-bit test vectors", () => {
  const vectors: Array<[string, number]> = [
    ["", 0x811c9dc5],
    ["a", 0xe40c292c],
    ["b", 0xe70c2de5],
    ["c", 0xe60c2c52],
    ["foo", 0xa9f37ed7],
    ["foob", 0x3f5076ef],
    ["fooba", 0x39aaa18a],
    ["foobar", 0xbf9cf968],
    ["chongo was here!\n", 0xd49930d5],
  ];
  for (const [input, want] of vectors) assert.equal(fnv1a32(input), want, JSON.stringify(input));
});

test("cohortHash is fnv1a32 through MurmurHash3's fmix32 (vectors computed independently)", () => {
  assert.equal(cohortHash(""), 0xab3e7c0b);
  assert.equal(cohortHash("a"), 0x1a80b1b3);
  assert.equal(cohortHash("foobar"), 0x0c0da6dc);
});

test("short numbered ids spread evenly (FNV-1a alone bunches them)", () => {
  let small = 0;
  for (let i = 0; i < 100; i++) if (inCanaryCohort(`session-${i}`, 30)) small++;
  assert.ok(small >= 18 && small <= 42, `session-0..99 at a 30% canary: ${small}`);
  let sampled = 0;
  for (let i = 0; i < 10_000; i++) if (inCohort(`s${i}`, 0.3)) sampled++;
  assert.ok(Math.abs(sampled - 3000) < 250, `s0..s9999 at 30%: ${sampled}`);
});

test("fnv1a32 hashes the UTF-8 bytes, including astral and lone surrogates", () => {
  for (const id of ["sess-ä", "セッション", "😀-chat", "x\ud800y", "\udc00", "end\ud83d"]) {
    assert.equal(fnv1a32(id), referenceFnv1a(id), id);
  }
});

test("inCohort: hash / 2^32 below the rate; rates outside (0, 1) take all or nothing", () => {
  // cohortHash("a") / 2^32 ≈ 0.1035: in at 0.11, out at 0.10.
  assert.equal(inCohort("a", 0.11), true);
  assert.equal(inCohort("a", 0.1), false);
  assert.equal(inCohort("a", 1), true);
  assert.equal(inCohort("a", 0), false);
  assert.equal(inCohort("a", -1), false);
  assert.equal(inCohort("a", Number.NaN), false);
});

test("inCanaryCohort hashes the salted id against weight / 100; ≤ 0 routes nothing, ≥ 100 everything", () => {
  // cohortHash("canary:a") = 0xd6269d36, / 2^32 ≈ 0.8365: in at 84%, out at 83%.
  assert.equal(cohortHash("canary:a"), 0xd6269d36);
  assert.equal(inCanaryCohort("a", 84), true);
  assert.equal(inCanaryCohort("a", 83), false);
  for (let i = 0; i < 200; i++) {
    const id = `s${i}`;
    assert.equal(inCanaryCohort(id, 100), true);
    assert.equal(inCanaryCohort(id, 250), true);
    assert.equal(inCanaryCohort(id, 0), false);
    assert.equal(inCanaryCohort(id, -5), false);
    assert.equal(inCanaryCohort(id, Number.NaN), false);
    assert.equal(inCanaryCohort(id, 37.5), cohortHash(`canary:${id}`) / 2 ** 32 < 0.375, id);
    // Sticky under weight increases: a canary step up never moves a session back.
    if (inCanaryCohort(id, 10)) assert.ok(inCanaryCohort(id, 25), id);
  }
});

test("the canary cohort is the right size and independent of the sampling cohort", () => {
  const total = 20_000;
  let sampled = 0;
  let canary = 0;
  let both = 0;
  for (let i = 0; i < total; i++) {
    const id = `session-${i}`;
    const s = inCohort(id, 0.5);
    const c = inCanaryCohort(id, 20);
    if (s) sampled++;
    if (c) canary++;
    if (s && c) both++;
  }
  // Binomial bounds at ~5 standard deviations: fixed ids, so the outcome is deterministic.
  assert.ok(Math.abs(sampled - 10_000) < 400, `sampled ${sampled} of ${total} at 50%`);
  assert.ok(Math.abs(canary - 4_000) < 300, `canary ${canary} of ${total} at 20%`);
  // Independence: the canary's share among sampled sessions is its share overall (~20%),
  // where an unsalted hash would put every 20% canary session inside the 50% sample.
  const shareOfSampled = both / sampled;
  const shareOfRest = (canary - both) / (total - sampled);
  assert.ok(Math.abs(shareOfSampled - 0.2) < 0.025, `canary share of sampled ${shareOfSampled}`);
  assert.ok(Math.abs(shareOfRest - 0.2) < 0.025, `canary share of unsampled ${shareOfRest}`);
});
