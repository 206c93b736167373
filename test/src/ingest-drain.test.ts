// A real SDK against a real `sessiontrack ingest serve` whose pod annotations file asks it to
// drain (as the operator does before a scale-down): nothing is stored while it drains, the
// SDK keeps every event, and all of them arrive once after the drain is withdrawn.
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";

import { SessionTrackClient } from "@sessiontrack/client";

import { createIngestHome, startIngestProcess } from "./support/ingest-process.js";
import { readWalContents, sleep } from "./support/wal-contents.js";

async function metric(metricsAddress: string, name: string): Promise<number | undefined> {
  const text = await (await fetch(`http://${metricsAddress}/metrics`)).text();
  const match = new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, "m").exec(text);
  return match === null ? undefined : Number(match[1]);
}

async function until(what: string, probe: () => Promise<boolean> | boolean, limitMs = 15_000): Promise<void> {
  const deadline = Date.now() + limitMs;
  while (!(await probe())) {
    if (Date.now() > deadline) assert.fail(`timed out after ${limitMs} ms waiting until ${what}`);
    await sleep(50);
  }
}

test("an ingest drained by its pod annotation refuses new events; the SDK keeps them and delivers each once when it accepts again", async (t) => {
  const home = createIngestHome("sessiontrack-drain-");
  t.after(() => home.remove());
  const drainFile = join(home.root, "annotations");
  writeFileSync(drainFile, 'sessiontrack.io/template-hash="0123"\n');
  // The environment variable the operator's pod template sets, read by the real binary.
  const ingest = await startIngestProcess(home, { env: { SESSIONTRACK_DRAIN_FILE: drainFile } });
  t.after(() => ingest.stop("SIGKILL"));
  const readyz = async () => (await fetch(`http://${ingest.metricsAddress}/readyz`)).status;
  const client = new SessionTrackClient({
    target: ingest.address,
    apiKey: home.apiKey,
    botId: "drain-bot",
    spoolDir: join(home.root, "spool"),
  });
  t.after(() => client.close(1_000));
  const capture = (from: number, count: number) => {
    for (let i = from; i < from + count; i += 1) {
      client.session(`drain-session-${i % 13}`).userMessage(`message ${i}: where is my parcel?`);
    }
  };

  capture(0, 100);
  assert.equal((await client.flush(15_000)).complete, true);
  assert.equal(client.stats().acked, 100);

  writeFileSync(drainFile, 'sessiontrack.io/drain="true"\nsessiontrack.io/template-hash="0123"\n');
  await until("readyz answers 503", async () => (await readyz()) === 503);
  capture(100, 100);
  await until(
    "ingest refuses the SDK",
    async () => ((await metric(ingest.metricsAddress, "sessiontrack_ingest_drain_refusals_total")) ?? 0) > 0,
  );
  await sleep(500);
  assert.equal(
    await metric(ingest.metricsAddress, "sessiontrack_wal_records"),
    100,
    "nothing is stored while draining",
  );
  assert.equal(await metric(ingest.metricsAddress, "sessiontrack_ingest_open_streams"), 0);
  assert.equal(client.stats().acked, 100);
  assert.equal(client.stats().dropped, 0, "the SDK keeps the refused events");

  writeFileSync(drainFile, 'sessiontrack.io/template-hash="0123"\n');
  await until("readyz answers 200", async () => (await readyz()) === 200);
  const flushed = await client.flush(30_000);
  t.diagnostic(`flush after the drain: ${JSON.stringify(flushed)}; stats ${JSON.stringify(client.stats())}`);
  assert.equal(client.stats().acked, 200, "every event is acknowledged once ingest accepts again");
  assert.equal(client.stats().dropped, 0);
  await client.close(5_000);
  await ingest.stop("SIGTERM");
  const wal = await readWalContents(home.dataDir);
  assert.equal(wal.counts.size, 200, "the log holds every captured event");
  assert.deepEqual(
    [...wal.counts.values()].filter((count) => count !== 1),
    [],
    "none twice",
  );
});
