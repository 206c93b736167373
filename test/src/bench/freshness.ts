// Freshness: time from ingest's acknowledgement to the event being visible in Search,
// over a real stack of processes (ingest shipping to index on SQLite and archive on a
// local directory), while a steady background load flows through the same pipeline.
import { join } from "node:path";

import * as grpc from "@grpc/grpc-js";

import { SessionTrackClient } from "@sessiontrack/client";
import { Event, IngestServiceClient, Role } from "@sessiontrack/proto";

import { createStackHome, metricValue, startStack, StackReader } from "../support/stack.js";
import { sleep } from "../support/wal-contents.js";
import { appendAtMaxRate, EventFactory, percentile } from "./ingest-load.js";

/** Options of {@link runFreshnessBench}. */
export interface FreshnessBenchOptions {
  seconds: number;
  /** Background events per second through the SDK (default 500). */
  backgroundRate?: number;
}

/** Runs the freshness phase; returns `index.freshness_*` figures. */
export async function runFreshnessBench(options: FreshnessBenchOptions): Promise<Record<string, number>> {
  const home = createStackHome("sessiontrack-bench-freshness-");
  const stack = await startStack(home);
  const reader = new StackReader({ index: stack.index.address, archive: stack.archive.address });
  const ingest = new IngestServiceClient(stack.ingest.address, grpc.credentials.createInsecure());
  const background = new SessionTrackClient({
    target: stack.ingest.address,
    apiKey: home.keys.acme.ingest,
    botId: "bench-background",
    spoolDir: join(home.root, "spool"),
  });
  const metadata = new grpc.Metadata();
  metadata.set("authorization", `Bearer ${home.keys.acme.ingest}`);
  const samples: number[] = [];
  let timeouts = 0;
  let shipping: Record<string, number> | undefined;
  let stop = false;
  const rate = options.backgroundRate ?? 500;
  try {
    const load = (async () => {
      let n = 0;
      while (!stop) {
        for (let i = 0; i < rate / 20; i += 1) {
          background
            .session(`bg-${n % 200}`, { userId: `user-${n % 50}` })
            .userMessage(`background message ${n}: the delivery window moved to Friday afternoon`);
          n += 1;
        }
        await sleep(50);
      }
    })();
    const deadline = Date.now() + options.seconds * 1000;
    for (let probe = 0; Date.now() < deadline; probe += 1) {
      const token = `zq${probe}fresh${Date.now().toString(36)}`;
      const event = Event.fromPartial({
        eventId: crypto.randomUUID().replace(/^(.{14})./, "$17"),
        sessionId: `probe-${probe}`,
        seq: 1,
        time: new Date(),
        botId: "bench-probe",
        userId: "probe-user",
        payload: {
          $case: "message",
          value: {
            turnId: "t",
            role: Role.ROLE_USER,
            parts: [{ kind: { $case: "text", value: { text: `probe ${token}` } } }],
          },
        },
      });
      await new Promise<void>((resolve, reject) =>
        ingest.append({ events: [event], captureOverheadPct: 0 }, metadata, (error) =>
          error === null ? resolve() : reject(error),
        ),
      );
      const acked = performance.now();
      let seen = false;
      while (performance.now() - acked < 10_000) {
        const found = await reader.search(home.keys.acme.read, { query: token });
        if (found.totalHits > 0) {
          seen = true;
          break;
        }
        await sleep(2);
      }
      if (seen) samples.push(performance.now() - acked);
      else timeouts += 1;
      await sleep(50);
    }
    stop = true;
    await load;

    // Shipping throughput: ingest at full speed for a while, then time until each sink has it all.
    const lag = (sink: string): Promise<number> =>
      metricValue(stack.ingest.metricsAddress, "sessiontrack_shipper_lag_records", `sink="${sink}"`);
    const started = performance.now();
    const burst = await appendAtMaxRate({
      address: stack.ingest.address,
      apiKey: home.keys.acme.ingest,
      factory: new EventFactory(),
      concurrency: 4,
      batchSize: 250,
      seconds: Math.max(2, Math.round(options.seconds / 2)),
    });
    const caughtUp: Record<string, number> = {};
    while (Object.keys(caughtUp).length < 2 && performance.now() - started < 300_000) {
      for (const sink of ["index", "archive"]) {
        if (caughtUp[sink] === undefined && (await lag(sink)) === 0)
          caughtUp[sink] = performance.now() - started;
      }
      await sleep(50);
    }
    shipping = {
      "pipeline.ingest_events_per_s_while_shipping": Math.round(burst.eventsPerSecond),
      "pipeline.index_shipped_events_per_s": Math.round(
        (burst.events / (caughtUp["index"] ?? Infinity)) * 1000,
      ),
      "pipeline.archive_shipped_events_per_s": Math.round(
        (burst.events / (caughtUp["archive"] ?? Infinity)) * 1000,
      ),
    };
  } finally {
    stop = true;
    await background.close(5_000);
    ingest.close();
    reader.close();
    await stack.stop();
    home.remove();
  }
  const round = (value: number): number => Number(value.toFixed(1));
  return {
    "index.freshness_p50_ms": round(percentile(samples, 50)),
    "index.freshness_p95_ms": round(percentile(samples, 95)),
    "index.freshness_max_ms": round(Math.max(...samples)),
    "index.freshness_samples": samples.length,
    "index.freshness_timeouts": timeouts,
    "index.freshness_background_events_per_s": rate,
    ...(shipping ?? {}),
  };
}
