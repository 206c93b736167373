import assert from "node:assert/strict";
import { join } from "node:path";
import { test } from "node:test";

import { SessionTrackClient } from "@sessiontrack/client";

import { createIngestHome, startIngestProcess, type IngestProcess } from "./support/ingest-process.js";
import { readWalContents, seededRandom, sleep } from "./support/wal-contents.js";

const TOTAL_EVENTS = 50_000;
const EVENTS_PER_SESSION = 50;
const KILLS = 4;

test(`every acknowledged event survives SIGKILL of ingest at random moments (${TOTAL_EVENTS} events, ${KILLS} kills)`, async (t) => {
  const seed = Number(process.env["CRASH_SEED"] ?? Date.now() % 1_000_000);
  t.diagnostic(`schedule seed ${seed} (rerun with CRASH_SEED=${seed})`);
  const random = seededRandom(seed);
  const home = createIngestHome("sessiontrack-crash-");
  t.after(() => home.remove());

  let ingest: IngestProcess = await startIngestProcess(home);
  const listen = ingest.address;
  t.after(() => ingest.stop("SIGKILL"));

  const acked = new Set<string>();
  const client = new SessionTrackClient({
    target: listen,
    apiKey: home.apiKey,
    botId: "crash-bot",
    spoolDir: join(home.root, "spool"),
    ackTimeoutMs: 1_000,
    onAck: (eventIds) => {
      for (const id of eventIds) acked.add(id);
    },
  });
  t.after(() => client.close(1_000));

  let killsDone = 0;
  const chaos = (async () => {
    for (let kill = 0; kill < KILLS; kill += 1) {
      await sleep(200 + random() * 1_200);
      await ingest.stop("SIGKILL");
      killsDone += 1;
      await sleep(100 + random() * 600);
      ingest = await startIngestProcess(home, { listen });
    }
  })();

  // The bot: many concurrent sessions, each a sequence of turns, produced in slices so the
  // event loop keeps turning (as a real bot's would).
  const sessions = TOTAL_EVENTS / EVENTS_PER_SESSION;
  for (let produced = 0; produced < TOTAL_EVENTS;) {
    for (let i = 0; i < 500; i += 1, produced += 1) {
      const sessionIndex = produced % sessions;
      client
        .session(`crash-session-${sessionIndex}`, { userId: `user-${sessionIndex}` })
        .userMessage(
          `turn ${Math.floor(produced / sessions)} of session ${sessionIndex}: where is my order? ${"x".repeat(200)}`,
        );
    }
    await sleep(5 + random() * 10);
  }
  await chaos;
  assert.equal(killsDone, KILLS);

  const flushed = await client.flush(60_000);
  t.diagnostic(`flush: ${JSON.stringify(flushed)}`);
  const stats = client.stats();
  t.diagnostic(`client stats: ${JSON.stringify(stats)}`);
  assert.equal(stats.captured, TOTAL_EVENTS, "every capture() call was counted");
  assert.equal(stats.dropped, 0, "nothing dropped");
  assert.equal(stats.rejected, 0, "nothing rejected");
  await client.close(5_000);
  await ingest.stop("SIGTERM");

  const wal = await readWalContents(home.dataDir);
  assert.equal(wal.damaged, 0, "no damaged frames survive replay");
  const missing = [...acked].filter((id) => !wal.counts.has(id));
  assert.deepEqual(missing.slice(0, 5), [], `${missing.length} acknowledged events are missing from the log`);
  const duplicated = [...wal.counts].filter(([, count]) => count !== 1);
  assert.deepEqual(duplicated.slice(0, 5), [], `${duplicated.length} events are stored more than once`);
  assert.equal(acked.size, TOTAL_EVENTS, "after the faults every captured event was acknowledged");
  assert.equal(wal.counts.size, TOTAL_EVENTS, "the log holds every captured event");
});
