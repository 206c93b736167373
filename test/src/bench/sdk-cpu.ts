// SDK CPU per event at a bot's rate: the capture SDK runs in this process against a real
// ingest child process while a paced loop plays a support bot (~40 turns/s, ~3 events per
// turn, ~1 KiB events). process.cpuUsage() over the capture phase, minus the same loop with
// capture off (idle baseline), divided by the events captured: what the bot pays per event,
// all-in (SDK JS, grpc-js, HTTP/2, syscalls, GC).
import { join } from "node:path";
import { fileURLToPath } from "node:url";

import { SessionTrackClient, type SessionCapture } from "@sessiontrack/client";

import { createIngestHome, startIngestProcess } from "../support/ingest-process.js";

const WORDS = (
  "your parcel left the north depot this morning and is out for delivery today between two and four " +
  "in the afternoon the courier will ring the bell and leave it with a neighbour if nobody answers " +
  "you can change the slot from the tracking page or ask me to arrange a pickup point instead"
).split(" ");

function reply(seed: number, words: number): string {
  let text = "";
  for (let i = 0; i < words; i++) text += (i === 0 ? "" : " ") + WORDS[(seed * 7 + i * 13) % WORDS.length]!;
  return text;
}

const sleep = (ms: number): Promise<void> => new Promise((resolveSleep) => setTimeout(resolveSleep, ms));

/** Plays the bot for `seconds` at `turnsPerSecond`; returns events captured (0 when `client` is undefined). */
async function playBot(
  client: SessionTrackClient | undefined,
  seconds: number,
  turnsPerSecond: number,
): Promise<number> {
  const intervalMs = 1000 / turnsPerSecond;
  const started = performance.now();
  let events = 0;
  let turn = 0;
  let session: SessionCapture | undefined;
  let sessionNo = 0;
  let texts = 0;
  while (performance.now() - started < seconds * 1000) {
    const seed = turn + sessionNo * 31;
    // The bot's own work per turn, the same with capture on or off.
    const userText = reply(seed, 12);
    const answer = reply(seed + 1, 120 + (seed % 60));
    texts += userText.length + answer.length;
    if (client !== undefined) {
      if (session === undefined || turn % 6 === 0) {
        session?.end();
        if (session !== undefined) events++;
        session = client.session(`bench-sdk-cpu-${process.pid}-${sessionNo++}`, { userId: "user-1" });
        session.start({ channel: "web", locale: "en-GB" });
        events++;
      }
      session.userMessage(userText);
      events++;
      if (turn % 4 === 0) {
        session.assistantMessage({
          provider: "openai",
          model: "gpt-4o-mini",
          toolCalls: [
            { callId: `call-${turn}`, name: "track_parcel", argumentsJson: '{"parcelId":"P-4242"}' },
          ],
          usage: { inputTokens: 812, outputTokens: 12 },
          latencyMs: 210,
          finishReason: "tool_calls",
        });
        session.toolResult({
          callId: `call-${turn}`,
          name: "track_parcel",
          content: '{"status":"out for delivery","eta":"today 14:00-16:00","depot":"north"}',
        });
        events += 2;
      }
      session.assistantMessage({
        text: answer,
        provider: "openai",
        model: "gpt-4o-mini",
        usage: { inputTokens: 812, outputTokens: 160 },
        latencyMs: 640,
        finishReason: "stop",
      });
      events++;
    }
    turn++;
    const nextAt = started + turn * intervalMs;
    await sleep(Math.max(0, nextAt - performance.now()));
  }
  if (texts < 0) console.log(texts);
  return events;
}

function cpuUs(): number {
  const usage = process.cpuUsage();
  return usage.user + usage.system;
}

/**
 * Runs the measurement and returns `sdk.cpu_us_per_event` (and the figures behind it).
 * `clientOptions` lets a caller compare SDK settings (e.g. flushIntervalMs).
 */
export async function measureSdkCpu(
  options: {
    seconds?: number;
    turnsPerSecond?: number;
    /** Seconds of capture before the measured window (JIT, stream set-up); default 3. */
    warmSeconds?: number;
    clientOptions?: Record<string, unknown>;
  } = {},
): Promise<Record<string, number>> {
  const seconds = options.seconds ?? 10;
  const turnsPerSecond = options.turnsPerSecond ?? 40;
  const home = createIngestHome("sessiontrack-bench-sdk-cpu-");
  const ingest = await startIngestProcess(home);
  try {
    // Warm-up with capture on: JIT, the stream, the WAL segment (0 = measure from cold).
    const warmSeconds = options.warmSeconds ?? 3;
    if (warmSeconds > 0) {
      const warm = new SessionTrackClient({
        target: ingest.address,
        apiKey: home.apiKey,
        botId: "bench-bot",
        spoolDir: join(home.root, "spool-warm"),
        ...options.clientOptions,
      });
      await playBot(warm, warmSeconds, turnsPerSecond);
      await warm.close(10_000);
    }

    const idleStart = cpuUs();
    await playBot(undefined, seconds, turnsPerSecond);
    const idleUs = cpuUs() - idleStart;

    // onAck as the load test's bot uses it (every acked id into a Set); each call is one batch.
    const acked = new Set<string>();
    let batches = 0;
    const client = new SessionTrackClient({
      target: ingest.address,
      apiKey: home.apiKey,
      botId: "bench-bot",
      spoolDir: join(home.root, "spool"),
      onAck: (ids) => {
        batches++;
        for (const id of ids) acked.add(id);
      },
      ...options.clientOptions,
    });
    // Let the stream and WatchConfig open before the window.
    await client.flush(5000);
    await sleep(200);
    const batchesBefore = batches;
    const onStart = cpuUs();
    const events = await playBot(client, seconds, turnsPerSecond);
    const onUs = cpuUs() - onStart;
    const windowBatches = batches - batchesBefore;
    const flushed = await client.flush(10_000);
    const stats = client.stats();
    await client.close(10_000);
    if (!flushed.complete || stats.dropped > 0 || stats.rejected > 0) {
      throw new Error(`sdk-cpu bench lost events: ${JSON.stringify({ flushed, stats })}`);
    }
    return {
      "sdk.cpu_us_per_event": Number(((onUs - idleUs) / events).toFixed(2)),
      "sdk.cpu_events_per_s": Number((events / seconds).toFixed(1)),
      "sdk.cpu_events_per_batch": Number((events / Math.max(1, windowBatches)).toFixed(1)),
      "sdk.cpu_idle_us_per_s": Math.round(idleUs / seconds),
      "sdk.cpu_on_us_per_s": Math.round(onUs / seconds),
    };
  } finally {
    await ingest.stop("SIGTERM");
    home.remove();
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const seconds = Number(process.argv[2] ?? 10);
  const flush = process.argv[3];
  const warmSeconds = process.argv[4];
  const result = await measureSdkCpu({
    seconds,
    ...(warmSeconds === undefined ? {} : { warmSeconds: Number(warmSeconds) }),
    ...(flush === undefined ? {} : { clientOptions: { flushIntervalMs: Number(flush) } }),
  });
  console.log(JSON.stringify(result, null, 2));
}
