// `make bench`: measures ingest throughput and ack latency against a real ingest child
// process (fsync'd acks, ~1 KiB chat events) and the SDK's cost per capture() call, then
// prints the figures and merges them into .bench/latest.json.
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { cpus } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

import { SessionTrackClient } from "@sessiontrack/client";

import { createIngestHome, startIngestProcess } from "../support/ingest-process.js";
import {
  appendAtMaxRate,
  EventFactory,
  percentile,
  streamAtFixedRate,
  streamAtMaxRate,
} from "./ingest-load.js";
import { measureArchive } from "./archive.js";
import { runFreshnessBench } from "./freshness.js";
import { benchIndexSearch } from "./index-search.js";
import { runOperatorBench } from "./operator.js";
import { runRedactionBench } from "./redaction.js";
import { measureSdkCpu } from "./sdk-cpu.js";

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");
const SECONDS = Number(process.env["BENCH_SECONDS"] ?? 10);

const round = (value: number, digits = 2): number => Number(value.toFixed(digits));

async function measureCaptureCost(address: string, apiKey: string, spoolDir: string): Promise<number[]> {
  const client = new SessionTrackClient({ target: address, apiKey, botId: "bench-bot", spoolDir });
  const samplesUs: number[] = [];
  const text = "Where is my parcel? It was due on Monday and the tracking page has not changed.";
  for (let round = 0; round < 200; round += 1) {
    for (let i = 0; i < 500; i += 1) {
      const sessionId = `bench-${round % 50}`;
      const start = process.hrtime.bigint();
      client.capture({
        sessionId,
        payload: {
          $case: "message",
          value: {
            turnId: `t${round}`,
            turnIndex: round,
            role: 2,
            provider: "openai",
            model: "gpt-4o-mini",
            parts: [{ kind: { $case: "text", value: { text } } }],
            finishReason: "",
            latencyMs: 0,
          },
        },
      });
      samplesUs.push(Number(process.hrtime.bigint() - start) / 1000);
    }
    // Let the SDK's background work run between bursts, as a bot's event loop would.
    await new Promise((resolveTick) => setTimeout(resolveTick, 2));
  }
  await client.close(30_000);
  return samplesUs;
}

/** Cumulative counts of ingest's ack-latency histogram, by upper bound in seconds. */
async function ackLatencyBuckets(metricsAddress: string): Promise<Map<number, number>> {
  const text = await (await fetch(`http://${metricsAddress}/metrics`)).text();
  const buckets = new Map<number, number>();
  for (const match of text.matchAll(
    /^sessiontrack_ingest_ack_latency_seconds_bucket\{le="([^"]+)"\} (\d+)$/gm,
  )) {
    buckets.set(match[1] === "+Inf" ? Number.POSITIVE_INFINITY : Number(match[1]), Number(match[2]));
  }
  return buckets;
}

/** Upper bound (ms) of the bucket holding quantile q of the observations between two scrapes. */
function histogramQuantileBound(before: Map<number, number>, after: Map<number, number>, q: number): number {
  const bounds = [...after.keys()].sort((a, b) => a - b);
  const total = (after.get(Number.POSITIVE_INFINITY) ?? 0) - (before.get(Number.POSITIVE_INFINITY) ?? 0);
  for (const bound of bounds) {
    const count = (after.get(bound) ?? 0) - (before.get(bound) ?? 0);
    if (count >= q * total) return bound * 1000;
  }
  return Number.POSITIVE_INFINITY;
}

async function main(): Promise<void> {
  const home = createIngestHome("sessiontrack-bench-");
  const ingest = await startIngestProcess(home);
  const results: Record<string, number | string> = {};
  try {
    const factory = new EventFactory();
    console.log(
      `bench: ingest child at ${ingest.address}, ${cpus().length} cores, ~${Math.round(factory.averageBytes)} B events, fsync'd acks, ${SECONDS} s per phase`,
    );
    // Warm-up: JIT, WAL segment creation.
    await streamAtMaxRate({
      address: ingest.address,
      apiKey: home.apiKey,
      factory,
      streams: 2,
      window: 4,
      batchSize: 200,
      seconds: 2,
    });

    const stream = await streamAtMaxRate({
      address: ingest.address,
      apiKey: home.apiKey,
      factory,
      streams: 4,
      window: 8,
      batchSize: 250,
      seconds: SECONDS,
    });
    results["ingest.stream_events_per_s"] = Math.round(stream.eventsPerSecond);
    results["ingest.stream_errors"] = stream.errors;

    const append = await appendAtMaxRate({
      address: ingest.address,
      apiKey: home.apiKey,
      factory,
      concurrency: 16,
      batchSize: 250,
      seconds: SECONDS,
    });
    results["ingest.append_events_per_s"] = Math.round(append.eventsPerSecond);
    results["ingest.append_errors"] = append.errors;

    const halfRate = Math.max(1000, Math.round(stream.eventsPerSecond / 2));
    const bucketsBefore = await ackLatencyBuckets(ingest.metricsAddress);
    const paced = await streamAtFixedRate({
      address: ingest.address,
      apiKey: home.apiKey,
      factory,
      eventsPerSecond: halfRate,
      batchSize: 50,
      seconds: SECONDS,
    });
    results["ingest.ack_rate_events_per_s"] = halfRate;
    results["ingest.ack_p50_ms"] = round(percentile(paced.latenciesMs, 50));
    results["ingest.ack_p99_ms"] = round(percentile(paced.latenciesMs, 99));
    results["ingest.ack_errors"] = paced.errors;
    // The same phase as ingest's own histogram sees it (arrival → ack), without the load
    // generator's event loop: the upper bound of the bucket holding the 99th percentile.
    const bucketsAfter = await ackLatencyBuckets(ingest.metricsAddress);
    results["ingest.ack_p99_server_ms_le"] = histogramQuantileBound(bucketsBefore, bucketsAfter, 0.99);

    const captureUs = await measureCaptureCost(ingest.address, home.apiKey, join(home.root, "spool"));
    results["sdk.capture_us_p50"] = round(percentile(captureUs, 50), 3);
    results["sdk.capture_us_p99"] = round(percentile(captureUs, 99), 3);

    Object.assign(
      results,
      await runRedactionBench({
        seconds: SECONDS,
        ingest: { address: ingest.address, apiKey: home.apiKey, pid: ingest.child.pid },
      }),
    );
  } finally {
    await ingest.stop("SIGTERM");
    home.remove();
  }

  // SDK: CPU the bot pays per captured event at a bot's rate, all-in, against its own ingest child.
  Object.assign(results, await measureSdkCpu({ seconds: SECONDS }));
  // Freshness (ack → searchable) over a whole stack of processes: ingest → shipper → index + archive.
  Object.assign(results, await runFreshnessBench({ seconds: SECONDS }));
  // Operator: SessionStore change → reconciled, and canary breach → rolled back, on a real kube-apiserver.
  Object.assign(results, await runOperatorBench());
  // Index: search latency at 1M messages on the embedded SQLite FTS5 backend.
  Object.assign(results, await benchIndexSearch());
  // Archive: WriteBatch MB/s (local store, fsync'd) and compression ratio on realistic support chats.
  Object.assign(results, await measureArchive());

  const benchDir = join(REPO, ".bench");
  mkdirSync(benchDir, { recursive: true });
  const latestPath = join(benchDir, "latest.json");
  let previous: Record<string, unknown> = {};
  try {
    previous = JSON.parse(readFileSync(latestPath, "utf8")) as Record<string, unknown>;
  } catch {
    // first run
  }
  const merged = {
    ...previous,
    ...results,
    "meta.run_at": new Date().toISOString(),
    "meta.cores": cpus().length,
  };
  writeFileSync(latestPath, `${JSON.stringify(merged, null, 2)}\n`);

  const targets: Record<string, string> = {
    "ingest.stream_events_per_s": ">= 100000",
    "ingest.ack_p99_ms": "<= 20",
    "ingest.ack_p99_server_ms_le": "<= 20",
    "sdk.capture_us_p50": "<= 5",
    "sdk.cpu_us_per_event": "<= 12",
    "index.freshness_p95_ms": "<= 1000",
    "index.search_p95_ms": "<= 50",
    "ingest.redacted_events_per_s": ">= 100000",
    "archive.compression_ratio": ">= 5",
  };
  const width = Math.max(...Object.keys(results).map((name) => name.length)) + 2;
  console.log(`\n${"figure".padEnd(width)}${"value".padEnd(13)}target`);
  for (const [name, value] of Object.entries(results)) {
    console.log(`${name.padEnd(width)}${String(value).padEnd(13)}${targets[name] ?? ""}`);
  }
  console.log(`\nwritten to ${latestPath}`);
}

await main();
