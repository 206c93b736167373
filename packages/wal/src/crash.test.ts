import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { test } from "node:test";
import { tempDir } from "./test-support.js";
import { WriteAheadLog } from "./wal.js";

const walModule = new URL("./index.js", import.meta.url).href;

/** Appends forever from 8 concurrent writers and prints "lsn key" for every acknowledged record. */
const writerScript = `
const { WriteAheadLog } = await import(process.argv[1]);
const [dir, round] = process.argv.slice(2);
const wal = await WriteAheadLog.open({ dir, segmentBytes: 64 * 1024 });
let next = 0;
const data = new Uint8Array(300).fill(7);
async function writer() {
  for (;;) {
    const batch = Array.from({ length: 1 + (next % 13) }, () => ({ key: round + "/" + next++, data }));
    const results = await wal.append(batch);
    process.stdout.write(results.map((r, i) => r.lsn + " " + batch[i].key + "\\n").join(""));
  }
}
process.stdout.write("ready\\n");
await Promise.all(Array.from({ length: 8 }, writer));
`;

/** Runs the writer until it has acknowledged at least `minAcked` records plus a random moment, then SIGKILLs it. */
async function runAndKill(dir: string, round: number, minAcked: number): Promise<Map<string, number>> {
  const child = spawn(
    process.execPath,
    ["--input-type=module", "-e", writerScript, walModule, dir, `r${round}`],
    {
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  const acked = new Map<string, number>();
  let partialLine = "";
  let stderr = "";
  let onEnough: () => void = () => undefined;
  child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  // Only complete lines count: a line cut by the kill was never fully reported.
  child.stdout.on("data", (chunk: Buffer) => {
    const lines = (partialLine + chunk.toString()).split("\n");
    partialLine = lines.pop()!;
    for (const line of lines) {
      const [lsn, key] = line.split(" ");
      if (key !== undefined) acked.set(key, Number(lsn));
    }
    if (acked.size >= minAcked) onEnough();
  });
  const closed = new Promise<number | null>((resolve) => child.once("close", (code) => resolve(code)));
  try {
    const enough = new Promise<void>((resolve) => (onEnough = resolve));
    const early = closed.then((code) => {
      throw new Error(`writer exited early (${code}): ${stderr}`);
    });
    await Promise.race([enough, early]);
    await new Promise((resolve) => setTimeout(resolve, Math.random() * 30));
  } finally {
    child.kill("SIGKILL");
    await closed;
  }
  return acked;
}

test("every acknowledged record survives a SIGKILL of the writing process", async (t) => {
  const dir = await tempDir(t);
  const allAcked = new Map<string, number>();
  for (let round = 0; round < 3; round++) {
    const acked = await runAndKill(dir, round, 2000);
    for (const [key, lsn] of acked) allAcked.set(key, lsn);

    const wal = await WriteAheadLog.open({ dir, segmentBytes: 64 * 1024 });
    try {
      const stored = new Map<string, number>();
      let expectedLsn = 1;
      for (const record of await wal.readFrom(1)) {
        assert.equal(record.lsn, expectedLsn++, "lsns are contiguous");
        assert.ok(!stored.has(record.key), `key ${record.key} stored twice`);
        stored.set(record.key, record.lsn);
      }
      for (const [key, lsn] of allAcked)
        assert.equal(stored.get(key), lsn, `acked ${key} at lsn ${lsn} lost`);
      assert.ok(stored.size >= allAcked.size);
    } finally {
      await wal.close();
    }
  }
});
