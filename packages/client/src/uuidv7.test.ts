import assert from "node:assert/strict";
import { test } from "node:test";
import { uuidv7, uuidv7Time } from "./uuidv7.js";

const UUID_V7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

test("uuidv7 has the RFC 9562 layout: version 7, variant 10, current Unix ms", () => {
  const before = Date.now();
  const id = uuidv7();
  const after = Date.now();
  assert.match(id, UUID_V7);
  const ms = uuidv7Time(id);
  assert.ok(ms >= before && ms <= after + 1, `timestamp ${ms} not within [${before}, ${after}]`);
});

test("uuidv7 ids are unique and strictly increasing, even many per millisecond", () => {
  const ids: string[] = [];
  for (let i = 0; i < 50_000; i++) ids.push(uuidv7());
  for (let i = 1; i < ids.length; i++) {
    assert.ok(ids[i - 1]! < ids[i]!, `${ids[i - 1]} !< ${ids[i]}`);
    assert.match(ids[i]!, UUID_V7);
  }
  assert.equal(new Set(ids).size, ids.length);
});
