import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, rmSync, truncateSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { crc32, crc32Table } from "./crc32.js";
import { DiskSpool, encodeFrames, parseSpoolFile } from "./spool.js";

function tempDir(t: { after: (fn: () => void) => void }): string {
  const dir = mkdtempSync(join(tmpdir(), "st-spool-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

const payload = (i: number): Uint8Array => Buffer.from(`event-${i}`.padEnd(40, "."));

test("crc32 matches the IEEE check value", () => {
  assert.equal(crc32(Buffer.from("123456789")), 0xcbf43926);
  assert.equal(crc32(new Uint8Array(0)), 0);
  assert.equal(crc32Table(Buffer.from("123456789")), 0xcbf43926);
  // The native (zlib) and table versions agree, whichever one this Node uses.
  for (let size = 1; size < 3000; size += 97) {
    const bytes = new Uint8Array(size).map((_, i) => (i * 31 + size) & 0xff);
    assert.equal(crc32(bytes), crc32Table(bytes), `size ${size}`);
  }
});

test("parseSpoolFile stops at a torn tail and at a flipped bit", () => {
  const frames = encodeFrames([payload(1), payload(2), payload(3)]);
  assert.equal(parseSpoolFile(frames).frames.length, 3);
  const torn = parseSpoolFile(frames.subarray(0, frames.length - 5));
  assert.equal(torn.frames.length, 2);
  assert.ok(torn.tornTailBytes > 0);
  const flipped = Buffer.from(frames);
  flipped[frames.length - 3]! ^= 0x01;
  assert.equal(parseSpoolFile(flipped).frames.length, 2);
});

test("spool appends, seals, loads oldest first and deletes a segment only when finished", (t) => {
  const dir = tempDir(t);
  const spool = new DiskSpool(dir, 1024 * 1024, 200);
  spool.open();
  assert.equal(spool.append([payload(1), payload(2), payload(3), payload(4), payload(5)]).written, 5);
  assert.equal(spool.append([payload(6)]).written, 1);
  const first = spool.loadNext(() => assert.fail("no torn tail expected"))!;
  assert.deepEqual(
    first.frames.map((f) => Buffer.from(f).toString().slice(0, 7)),
    ["event-1", "event-2", "event-3", "event-4", "event-5"],
  );
  const taken = first.takePending(2);
  assert.deepEqual(taken.indexes, [0, 1]);
  first.resetInFlight();
  assert.deepEqual(first.takePending(10).indexes, [0, 1, 2, 3, 4]);
  first.markDone([0, 1, 2, 3]);
  assert.equal(first.finished, false);
  first.markDone([4]);
  assert.equal(first.finished, true);
  spool.release(first);
  const second = spool.loadNext(() => undefined)!;
  assert.equal(second.frames.length, 1);
  spool.release(second);
  assert.equal(
    spool.loadNext(() => undefined),
    undefined,
  );
  assert.equal(spool.totalBytes, 0);
  spool.close();
  assert.deepEqual(readdirSync(dir), []);
});

test("spool refuses frames beyond its byte cap and keeps the older ones", (t) => {
  const dir = tempDir(t);
  const spool = new DiskSpool(dir, 3 * (8 + 40));
  spool.open();
  assert.equal(spool.append([payload(1), payload(2)]).written, 2);
  assert.equal(spool.append([payload(3), payload(4), payload(5)]).written, 1);
  assert.equal(spool.totalBytes, 3 * 48);
  spool.close();
});

test("a new spool adopts sealed files and dead writers' open files, not a live writer's", (t) => {
  const dir = tempDir(t);
  writeFileSync(join(dir, "000000000000001-999999-00000000.spool"), encodeFrames([payload(1)]));
  writeFileSync(
    join(dir, "000000000000002-2147483646-00000000.open"),
    encodeFrames([payload(2), payload(3)]),
  );
  writeFileSync(join(dir, `000000000000003-${process.ppid}-00000000.open`), encodeFrames([payload(4)]));
  const torn = join(dir, "000000000000004-999999-00000001.spool");
  writeFileSync(torn, encodeFrames([payload(5), payload(6)]));
  truncateSync(torn, 48 + 10);
  const spool = new DiskSpool(dir, 1024 * 1024);
  spool.open();
  const seen: string[] = [];
  const tornReports: number[] = [];
  const onTorn = (_path: string, bytes: number): void => void tornReports.push(bytes);
  for (let s = spool.loadNext(onTorn); s; s = spool.loadNext(onTorn)) {
    assert.equal(s.adopted, true);
    seen.push(...s.frames.map((f) => Buffer.from(f).toString().slice(0, 7)));
    spool.release(s);
  }
  assert.deepEqual(seen, ["event-1", "event-2", "event-3", "event-5"]);
  assert.deepEqual(tornReports, [10]);
  assert.deepEqual(readdirSync(dir), [`000000000000003-${process.ppid}-00000000.open`]);
});
