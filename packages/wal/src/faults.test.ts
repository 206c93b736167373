import assert from "node:assert/strict";
import { stat } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { StorageFullError, StorageUnavailableError } from "@sessiontrack/errors";
import { segmentFileName } from "./format.js";
import { FaultFileSystem, makeRecords, recordingLogger, scanAll, tempDir } from "./test-support.js";
import { WriteAheadLog } from "./wal.js";

function causeCode(error: unknown): unknown {
  return (error as { cause?: { code?: unknown } }).cause?.code;
}

test("ENOSPC: the group is rejected with StorageFullError, nothing acked, the log stays usable", async (t) => {
  const dir = await tempDir(t);
  const fs = new FaultFileSystem();
  const wal = await WriteAheadLog.open({ dir, fs });
  await wal.append(makeRecords(10, "ok-"));
  const segmentPath = join(dir, segmentFileName(1));
  const durableSize = (await stat(segmentPath)).size;

  // The disk fills halfway through the group's write: part of it reached the file.
  fs.inject("write", "ENOSPC", { pathIncludes: ".wal", partialBytes: 150 });
  const failed = await Promise.allSettled([
    wal.append(makeRecords(5, "lost-")),
    wal.append(makeRecords(5, "lost-", undefined, 5)),
  ]);
  for (const outcome of failed) {
    assert.equal(outcome.status, "rejected");
    assert.ok(outcome.reason instanceof StorageFullError, String(outcome.reason));
    assert.equal(causeCode(outcome.reason), "ENOSPC");
  }
  assert.equal(wal.lastDurableLsn(), 10);
  assert.equal(wal.stats().failed, null);
  assert.equal((await stat(segmentPath)).size, durableSize, "the partial write was cut back");
  assert.equal((await wal.readFrom(1)).length, 10);

  // Space returns: the same keys are accepted as new records, with the next lsns.
  fs.clear();
  const retried = await wal.append(makeRecords(5, "lost-"));
  assert.deepEqual(
    retried.map((r) => [r.lsn, r.duplicate]),
    [11, 12, 13, 14, 15].map((lsn) => [lsn, false]),
  );
  await wal.close();

  const reopened = await WriteAheadLog.open({ dir });
  t.after(() => reopened.close());
  assert.deepEqual(reopened.replay, { segments: 1, records: 15, lastLsn: 15, truncated: [] });
  const entries = await scanAll(dir);
  assert.equal(entries.length, 15);
  assert.ok(entries.every((e) => e.checksumOk));
});

test("ENOSPC while rolling to a new segment removes the half-made file and keeps the log usable", async (t) => {
  const dir = await tempDir(t);
  const fs = new FaultFileSystem();
  const wal = await WriteAheadLog.open({ dir, fs, segmentBytes: 1024 });
  await wal.append(makeRecords(8, "a", 100));
  const next = segmentFileName(wal.lastDurableLsn() + 1);
  fs.inject("write", "ENOSPC", { pathIncludes: next, partialBytes: 5 });
  await assert.rejects(wal.append(makeRecords(3, "b", 100)), StorageFullError);
  await assert.rejects(stat(join(dir, next)), { code: "ENOENT" });
  assert.equal(wal.stats().failed, null);

  const results = await wal.append(makeRecords(3, "b", 100));
  assert.deepEqual(
    results.map((r) => r.lsn),
    [9, 10, 11],
  );
  await wal.close();
  const reopened = await WriteAheadLog.open({ dir, segmentBytes: 1024 });
  t.after(() => reopened.close());
  assert.equal(reopened.replay.records, 11);
  assert.deepEqual(reopened.replay.truncated, []);
});

test("fdatasync EIO fails the log closed until it is reopened", async (t) => {
  const dir = await tempDir(t);
  const fs = new FaultFileSystem();
  const logger = recordingLogger();
  const wal = await WriteAheadLog.open({ dir, fs, logger });
  const acked = await wal.append(makeRecords(20, "acked-"));
  const syncsBefore = fs.calls.get("datasync") ?? 0;

  fs.inject("datasync", "EIO");
  const inFlight = await Promise.allSettled(makeRecords(30, "doomed-").map((record) => wal.append([record])));
  assert.ok(inFlight.every((outcome) => outcome.status === "rejected"));
  for (const outcome of inFlight) {
    assert.ok(outcome.status === "rejected" && outcome.reason instanceof StorageUnavailableError);
  }
  // The failed fsync is never retried: the page cache can no longer be trusted.
  assert.equal((fs.calls.get("datasync") ?? 0) - syncsBefore, 1);
  assert.match(wal.stats().failed ?? "", /fdatasync of .* failed \(EIO\)/);
  assert.ok(logger.entries.some((e) => e.level === "error"));

  fs.clear();
  await assert.rejects(wal.append(makeRecords(1, "later-")), (error: unknown) => {
    assert.ok(error instanceof StorageUnavailableError);
    assert.match(error.message, /until it is reopened/);
    assert.equal(causeCode(error), "EIO");
    return true;
  });
  assert.equal(wal.lastDurableLsn(), 20);
  await wal.close();

  const reopened = await WriteAheadLog.open({ dir });
  t.after(() => reopened.close());
  const keys = new Map((await reopened.readFrom(1)).map((r) => [r.key, r.lsn]));
  for (const [i, result] of acked.entries()) assert.equal(keys.get(`acked-${i}`), result.lsn);
  const [next] = await reopened.append(makeRecords(1, "after-"));
  assert.equal(next?.lsn, reopened.replay.lastLsn + 1);
});

test("EIO on write, or a failed truncate after ENOSPC, also fails the log", async (t) => {
  const dir = await tempDir(t);
  const fs = new FaultFileSystem();
  const wal = await WriteAheadLog.open({ dir, fs });
  t.after(() => wal.close());
  await wal.append(makeRecords(3));
  fs.inject("write", "EIO", { pathIncludes: ".wal" });
  await assert.rejects(wal.append(makeRecords(1, "x")), StorageUnavailableError);
  assert.match(wal.stats().failed ?? "", /EIO/);

  const other = await tempDir(t);
  const fs2 = new FaultFileSystem();
  const wal2 = await WriteAheadLog.open({ dir: other, fs: fs2 });
  t.after(() => wal2.close());
  fs2.inject("write", "ENOSPC", { pathIncludes: ".wal", partialBytes: 10 });
  fs2.inject("truncate", "EIO");
  await assert.rejects(wal2.append(makeRecords(1)), StorageUnavailableError);
  assert.match(wal2.stats().failed ?? "", /after a full disk failed/);
  fs2.clear();
  await assert.rejects(wal2.append(makeRecords(1)), StorageUnavailableError);
});

test("maxRetainedBytes fails appends closed until sinks confirm and segments are deleted", async (t) => {
  const dir = await tempDir(t);
  const segmentBytes = 2048;
  const wal = await WriteAheadLog.open({
    dir,
    segmentBytes,
    maxRetainedBytes: 3 * segmentBytes,
    sinks: ["archive", "index"],
  });
  t.after(() => wal.close());
  let fullError: unknown;
  for (let i = 0; i < 100 && fullError === undefined; i++) {
    try {
      await wal.append(makeRecords(1, "m", 200, i));
    } catch (error) {
      fullError = error;
    }
  }
  assert.ok(fullError instanceof StorageFullError, String(fullError));
  assert.match(fullError.message, /is full: \d+ bytes are retained in 3 segments/);
  const retained = wal.stats().retainedBytes;
  assert.ok(retained <= 3 * segmentBytes);
  const last = wal.lastDurableLsn();
  await assert.rejects(wal.append(makeRecords(1, "still-")), StorageFullError);
  assert.equal(wal.stats().failed, null);

  await wal.confirm("archive", last);
  await assert.rejects(wal.append(makeRecords(1, "still-")), StorageFullError);
  await wal.confirm("index", last);
  assert.ok(wal.stats().retainedBytes < retained);
  assert.deepEqual(await wal.append(makeRecords(1, "freed-")), [{ lsn: last + 1, duplicate: false }]);
});
