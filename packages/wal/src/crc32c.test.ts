import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { test } from "node:test";
import { crc32c } from "./crc32c.js";

/** Bit-at-a-time CRC32C, the definition the sliced tables must agree with. */
function referenceCrc32c(data: Uint8Array): number {
  let crc = 0xffffffff;
  for (const byte of data) {
    crc ^= byte;
    for (let bit = 0; bit < 8; bit++) crc = crc & 1 ? (crc >>> 1) ^ 0x82f63b78 : crc >>> 1;
  }
  return (crc ^ 0xffffffff) >>> 0;
}

test("crc32c matches the standard check value for '123456789'", () => {
  assert.equal(crc32c(Buffer.from("123456789", "ascii")), 0xe3069283);
});

test("crc32c of empty input is 0 and of 32 zero bytes is the RFC 3720 value", () => {
  assert.equal(crc32c(new Uint8Array(0)), 0);
  assert.equal(crc32c(new Uint8Array(32)), 0x8a9136aa);
  assert.equal(crc32c(new Uint8Array(32).fill(0xff)), 0x62a8ab43);
});

test("crc32c agrees with the bitwise definition at every length and alignment", () => {
  const data = randomBytes(1100);
  for (let length = 0; length <= 70; length++) {
    for (const start of [0, 1, 3, 7]) {
      const slice = data.subarray(start, start + length);
      assert.equal(crc32c(slice), referenceCrc32c(slice), `length ${length}, start ${start}`);
    }
  }
  assert.equal(crc32c(data), referenceCrc32c(data));
});

test("crc32c continues across chunks when given the previous value", () => {
  const data = randomBytes(777);
  for (const cut of [0, 1, 8, 100, 776, 777]) {
    assert.equal(crc32c(data.subarray(cut), crc32c(data.subarray(0, cut))), crc32c(data), `cut at ${cut}`);
  }
});
