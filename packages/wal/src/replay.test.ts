import assert from "node:assert/strict";
import { appendFile, readdir, readFile, stat, truncate, unlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { DataCorruptionError } from "@sessiontrack/errors";
import {
  encodeFrame,
  encodeSegmentHeader,
  frameBytes,
  SEGMENT_HEADER_BYTES,
  segmentFileName,
} from "./format.js";
import { makeRecords, recordingLogger, scanAll, snapshotDir, tempDir } from "./test-support.js";
import { WriteAheadLog } from "./wal.js";

/** Writes `count` records into a fresh log with `segmentBytes` and closes it; returns the segment names. */
async function seed(dir: string, count: number, segmentBytes = 64 * 1024): Promise<string[]> {
  const wal = await WriteAheadLog.open({ dir, segmentBytes });
  await wal.append(makeRecords(count, "k", 100));
  await wal.close();
  return (await readdir(dir)).filter((name) => name.endsWith(".wal")).sort();
}

/** File offset of the frame of `lsn`, found by scanning. */
async function offsetOf(dir: string, lsn: number): Promise<{ segment: string; offset: number }> {
  const entry = (await scanAll(dir)).find((e) => e.lsn === lsn);
  assert.ok(entry, `lsn ${lsn} not found`);
  return { segment: entry.segment, offset: entry.offset };
}

async function flipBit(path: string, offset: number): Promise<void> {
  const bytes = await readFile(path);
  bytes[offset]! ^= 0x10;
  await writeFile(path, bytes);
}

async function expectCorruption(dir: string, segment: string, offset: number): Promise<void> {
  const before = await snapshotDir(dir);
  await assert.rejects(WriteAheadLog.open({ dir, segmentBytes: 64 * 1024 }), (error: unknown) => {
    assert.ok(error instanceof DataCorruptionError, String(error));
    assert.ok(error.message.includes(join(dir, segment)), error.message);
    assert.ok(error.message.includes(`byte offset ${offset}`), error.message);
    return true;
  });
  assert.deepEqual(await snapshotDir(dir), before, "a corrupt log must not be modified");
}

test("a torn write at the end of the last segment is cut off exactly, keeping every earlier record", async (t) => {
  const dir = await tempDir(t);
  const [segment] = await seed(dir, 50);
  const path = join(dir, segment!);
  const sizeBefore = (await stat(path)).size;
  // The first part of a real frame for lsn 51, as a crash in the middle of a write leaves it.
  const frame = Buffer.alloc(frameBytes(3, 100));
  encodeFrame(frame, 0, 51, "k50", 3, new Uint8Array(100));
  await appendFile(path, frame.subarray(0, 70));

  const logger = recordingLogger();
  const wal = await WriteAheadLog.open({ dir, logger });
  t.after(() => wal.close());
  assert.deepEqual(wal.replay.truncated, [
    {
      segment: segment,
      offset: sizeBefore,
      bytes: 70,
      reason: "incomplete frame (length 113, 58 bytes left in file)",
    },
  ]);
  const warning = logger.entries.find((e) => e.level === "warn");
  assert.ok(warning);
  assert.deepEqual(
    [
      (warning.obj as { segment: string }).segment,
      (warning.obj as { offset: number }).offset,
      (warning.obj as { bytes: number }).bytes,
    ],
    [segment, sizeBefore, 70],
  );
  assert.equal((await stat(path)).size, sizeBefore);
  assert.deepEqual(
    (await wal.readFrom(1)).map((r) => r.key),
    makeRecords(50, "k", 100).map((r) => r.key),
  );
  assert.equal((await wal.append(makeRecords(1, "new-")))[0]?.lsn, 51);
});

test("garbage and zeros after the last frame are a torn tail too", async (t) => {
  const dir = await tempDir(t);
  const [segment] = await seed(dir, 10);
  const path = join(dir, segment!);
  const sizeBefore = (await stat(path)).size;
  await appendFile(path, Buffer.concat([Buffer.from("not a frame at all"), Buffer.alloc(4000)]));
  const wal = await WriteAheadLog.open({ dir });
  t.after(() => wal.close());
  assert.equal(wal.replay.truncated.length, 1);
  assert.equal(wal.replay.truncated[0]?.bytes, 4018);
  assert.equal((await stat(path)).size, sizeBefore);
  assert.equal(wal.replay.records, 10);
});

test("a segment cut mid-record: torn tail when it is the last, corruption when it is sealed", async (t) => {
  const dir = await tempDir(t);
  const segments = await seed(dir, 60, 2048);
  assert.ok(segments.length >= 3);
  const last = segments.at(-1)!;
  const lastStart = Number(last.slice(0, 20));
  const { offset } = await offsetOf(dir, 60);
  await truncate(join(dir, last), offset + 30);
  const wal = await WriteAheadLog.open({ dir, segmentBytes: 2048 });
  assert.equal(wal.lastDurableLsn(), 59);
  assert.deepEqual(
    wal.replay.truncated.map((cut) => [cut.segment, cut.offset, cut.bytes]),
    [[last, offset, 30]],
  );
  assert.ok(lastStart <= 59);
  await wal.close();

  const sealed = segments[1]!;
  const sealedSize = (await stat(join(dir, sealed))).size;
  await truncate(join(dir, sealed), sealedSize - 10);
  const cutAt = (await scanAll(dir)).filter((e) => e.segment === sealed).at(-1)!.offset;
  await expectCorruption(dir, sealed, cutAt);
});

test("a flipped bit in a middle record of the last segment is corruption, not a torn tail", async (t) => {
  const dir = await tempDir(t);
  const [segment] = await seed(dir, 20);
  const { offset } = await offsetOf(dir, 10);
  await flipBit(join(dir, segment!), offset + 40);
  await expectCorruption(dir, segment!, offset);

  const entries = await scanAll(dir);
  assert.equal(entries.length, 20);
  assert.deepEqual(
    entries.filter((e) => !e.checksumOk).map((e) => [e.lsn, e.offset, e.error]),
    [[10, offset, "checksum mismatch"]],
  );
  assert.deepEqual(
    entries.map((e) => e.key),
    makeRecords(20, "k", 100).map((r) => r.key),
  );
});

test("a flipped bit in a sealed segment is corruption naming the file and offset", async (t) => {
  const dir = await tempDir(t);
  const segments = await seed(dir, 60, 2048);
  const { segment, offset } = await offsetOf(dir, 3);
  assert.equal(segment, segments[0]);
  await flipBit(join(dir, segment), offset + 5); // inside the length field
  await expectCorruption(dir, segment, offset);

  const entries = await scanAll(dir);
  assert.equal(entries.filter((e) => e.checksumOk).length, 59);
  const bad = entries.filter((e) => !e.checksumOk);
  assert.equal(bad.length, 1);
  assert.equal(bad[0]?.offset, offset);
});

test("a flipped bit in the very last record cannot be told from a torn write and is cut", async (t) => {
  const dir = await tempDir(t);
  const [segment] = await seed(dir, 5);
  const { offset } = await offsetOf(dir, 5);
  await flipBit(join(dir, segment!), offset + 30);
  const wal = await WriteAheadLog.open({ dir });
  t.after(() => wal.close());
  assert.equal(wal.lastDurableLsn(), 4);
  assert.equal(wal.replay.truncated[0]?.reason, "checksum mismatch");
});

test("a torn segment header in the last segment is repaired; a header-only segment is fine", async (t) => {
  const dir = await tempDir(t);
  await seed(dir, 30);
  const next = segmentFileName(31);
  await writeFile(join(dir, next), encodeSegmentHeader(31).subarray(0, 7));

  const wal = await WriteAheadLog.open({ dir });
  assert.deepEqual(
    wal.replay.truncated.map((cut) => [cut.segment, cut.offset, cut.bytes]),
    [[next, 0, 7]],
  );
  assert.deepEqual(await readFile(join(dir, next)), encodeSegmentHeader(31));
  assert.equal(wal.lastDurableLsn(), 30);
  await wal.close();

  const again = await WriteAheadLog.open({ dir });
  assert.deepEqual(again.replay.truncated, []);
  assert.equal(again.replay.lastLsn, 30);
  assert.deepEqual(await again.append(makeRecords(1, "x")), [{ lsn: 31, duplicate: false }]);
  await again.close();
  assert.ok((await stat(join(dir, next))).size > SEGMENT_HEADER_BYTES);

  // An empty file (created, nothing written before the crash) is a torn header too.
  await writeFile(join(dir, segmentFileName(32)), Buffer.alloc(0));
  const third = await WriteAheadLog.open({ dir });
  t.after(() => third.close());
  assert.equal(third.replay.truncated[0]?.segment, segmentFileName(32));
  assert.deepEqual(await third.append(makeRecords(1, "y")), [{ lsn: 32, duplicate: false }]);
});

test("a damaged header in a sealed segment is corruption", async (t) => {
  const dir = await tempDir(t);
  const segments = await seed(dir, 60, 2048);
  await flipBit(join(dir, segments[1]!), 2);
  await expectCorruption(dir, segments[1]!, 0);
});

test("lsn gaps and out-of-order lsns are corruption", async (t) => {
  const dir = await tempDir(t);
  const segments = await seed(dir, 60, 2048);
  await unlink(join(dir, segments[1]!));
  await expectCorruption(dir, segments[2]!, 0);

  const other = await tempDir(t);
  const [segment] = await seed(other, 5);
  const path = join(other, segment!);
  const end = (await stat(path)).size;
  const frame = Buffer.alloc(frameBytes(1, 4));
  encodeFrame(frame, 0, 9, "z", 1, new Uint8Array(4));
  await appendFile(path, frame);
  await expectCorruption(other, segment!, end);
});
