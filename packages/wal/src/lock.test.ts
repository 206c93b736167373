import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";

import { StorageUnavailableError } from "@sessiontrack/errors";

import { WriteAheadLog } from "./wal.js";
import { tempDir } from "./test-support.js";

test("a second writer on the same directory is refused, naming the holder; close releases the lock", async (t) => {
  const dir = await tempDir(t);
  const first = await WriteAheadLog.open({ dir });
  await assert.rejects(WriteAheadLog.open({ dir }), (error: unknown) => {
    assert.ok(error instanceof StorageUnavailableError);
    assert.match(error.message, /already open in this process/);
    return true;
  });
  await first.close();
  assert.equal(existsSync(join(dir, "LOCK")), false);
  const second = await WriteAheadLog.open({ dir });
  await second.close();
});

test("a lock held by a live process is refused; one left by a dead process is taken over", async (t) => {
  const dir = await tempDir(t);
  const sleeper = spawn(process.execPath, ["-e", "setTimeout(() => {}, 30000)"], { stdio: "ignore" });
  t.after(() => sleeper.kill("SIGKILL"));
  await WriteAheadLog.open({ dir }).then((log) => log.close());
  writeFileSync(join(dir, "LOCK"), `${sleeper.pid}\n`);
  await assert.rejects(WriteAheadLog.open({ dir }), new RegExp(`in use by process ${sleeper.pid}`));

  const exited = new Promise((resolve) => sleeper.once("exit", resolve));
  sleeper.kill("SIGKILL");
  await exited;
  const log = await WriteAheadLog.open({ dir });
  assert.deepEqual(await log.append([{ key: "k", data: new Uint8Array([1]) }]), [
    { lsn: 1, duplicate: false },
  ]);
  await log.close();
});
