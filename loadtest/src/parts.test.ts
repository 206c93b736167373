// Fast tests of the load test's own parts (the short run itself is short.test.ts).
import assert from "node:assert/strict";
import { createServer, connect, type AddressInfo, type Socket } from "node:net";
import { test } from "node:test";

import { accuracyOf } from "./accuracy.js";
import { parseChatRequest, threadCpuUs, type BotStats } from "./bot/chat-bot.js";
import { modelLatencyMs, seededRandom, tokenize } from "./bot/model.js";
import { loadRunConfig, sdkThreadOf } from "./config.js";
import { FaultProxy } from "./fault-proxy.js";
import { budgetViolations, otherTargetMisses } from "./load-test.js";
import {
  cpuPerRequestSeries,
  cpuWindow,
  histogramBuckets,
  histogramPercentileMs,
  overheadOf,
  sumOfMetric,
  type CpuWindow,
  type Sample,
} from "./measure.js";
import { bucketOf, countPerfScript, perfUnavailable } from "./perf-profile.js";
import { overheadJson, overheadRows, perfSection } from "./report.js";
import { lineChart, niceTicks } from "./svg.js";

test("sumOfMetric adds one metric's samples over its label sets and nothing else", () => {
  const text = [
    "# HELP sessiontrack_shipper_lag_records WAL records not yet confirmed by the sink.",
    "# TYPE sessiontrack_shipper_lag_records gauge",
    'sessiontrack_shipper_lag_records{sink="index"} 3',
    'sessiontrack_shipper_lag_records{sink="archive"} 1.5e+2',
    'sessiontrack_shipper_lag_records_total{sink="index"} 1000',
    "sessiontrack_ingest_open_streams 2",
  ].join("\n");
  assert.equal(sumOfMetric(text, "sessiontrack_shipper_lag_records"), 153);
  assert.equal(sumOfMetric(text, "sessiontrack_ingest_open_streams"), 2);
  assert.equal(sumOfMetric(text, "sessiontrack_ingest_events_total"), undefined);
});

test("ingest's ack histogram: buckets parsed per bound, percentiles read from what was counted between two scrapes", () => {
  const scrape = (counts: readonly number[]): string =>
    [
      "# TYPE sessiontrack_ingest_ack_latency_seconds histogram",
      ...["0.005", "0.02", "0.1", "+Inf"].map(
        (le, i) => `sessiontrack_ingest_ack_latency_seconds_bucket{le="${le}"} ${counts[i]}`,
      ),
      `sessiontrack_ingest_ack_latency_seconds_sum 1.5`,
      `sessiontrack_ingest_ack_latency_seconds_count ${counts[3]}`,
      'sessiontrack_ingest_batches_total{rpc="Stream",le="0.005"} 999',
    ].join("\n");
  const before = histogramBuckets(scrape([10, 10, 10, 10]), "sessiontrack_ingest_ack_latency_seconds");
  assert.deepEqual(
    [...before.entries()],
    [
      [0.005, 10],
      [0.02, 10],
      [0.1, 10],
      [Number.POSITIVE_INFINITY, 10],
    ],
  );
  // Between the scrapes: 90 acks under 5 ms, 8 more under 20 ms, 1 under 100 ms, 1 above.
  const after = histogramBuckets(scrape([100, 108, 109, 110]), "sessiontrack_ingest_ack_latency_seconds");
  assert.equal(histogramPercentileMs(before, after, 50), 5);
  assert.equal(histogramPercentileMs(before, after, 95), 20);
  assert.equal(histogramPercentileMs(before, after, 99), 100);
  assert.equal(histogramPercentileMs(before, after, 100), Number.POSITIVE_INFINITY);
  assert.equal(histogramPercentileMs(after, after, 99), undefined, "nothing counted in between");
  assert.equal(histogramBuckets("", "sessiontrack_ingest_ack_latency_seconds").size, 0);
});

test("perf samples: each stack goes to the first bucket it matches; the report adds the excess up in points", () => {
  const stack = (...frames: string[]): string =>
    frames.map((f, i) => `\t${(0x1000 + i).toString(16)} ${f}`).join("\n");
  const script = [
    // V8 compiling in the background.
    stack(
      "v8::internal::compiler::PipelineImpl::OptimizeGraph",
      "v8::internal::OptimizingCompileDispatcher::CompileNext",
      "node::(anonymous namespace)::PlatformWorkerThread",
    ),
    // A scavenge, even when the SDK's code triggered it.
    stack(
      "v8::internal::ScavengerCollector::CollectGarbage",
      "v8::internal::Heap::Scavenge",
      "JS:*encode file:///w/packages/client/dist/event-encoder.js:65:11",
    ),
    // The SDK called from the bot's handler counts as the SDK.
    stack(
      "Builtins_LoadIC",
      "JS:*note file:///w/packages/client/dist/client.js:268:9",
      "JS:*chat file:///w/loadtest/dist/bot/chat-bot.js:116:15",
    ),
    stack("nghttp2_session_pack_data", "node::http2::Http2Session::SendPendingData"),
    stack("Builtins_FindOrderedHashMapEntry", "JS:*tokenize file:///w/loadtest/dist/bot/model.js:67:25"),
    stack("llhttp__internal_execute", "JS:*parserOnHeadersComplete node:_http_common:71:33"),
    stack("epoll_pwait", "uv_run"),
    // A worker thread that is not compiling is not the compiler.
    stack("v8::internal::ConcurrentMarking::RunMajor", "node::(anonymous namespace)::PlatformWorkerThread"),
    "",
  ].join("\n\n");
  const counts = countPerfScript(script);
  assert.deepEqual(counts, {
    "V8 compiler threads": 1,
    "garbage collection": 2,
    "SDK and gRPC": 2,
    "bot's own work": 1,
    "HTTP server": 1,
    other: 1,
  });
  assert.equal(bucketOf(["epoll_pwait", "node::(anonymous namespace)::PlatformWorkerThread"]), "other");

  const off = { ...counts, "SDK and gRPC": 0, "V8 compiler threads": 0 };
  const lines = perfSection({ steady: { off, on: counts } });
  assert.ok(lines.includes("| SDK and gRPC | 0 | 2 | +40.0 |"), lines.join("\n"));
  assert.ok(lines.includes("| V8 compiler threads | 0 | 1 | +20.0 |"), lines.join("\n"));
  assert.ok(lines.includes("| **all** | 5 | 8 | +60.0 |"), lines.join("\n"));
  assert.deepEqual(perfSection(undefined), []);
});

test("run flags: --perf asks for Linux perf, and says so when it is missing", () => {
  const env = { K6_BIN: process.execPath };
  assert.equal(loadRunConfig([], env).perf, false);
  const missing = perfUnavailable();
  if (missing === undefined) assert.equal(loadRunConfig(["--perf"], env).perf, true);
  else assert.throws(() => loadRunConfig(["--perf"], env), /--perf needs Linux perf on PATH|perf --version/);
});

test("parseChatRequest names the bad field", () => {
  const good = { sessionId: "s", userId: "u", turn: 0, turns: 2, message: "hi" };
  assert.deepEqual(parseChatRequest(JSON.stringify(good)), good);
  assert.equal(parseChatRequest("{"), "body: not valid JSON");
  assert.equal(parseChatRequest("[]"), "sessionId: expected a non-empty string");
  assert.equal(
    parseChatRequest(JSON.stringify({ ...good, userId: "" })),
    "userId: expected a non-empty string",
  );
  assert.equal(parseChatRequest(JSON.stringify({ ...good, turn: 1.5 })), "turn: expected an integer >= 0");
  assert.equal(parseChatRequest(JSON.stringify({ ...good, turn: 2 })), "turn: 2 is not below turns (2)");
});

test("run flags: SDK settings reach the bot's flags, the SDK thread defaults to the bot's own, bad values are named", () => {
  const env = { K6_BIN: process.execPath };
  const main = loadRunConfig(["--short"], env);
  assert.deepEqual(main.sdkFlags, []);
  assert.equal(sdkThreadOf(main.sdkFlags), "main");
  const worker = loadRunConfig(["--sdk-thread", "worker", "--sdk-flush-interval-ms", "250"], env);
  assert.deepEqual(worker.sdkFlags, ["--flush-interval-ms", "250", "--sdk-thread", "worker"]);
  assert.equal(sdkThreadOf(worker.sdkFlags), "worker");
  const transport = loadRunConfig(["--sdk-thread", "transport"], env);
  assert.deepEqual(transport.sdkFlags, ["--sdk-thread", "transport"]);
  assert.equal(sdkThreadOf(transport.sdkFlags), "transport");
  assert.throws(
    () => loadRunConfig(["--sdk-thread", "both"], env),
    /--sdk-thread must be main, worker or transport, got "both"/,
  );
  assert.throws(
    () => loadRunConfig(["--sdk-batch-max-events", "0"], env),
    /--sdk-batch-max-events must be a positive integer/,
  );
});

test("model latency is log-normal around p50 40 ms / p95 120 ms, and seeded", () => {
  const random = seededRandom(42);
  const samples = Array.from({ length: 20_000 }, () => modelLatencyMs(random)).sort((a, b) => a - b);
  const p50 = samples[Math.floor(samples.length * 0.5)]!;
  const p95 = samples[Math.floor(samples.length * 0.95)]!;
  assert.ok(p50 > 37 && p50 < 43, `p50 ${p50}`);
  assert.ok(p95 > 110 && p95 < 130, `p95 ${p95}`);
  assert.equal(modelLatencyMs(seededRandom(7)), modelLatencyMs(seededRandom(7)));
  assert.ok(tokenize("Where is my parcel?").length > 3);
});

test("the fault proxy forwards, and in delay mode holds every byte from upstream back in order", async (t) => {
  const echo = createServer((socket) => socket.pipe(socket));
  await new Promise<void>((resolve) => echo.listen(0, "127.0.0.1", resolve));
  const proxy = new FaultProxy({ host: "127.0.0.1", port: (echo.address() as AddressInfo).port });
  const address = await proxy.listen();
  const [host, port] = address.split(":");
  const client: Socket = connect(Number(port), host);
  t.after(async () => {
    client.destroy();
    await proxy.close();
    await new Promise((resolve) => echo.close(resolve));
  });
  await new Promise((resolve) => client.once("connect", resolve));
  const received: string[] = [];
  client.on("data", (chunk: Buffer) => received.push(chunk.toString()));
  const roundTrip = async (text: string): Promise<number> => {
    const before = received.join("").length;
    const started = Date.now();
    client.write(text);
    while (received.join("").length < before + text.length) await new Promise((r) => setTimeout(r, 5));
    return Date.now() - started;
  };
  await roundTrip("pass"); // forwarded untouched (no timing asserted: the machine is shared)
  proxy.setMode({ kind: "delay", delayMs: 200 });
  assert.ok((await roundTrip("slow")) >= 195);
  client.write("a");
  proxy.setMode({ kind: "pass" });
  client.write("b");
  await roundTrip("c");
  assert.equal(received.join(""), "passslowabc");
});

test("accuracy counts acked ids held by the WAL or a sink, against acked and attempted", () => {
  const accuracy = accuracyOf({
    attempted: 5,
    ackedIds: ["a", "b", "c", "d"],
    wal: { ids: new Set(["a", "b"]), damaged: 0 },
    dropped: 0,
    rejected: 0,
    pending: 0,
    sinks: { index: new Set(["a", "b", "c"]), archive: "not running" },
  });
  assert.equal(accuracy.ackedStored, 3);
  assert.equal(accuracy.ofAcked, 0.75);
  assert.equal(accuracy.ofAttempted, 0.6);
  assert.deepEqual(accuracy.sinks["archive"], { notMeasured: "not running" });
  assert.deepEqual(accuracy.sinks["index"], { held: 3, ofAcked: 0.75 });
});

test("the budget check flags CPU and p95 over 5%, failed requests and missing events", () => {
  const cpu = (usPerRequest: number): CpuWindow => ({
    requests: 100,
    cpuMs: usPerRequest / 10,
    cpuUsPerRequest: usPerRequest,
    mainThreadCpuUsPerRequest: usPerRequest * 0.9,
    events: 300,
  });
  const summary = (onP95: number) => ({
    metrics: {
      "http_req_duration{variant:off}": {
        type: "trend",
        values: { count: 100, "p(50)": 40, "p(95)": 100, "p(99)": 150 },
      },
      "http_req_duration{variant:on}": {
        type: "trend",
        values: { count: 100, "p(50)": 40, "p(95)": onP95, "p(99)": 150 },
      },
      "http_req_failed{variant:off}": { type: "rate", values: { rate: 0 } },
      "http_req_failed{variant:on}": { type: "rate", values: { rate: 0 } },
    },
  });
  const within = overheadOf("overhead", summary(104), cpu(1000), cpu(1040), 0, 0);
  assert.equal(within.captureCpuUsPerEvent.toFixed(2), "13.33");
  // The same overhead in µs, in summary.json and in the report's CPU row.
  assert.equal(overheadJson(within)["cpu_us_added_per_request"], 40);
  assert.ok(
    overheadRows("steady", within).some((row) =>
      row.includes("| CPU per request (µs) | 1000 | 1040 | 4.00% (+40 µs) | ok |"),
    ),
    overheadRows("steady", within).join("\n"),
  );
  const perfect = accuracyOf({
    attempted: 1,
    ackedIds: ["a"],
    wal: { ids: new Set(["a"]), damaged: 0 },
    dropped: 0,
    rejected: 0,
    pending: 0,
    sinks: {},
  });
  assert.deepEqual(budgetViolations(within, [], perfect), []);
  const over = overheadOf("overhead", summary(106), cpu(1000), cpu(1300), 0, 2);
  const lost = { ...perfect, ofAcked: 0.5, ackedStored: 0, acked: 1, ofAttempted: 0.5 };
  const violations = budgetViolations(over, [], lost);
  assert.equal(violations.length, 5, violations.join("\n"));
  assert.match(violations.join("\n"), /6\.00% to p95/);
  assert.match(violations.join("\n"), /30\.00% to CPU per request/);
  assert.match(violations.join("\n"), /2 requests failed/);
});

test("other targets: ingest's k6 thresholds, freshness probes never found, freshness p95 over 1 s", () => {
  const fresh = Array.from({ length: 100 }, (_, i) => 10 + i); // p95 about 105 ms
  assert.deepEqual(otherTargetMisses(0, { samplesMs: fresh, timedOut: 0 }), []);
  assert.deepEqual(otherTargetMisses(0, undefined), [], "no index: freshness not measured, not a miss");
  const slow = Array.from({ length: 100 }, (_, i) => (i < 90 ? 100 : 1_200));
  const misses = otherTargetMisses(99, { samplesMs: slow, timedOut: 2 });
  assert.equal(misses.length, 3, misses.join("; "));
  assert.match(misses[0]!, /ingest gRPC: k6 exited with 99/);
  assert.match(misses[1]!, /2 acknowledged probe events were not searchable within 10 s/);
  assert.match(misses[2]!, /freshness: p95 1200 ms from ack to searchable \(target 1000 ms\)/);
  assert.deepEqual(
    otherTargetMisses(0, { samplesMs: [], timedOut: 5 }),
    ["freshness: 5 acknowledged probe events were not searchable within 10 s"],
    "no probe found at all: the timeouts say so, no p95 of nothing",
  );
});

test("a bot's CPU window splits into the main thread and the rest, where Linux tells", () => {
  const busy = threadCpuUs();
  assert.ok(busy !== null && busy > 0, `this thread's CPU from /proc/thread-self: ${String(busy)}`);
  assert.equal(threadCpuUs("/proc/no-such-file"), null);
  const stats = (requests: number, cpuUs: number, mainUs: number | null): BotStats => ({
    variant: "on",
    requests,
    errors: 0,
    inFlight: 0,
    cpuUserUs: cpuUs * 0.8,
    cpuSystemUs: cpuUs * 0.2,
    mainThreadCpuUs: mainUs,
    uptimeMs: 0,
    captureAttempted: 0,
    acksReceived: 0,
    sdk: null,
  });
  const window = cpuWindow(stats(100, 50_000, 40_000), stats(300, 250_000, 220_000));
  assert.equal(window.cpuUsPerRequest, 1000);
  assert.equal(window.mainThreadCpuUsPerRequest, 900);
  const unknown = cpuWindow(stats(100, 50_000, null), stats(300, 250_000, null));
  assert.equal(unknown.cpuUsPerRequest, 1000);
  assert.ok(Number.isNaN(unknown.mainThreadCpuUsPerRequest), "no main-thread figure off Linux");
});

test("CPU per request over time: one point per window, none across a missing sample or an idle window", () => {
  const sample = (t: number, requests: number | undefined, cpuUs: number | undefined): Sample => ({
    t,
    offRequests: requests,
    onRequests: undefined,
    twinRequests: undefined,
    offCpuUs: cpuUs,
    onCpuUs: undefined,
    twinCpuUs: undefined,
    queueDepth: undefined,
    inFlight: undefined,
    spoolBytes: undefined,
    acked: undefined,
    ingestEvents: undefined,
  });
  const samples = [
    sample(0, 0, 0),
    sample(5, 50, 40_000),
    sample(10, 100, 80_000), // window 0-10 s: 100 requests, 80 ms -> 800 µs each
    sample(20, 200, 190_000), // window 10-20 s: 100 requests, 110 ms -> 1100 µs each
    sample(25, undefined, undefined), // the bot did not answer: the window restarts after it
    sample(26, 300, 300_000),
    sample(36, 300, 310_000), // no requests in 26-36 s: no point
    sample(46, 400, 360_000), // window 36-46 s: 100 requests, 50 ms -> 500 µs each
  ];
  const points = cpuPerRequestSeries(
    samples,
    (s) => s.offCpuUs,
    (s) => s.offRequests,
    10,
  );
  assert.deepEqual(points, [
    [10, 800],
    [20, 1100],
    [46, 500],
  ]);
  assert.deepEqual(
    cpuPerRequestSeries(
      samples,
      (s) => s.onCpuUs,
      (s) => s.onRequests,
      10,
    ),
    [],
    "no points for a bot never sampled",
  );
});

test("charts are well-formed SVG with round ticks", () => {
  assert.deepEqual(niceTicks(0, 100, 5), [0, 20, 40, 60, 80, 100]);
  const svg = lineChart({
    title: "a < b & c",
    xLabel: "x",
    yLabel: "y",
    series: [
      {
        name: "s",
        color: "#000",
        points: [
          [0, 1],
          [1, 2],
          [2, Number.NaN],
        ],
      },
    ],
    bands: [{ label: "phase", from: 0, to: 1 }],
  });
  assert.match(svg, /^<svg xmlns/);
  assert.match(svg, /a &lt; b &amp; c/);
  assert.doesNotMatch(svg, /NaN/);
});
