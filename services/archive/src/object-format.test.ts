import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { test } from "node:test";

import { newDataKey } from "./keys.js";
import {
  assembleObject,
  openSection,
  parseObject,
  sealSection,
  withoutSections,
  type Codec,
  type ObjectHeader,
} from "./object-format.js";

const events = (count: number, tag: string): Buffer[] =>
  Array.from({ length: count }, (_, index) =>
    Buffer.from(
      `${tag} event ${index}: where is my order? it was due on Monday. ${randomBytes(4).toString("hex")}`,
    ),
  );

/** Rewrites an object's header with `edit` and recomputes the trailer, as a careful attacker would. */
function forgeHeader(object: Buffer, edit: (header: ObjectHeader) => void): Buffer {
  const headerLength = object.readUInt32BE(4);
  const header = JSON.parse(object.subarray(8, 8 + headerLength).toString("utf8")) as ObjectHeader;
  edit(header);
  const headerBytes = Buffer.from(JSON.stringify(header), "utf8");
  const length = Buffer.alloc(4);
  length.writeUInt32BE(headerBytes.length);
  const body = Buffer.concat([
    object.subarray(0, 4),
    length,
    headerBytes,
    object.subarray(8 + headerLength, object.length - 32),
  ]);
  return Buffer.concat([body, createHash("sha256").update(body).digest()]);
}

for (const codec of ["deflate-d1", "deflate", "br"] as const satisfies readonly Codec[]) {
  test(`sections round-trip exactly with codec ${codec}`, () => {
    const key = newDataKey();
    const input = events(20, codec);
    const section = sealSection("acme", "ref-a", key, input, codec);
    const object = parseObject(assembleObject("acme", 1, [section]), "o");
    assert.deepEqual(openSection(object, object.header.sections[0]!, key, "o"), input);
  });
}

test("any flipped byte fails the checksum; a forged header with a recomputed checksum fails authentication", () => {
  const key = newDataKey();
  const bytes = assembleObject("acme", 1, [sealSection("acme", "ref-a", key, events(5, "a"), "deflate-d1")]);
  for (const position of [0, 5, 20, bytes.length - 40, bytes.length - 1]) {
    const flipped = Buffer.from(bytes);
    flipped[position]! ^= 0x01;
    assert.throws(() => parseObject(flipped, "o"), /o: checksum mismatch/);
  }
  for (const edit of [
    (header: ObjectHeader) => {
      header.tenant = "globex";
    },
    (header: ObjectHeader) => {
      header.sections[0]!.events = 4;
    },
    (header: ObjectHeader) => {
      header.sections[0]!.keyId = "0".repeat(24);
    },
    (header: ObjectHeader) => {
      header.sections[0]!.session = "ref-b";
    },
  ]) {
    const forged = parseObject(forgeHeader(bytes, edit), "forged");
    assert.throws(
      () => openSection(forged, forged.header.sections[0]!, key, "forged"),
      /authentication failed/,
    );
  }
  const parsed = parseObject(bytes, "o");
  assert.throws(
    () => openSection(parsed, parsed.header.sections[0]!, newDataKey(), "o"),
    /authentication failed/,
  );
});

test("dropping a section keeps the others readable without decrypting them", () => {
  const a = newDataKey();
  const b = newDataKey();
  const inputA = events(3, "a");
  const inputB = events(4, "b");
  const sectionA = sealSection("acme", "ref-a", a, inputA, "deflate-d1");
  const sectionB = sealSection("acme", "ref-b", b, inputB, "deflate-d1");
  const object = parseObject(assembleObject("acme", 7, [sectionA, sectionB]), "o");
  const remaining = parseObject(withoutSections(object, new Set([sectionA.header.id]))!, "o2");
  assert.equal(remaining.header.createdAt, 7);
  assert.equal(remaining.header.events, 4);
  assert.deepEqual(openSection(remaining, remaining.header.sections[0]!, b, "o2"), inputB);
  assert.equal(withoutSections(object, new Set([sectionA.header.id, sectionB.header.id])), undefined);
});
