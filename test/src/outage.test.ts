import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";

import { SessionTrackClient } from "@sessiontrack/client";

import { createIngestHome, startIngestProcess, type IngestProcess } from "./support/ingest-process.js";
import { readWalContents, sleep } from "./support/wal-contents.js";

test("ingest down for 10 s mid-stream: the SDK spools, then delivers everything once", async (t) => {
  const home = createIngestHome("sessiontrack-outage-");
  t.after(() => home.remove());
  let ingest: IngestProcess = await startIngestProcess(home);
  const listen = ingest.address;
  t.after(() => ingest.stop("SIGKILL"));

  const client = new SessionTrackClient({
    target: listen,
    apiKey: home.apiKey,
    botId: "outage-bot",
    spoolDir: join(home.root, "spool"),
  });
  t.after(() => client.close(1_000));

  let spooledDuringOutage = 0;
  let captured = 0;
  const started = Date.now();
  const phase = (): "before" | "down" | "after" => {
    const elapsed = Date.now() - started;
    return elapsed < 3_000 ? "before" : elapsed < 13_000 ? "down" : "after";
  };
  let outage: Promise<void> | undefined;
  while (Date.now() - started < 16_000) {
    if (phase() === "down" && outage === undefined) {
      outage = (async () => {
        await ingest.stop("SIGTERM");
        await sleep(10_000);
        ingest = await startIngestProcess(home, { listen });
      })();
    }
    for (let i = 0; i < 40; i += 1) {
      const session = captured % 97;
      client
        .session(`outage-session-${session}`, { userId: `user-${session}` })
        .userMessage(`message ${captured}: please reschedule my delivery to Friday`);
      captured += 1;
    }
    if (phase() === "down") spooledDuringOutage = Math.max(spooledDuringOutage, client.stats().spooled);
    await sleep(20);
  }
  await outage;

  const flushed = await client.flush(60_000);
  t.diagnostic(`flush: ${JSON.stringify(flushed)}`);
  const stats = client.stats();
  t.diagnostic(`client stats: ${JSON.stringify(stats)}`);
  assert.ok(spooledDuringOutage > 0, "events were spooled to disk while ingest was down");
  assert.equal(stats.captured, captured);
  assert.equal(stats.dropped, 0);
  assert.equal(stats.acked, captured, "every event was acknowledged after the outage");
  await client.close(5_000);
  await ingest.stop("SIGTERM");

  const wal = await readWalContents(home.dataDir);
  assert.equal(wal.counts.size, captured, "the log holds every captured event");
  const duplicated = [...wal.counts].filter(([, count]) => count !== 1);
  assert.equal(duplicated.length, 0, "no event is stored twice");
});

test("disabling capture in the WatchConfig file stops a live SDK within 2 s", async (t) => {
  const home = createIngestHome("sessiontrack-killswitch-");
  t.after(() => home.remove());
  const ingest = await startIngestProcess(home);
  t.after(() => ingest.stop("SIGTERM"));
  const client = new SessionTrackClient({
    target: ingest.address,
    apiKey: home.apiKey,
    botId: "killswitch-bot",
    spoolDir: join(home.root, "spool"),
  });
  t.after(() => client.close(1_000));

  const waitFor = async (condition: () => boolean, limitMs: number): Promise<number> => {
    const from = Date.now();
    while (!condition()) {
      if (Date.now() - from > limitMs) return Number.POSITIVE_INFINITY;
      await sleep(10);
    }
    return Date.now() - from;
  };
  assert.ok(Number.isFinite(await waitFor(() => client.config !== undefined, 5_000)), "config received");
  client.session("before-disable").userMessage("captured");
  await client.flush(5_000);

  writeFileSync(home.captureConfigFile, "enabled: false\nsampleRate: 1\nstage: full\n");
  const stoppedAfterMs = await waitFor(() => client.stats().captureEnabled === false, 5_000);
  t.diagnostic(`capture stopped ${stoppedAfterMs} ms after the config file changed`);
  assert.ok(stoppedAfterMs <= 2_000, `capture stopped after ${stoppedAfterMs} ms, limit 2000 ms`);

  const skippedBefore = client.stats().disabledSkipped;
  client.session("while-disabled").userMessage("must not be captured");
  assert.equal(client.stats().disabledSkipped, skippedBefore + 1);

  writeFileSync(home.captureConfigFile, "enabled: true\nsampleRate: 1\nstage: full\n");
  assert.ok(Number.isFinite(await waitFor(() => client.stats().captureEnabled === true, 5_000)));
  client.session("after-enable").userMessage("captured again");
  await client.flush(5_000);
  await client.close(5_000);
  await ingest.stop("SIGTERM");

  const wal = await readWalContents(home.dataDir);
  assert.equal(wal.records, 2, "only the two events captured while enabled are stored");
});
