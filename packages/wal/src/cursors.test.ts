import assert from "node:assert/strict";
import { readdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { ConfigError, DataCorruptionError, InvalidEventError } from "@sessiontrack/errors";
import { makeRecords, recordingLogger, tempDir } from "./test-support.js";
import { WriteAheadLog } from "./wal.js";

const sinks = ["archive", "index"] as const;

async function segmentNames(dir: string): Promise<string[]> {
  return (await readdir(dir)).filter((name) => name.endsWith(".wal")).sort();
}

test("segments are deleted only once every sink confirmed them, and cursors survive reopen", async (t) => {
  const dir = await tempDir(t);
  const wal = await WriteAheadLog.open({ dir, segmentBytes: 1024, sinks });
  await wal.append(makeRecords(60, "c", 100));
  const before = await segmentNames(dir);
  assert.ok(before.length >= 6);
  assert.equal(wal.getCursor("archive"), 0);

  await wal.confirm("archive", 60);
  assert.equal(wal.getCursor("archive"), 60);
  assert.deepEqual(await segmentNames(dir), before, "index has confirmed nothing yet");

  // Records 1..25 confirmed by both: only segments wholly at or below 25 may go.
  await wal.confirm("index", 25);
  const after = await segmentNames(dir);
  const bases = before.map((name) => Number(name.slice(0, 20)));
  // A segment's last lsn is the next segment's base minus one.
  const expected = before.filter((_, i) => i === before.length - 1 || bases[i + 1]! - 1 > 25);
  assert.deepEqual(after, expected);
  assert.ok(after.length < before.length);
  const firstRetained = Number(after[0]!.slice(0, 20));
  assert.equal((await wal.readFrom(1))[0]?.lsn, firstRetained);
  assert.equal(wal.stats().keys, 60 - firstRetained + 1);
  // A deleted record's key is forgotten: resending it stores it again.
  assert.deepEqual(await wal.append([makeRecords(1, "c", 100)[0]!]), [{ lsn: 61, duplicate: false }]);
  // A cursor never moves backwards.
  await wal.confirm("index", 10);
  assert.equal(wal.getCursor("index"), 25);
  await wal.close();

  const reopened = await WriteAheadLog.open({ dir, segmentBytes: 1024, sinks });
  t.after(() => reopened.close());
  assert.equal(reopened.getCursor("archive"), 60);
  assert.equal(reopened.getCursor("index"), 25);
  assert.equal(reopened.replay.lastLsn, 61);
  // Confirming everything keeps the active segment, so lsns continue after a reopen.
  await reopened.confirm("index", 61);
  await reopened.confirm("archive", 61);
  assert.equal((await segmentNames(dir)).length, 1);
  assert.deepEqual(await reopened.append(makeRecords(1, "z")), [{ lsn: 62, duplicate: false }]);
});

test("with no sinks nothing is ever deleted and confirm names the unknown sink", async (t) => {
  const dir = await tempDir(t);
  const wal = await WriteAheadLog.open({ dir, segmentBytes: 1024 });
  t.after(() => wal.close());
  await wal.append(makeRecords(30, "n", 100));
  const names = await segmentNames(dir);
  await assert.rejects(wal.confirm("archive", 30), (error: unknown) => {
    assert.ok(error instanceof ConfigError);
    assert.match(error.message, /unknown sink "archive"/);
    return true;
  });
  assert.throws(() => wal.getCursor("archive"), ConfigError);
  assert.deepEqual(await segmentNames(dir), names);
});

test("confirm rejects lsns that are not durable yet", async (t) => {
  const dir = await tempDir(t);
  const wal = await WriteAheadLog.open({ dir, sinks });
  t.after(() => wal.close());
  await wal.append(makeRecords(3));
  await assert.rejects(wal.confirm("index", 4), InvalidEventError);
  await assert.rejects(wal.confirm("index", -1), InvalidEventError);
  await wal.confirm("index", 3);
  assert.equal(wal.getCursor("index"), 3);
});

test("a cursor beyond the log is clamped and logged; a damaged cursor file is corruption", async (t) => {
  const dir = await tempDir(t);
  const wal = await WriteAheadLog.open({ dir, sinks });
  await wal.append(makeRecords(5));
  await wal.close();
  await writeFile(join(dir, "cursor-index.json"), JSON.stringify({ version: 1, sink: "index", lsn: 999 }));
  const logger = recordingLogger();
  const reopened = await WriteAheadLog.open({ dir, sinks, logger });
  assert.equal(reopened.getCursor("index"), 5);
  assert.equal(reopened.getCursor("archive"), 0);
  assert.ok(logger.entries.some((e) => e.level === "warn" && /clamped/.test(e.msg)));
  await reopened.close();

  await writeFile(join(dir, "cursor-archive.json"), "{not json");
  await assert.rejects(WriteAheadLog.open({ dir, sinks }), DataCorruptionError);
});

test("sink names are checked at open", async (t) => {
  const dir = await tempDir(t);
  await assert.rejects(WriteAheadLog.open({ dir, sinks: ["../escape"] }), ConfigError);
  await assert.rejects(WriteAheadLog.open({ dir, sinks: ["a", "a"] }), ConfigError);
  await assert.rejects(WriteAheadLog.open({ dir, segmentBytes: 10 }), ConfigError);
});
