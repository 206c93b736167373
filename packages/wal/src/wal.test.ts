import assert from "node:assert/strict";
import { readdir, stat } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { InvalidEventError, StorageUnavailableError } from "@sessiontrack/errors";
import { SEGMENT_HEADER_BYTES, frameBytes, segmentFileName } from "./format.js";
import { makeRecords, tempDir } from "./test-support.js";
import { WriteAheadLog } from "./wal.js";

test("records round-trip across many small segments and survive reopen", async (t) => {
  const dir = await tempDir(t);
  const segmentBytes = 4096;
  const records = makeRecords(600);
  const wal = await WriteAheadLog.open({ dir, segmentBytes });
  const sequential = await wal.append(records.slice(0, 100));
  const concurrent = await Promise.all(
    Array.from({ length: 50 }, (_, i) => wal.append(records.slice(100 + i * 10, 110 + i * 10))),
  );
  const results = [...sequential, ...concurrent.flat()];
  assert.deepEqual(
    results.map((r) => r.lsn),
    records.map((_, i) => i + 1),
  );
  assert.ok(results.every((r) => !r.duplicate));
  assert.equal(wal.lastDurableLsn(), 600);

  const read = await wal.readFrom(1);
  assert.deepEqual(
    read.map((r) => [r.lsn, r.key, Buffer.from(r.data).toString("hex")]),
    records.map((r, i) => [i + 1, r.key, Buffer.from(r.data).toString("hex")]),
  );
  await wal.close();

  const files = (await readdir(dir)).filter((name) => name.endsWith(".wal")).sort();
  assert.ok(files.length > 10, `expected many segments, got ${files.length}`);
  assert.equal(files[0], segmentFileName(1));
  for (const name of files) {
    assert.ok((await stat(join(dir, name))).size <= segmentBytes, `${name} exceeds segmentBytes`);
  }

  const reopened = await WriteAheadLog.open({ dir, segmentBytes });
  t.after(() => reopened.close());
  assert.deepEqual(reopened.replay, { segments: files.length, records: 600, lastLsn: 600, truncated: [] });
  const reread = await reopened.readFrom(1);
  assert.deepEqual(
    reread.map((r) => [r.lsn, r.key, Buffer.from(r.data).toString("hex")]),
    read.map((r) => [r.lsn, r.key, Buffer.from(r.data).toString("hex")]),
  );
  // Segment names are the lsn of their first record.
  for (const name of files) {
    const base = Number(name.slice(0, 20));
    assert.equal(reread[base - 1]?.lsn, base);
  }
  const [next] = await reopened.append(makeRecords(1, "after-"));
  assert.deepEqual(next, { lsn: 601, duplicate: false });
});

test("readFrom honours fromLsn, maxRecords and maxBytes across segments", async (t) => {
  const dir = await tempDir(t);
  const wal = await WriteAheadLog.open({ dir, segmentBytes: 1024 });
  t.after(() => wal.close());
  await wal.append(makeRecords(100, "r", 100));
  const frame = frameBytes(Buffer.byteLength("r10"), 100);

  assert.deepEqual(
    (await wal.readFrom(40, { maxRecords: 25 })).map((r) => r.lsn),
    Array.from({ length: 25 }, (_, i) => 40 + i),
  );
  assert.deepEqual(
    (await wal.readFrom(10, { maxBytes: frame * 3 })).map((r) => r.lsn),
    [10, 11, 12],
  );
  // A record bigger than maxBytes still comes back alone, so a reader can never stall.
  assert.deepEqual(
    (await wal.readFrom(50, { maxBytes: 1 })).map((r) => r.lsn),
    [50],
  );
  assert.equal((await wal.readFrom(0)).length, 100);
  assert.deepEqual(
    (await wal.readFrom(99)).map((r) => r.key),
    ["r98", "r99"],
  );
  assert.deepEqual(await wal.readFrom(101), []);
  await assert.rejects(wal.readFrom(1, { maxRecords: 0 }), InvalidEventError);
});

test("a key is stored once: duplicates in one batch, across batches, concurrent and after reopen", async (t) => {
  const dir = await tempDir(t);
  const wal = await WriteAheadLog.open({ dir });
  const payload = new Uint8Array([1, 2, 3]);
  const first = await wal.append([
    { key: "tenant/a", data: payload },
    { key: "tenant/b", data: payload },
    { key: "tenant/a", data: new Uint8Array([9]) },
  ]);
  assert.deepEqual(first, [
    { lsn: 1, duplicate: false },
    { lsn: 2, duplicate: false },
    { lsn: 1, duplicate: true },
  ]);
  assert.deepEqual(await wal.append([{ key: "tenant/b", data: payload }]), [{ lsn: 2, duplicate: true }]);

  const [left, right] = await Promise.all([
    wal.append([{ key: "tenant/c", data: payload }]),
    wal.append([
      { key: "tenant/d", data: payload },
      { key: "tenant/c", data: payload },
    ]),
  ]);
  assert.deepEqual(left, [{ lsn: 3, duplicate: false }]);
  assert.deepEqual(right, [
    { lsn: 4, duplicate: false },
    { lsn: 3, duplicate: true },
  ]);
  assert.equal(wal.stats().records, 4);
  assert.equal(wal.stats().keys, 4);
  assert.deepEqual(
    (await wal.readFrom(1)).map((r) => [r.key, [...r.data]]),
    [
      ["tenant/a", [1, 2, 3]],
      ["tenant/b", [1, 2, 3]],
      ["tenant/c", [1, 2, 3]],
      ["tenant/d", [1, 2, 3]],
    ],
  );
  await wal.close();

  const reopened = await WriteAheadLog.open({ dir });
  t.after(() => reopened.close());
  assert.deepEqual(
    await reopened.append([
      { key: "tenant/c", data: payload },
      { key: "tenant/e", data: payload },
    ]),
    [
      { lsn: 3, duplicate: true },
      { lsn: 5, duplicate: false },
    ],
  );
  assert.equal(reopened.stats().records, 1);
});

test("group commit: many concurrent appends share few fdatasyncs and keep call order", async (t) => {
  const dir = await tempDir(t);
  const wal = await WriteAheadLog.open({ dir });
  t.after(() => wal.close());
  const durable: number[] = [];
  const unsubscribe = wal.onDurable((lsn) => durable.push(lsn));
  const syncsBefore = wal.stats().syncs;
  const calls = makeRecords(2000, "g", 256).map((record) => wal.append([record]));
  const results = await Promise.all(calls);
  assert.deepEqual(
    results.map(([r]) => r?.lsn),
    Array.from({ length: 2000 }, (_, i) => i + 1),
  );
  const syncs = wal.stats().syncs - syncsBefore;
  assert.ok(syncs >= 1 && syncs <= 20, `2000 appends took ${syncs} fdatasyncs`);
  assert.equal(wal.stats().appends, 2000);
  assert.equal(durable.length, syncs);
  assert.equal(durable.at(-1), 2000);
  assert.deepEqual(
    durable,
    [...durable].sort((a, b) => a - b),
  );
  unsubscribe();
  await wal.append(makeRecords(1, "late-"));
  assert.equal(durable.at(-1), 2000);
});

test("a record that cannot fit in an empty segment is rejected, naming its size and the limit", async (t) => {
  const dir = await tempDir(t);
  const segmentBytes = 1024;
  const wal = await WriteAheadLog.open({ dir, segmentBytes });
  t.after(() => wal.close());
  const limit = segmentBytes - SEGMENT_HEADER_BYTES;
  const fitting = new Uint8Array(limit - frameBytes(1, 0));
  assert.deepEqual(await wal.append([{ key: "a", data: fitting }]), [{ lsn: 1, duplicate: false }]);
  const sizeBefore = wal.stats().retainedBytes;

  const tooBig = new Uint8Array(fitting.length + 1);
  await assert.rejects(
    wal.append([
      { key: "b", data: new Uint8Array(1) },
      { key: "c", data: tooBig },
    ]),
    (error: unknown) => {
      assert.ok(error instanceof InvalidEventError);
      assert.equal(error.eventIndex, 1);
      assert.match(error.message, new RegExp(`${limit + 1} bytes.*limit of ${limit} bytes`));
      return true;
    },
  );
  // Nothing of the rejected call was written, not even its valid first record.
  assert.equal(wal.lastDurableLsn(), 1);
  assert.equal(wal.stats().retainedBytes, sizeBefore);
  assert.deepEqual(await wal.append([{ key: "b", data: new Uint8Array(1) }]), [{ lsn: 2, duplicate: false }]);
});

test("keys are validated: non-empty, at most 1024 UTF-8 bytes, well-formed", async (t) => {
  const dir = await tempDir(t);
  const wal = await WriteAheadLog.open({ dir });
  t.after(() => wal.close());
  const data = new Uint8Array(1);
  assert.equal((await wal.append([{ key: "é".repeat(512), data }]))[0]?.lsn, 1);
  await assert.rejects(
    wal.append([{ key: "é".repeat(512) + "x", data }]),
    /1025 bytes, more than the limit of 1024/,
  );
  await assert.rejects(wal.append([{ key: "", data }]), InvalidEventError);
  await assert.rejects(wal.append([{ key: "bad\ud800", data }]), /lone surrogate/);
  assert.deepEqual(await wal.append([]), []);
});

test("close waits for in-flight appends; later appends reject with StorageUnavailableError", async (t) => {
  const dir = await tempDir(t);
  const wal = await WriteAheadLog.open({ dir });
  const inFlight = Promise.all(makeRecords(50).map((record) => wal.append([record])));
  await wal.close();
  assert.equal((await inFlight).length, 50);
  assert.equal(wal.lastDurableLsn(), 50);
  await assert.rejects(wal.append(makeRecords(1, "x")), StorageUnavailableError);
  await wal.close();

  const reopened = await WriteAheadLog.open({ dir });
  t.after(() => reopened.close());
  assert.equal(reopened.replay.records, 50);
});

test("open creates missing nested directories and an empty log starts at lsn 1", async (t) => {
  const root = await tempDir(t);
  const dir = join(root, "a", "b", "wal");
  const wal = await WriteAheadLog.open({ dir });
  t.after(() => wal.close());
  assert.deepEqual(wal.replay, { segments: 0, records: 0, lastLsn: 0, truncated: [] });
  assert.equal(wal.lastDurableLsn(), 0);
  assert.deepEqual(await wal.readFrom(1), []);
  assert.deepEqual(await readdir(dir), [segmentFileName(1), "LOCK"]);
  assert.deepEqual(await wal.append(makeRecords(1)), [{ lsn: 1, duplicate: false }]);
});
