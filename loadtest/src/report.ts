// Writes a run's results: summary.json, report.md and SVG charts in loadtest/results/<ts>/.
import { writeFileSync } from "node:fs";
import { join } from "node:path";

import { sdkThreadOf } from "./config.js";
import type { SdkThread } from "./sdk-thread.js";
import { BUDGET_PCT, type DegradedResult, type LoadTestOutcome } from "./load-test.js";
import { cpuPerRequestSeries, type OverheadResult, type Sample } from "./measure.js";
import { PERF_BUCKETS } from "./perf-profile.js";
import { lineChart, type Band, type Series } from "./svg.js";

/** How the report names where the capturing bot's SDK delivers. */
const DELIVERY: Record<SdkThread, string> = {
  main: "on the bot's thread (SessionTrackClient)",
  worker: "in a worker thread (WorkerSessionTrackClient)",
  transport: 'with grpc-js alone in a worker thread (SessionTrackClient, transport "worker")',
};

const OFF_COLOR = "#1f77b4";
const ON_COLOR = "#d62728";
const TWIN_COLOR = "#7f7f7f";
/** Window of the CPU-per-request-over-time chart: 400–600 requests per bot at the runs' rates. */
const CPU_WINDOW_S = 10;

const round = (value: number, digits = 2): number | null =>
  Number.isFinite(value) ? Number(value.toFixed(digits)) : null;

export function overheadJson(result: OverheadResult): Record<string, unknown> {
  const variant = (v: OverheadResult["on"]): Record<string, unknown> => ({
    requests: v.count,
    p50_ms: round(v.p50),
    p95_ms: round(v.p95),
    p99_ms: round(v.p99),
    failed_rate: round(v.failedRate, 6),
    cpu_us_per_request: round(v.cpuUsPerRequest, 1),
    main_thread_cpu_us_per_request: round(v.mainThreadCpuUsPerRequest, 1),
    cpu_window_requests: v.requests,
  });
  return {
    p50_pct: round(result.p50Pct),
    p95_pct: round(result.p95Pct),
    p99_pct: round(result.p99Pct),
    cpu_pct: round(result.cpuPct),
    events_per_request: round(result.eventsPerRequest),
    capture_cpu_us_per_event: round(result.captureCpuUsPerEvent, 1),
    /** The same overhead in absolute terms: phases whose capture-off bot is leaner read a higher percentage. */
    cpu_us_added_per_request: round(result.on.cpuUsPerRequest - result.off.cpuUsPerRequest, 1),
    errors: result.errors,
    k6_exit_code: result.k6ExitCode,
    off: variant(result.off),
    on: variant(result.on),
  };
}

/** The summary.json object. */
export function summaryJson(outcome: LoadTestOutcome): Record<string, unknown> {
  const errors =
    outcome.overhead.errors + outcome.degraded.reduce((sum, d) => sum + (d.overhead?.errors ?? 0), 0);
  return {
    passed: outcome.passed,
    violations: outcome.violations,
    target_misses: outcome.targetMisses,
    profile: outcome.profile,
    sdk_flags: outcome.sdkFlags,
    sdk_thread: sdkThreadOf(outcome.sdkFlags),
    started_at: outcome.startedAt,
    seconds: round(outcome.seconds, 1),
    cores: outcome.cores,
    budget_pct: BUDGET_PCT,
    overhead: overheadJson(outcome.overhead),
    noise_floor: outcome.noise === undefined ? null : overheadJson(outcome.noise),
    errors,
    capture_accuracy: {
      of_acked: round(outcome.accuracy.ofAcked, 6),
      of_attempted: round(outcome.accuracy.ofAttempted, 6),
      attempted: outcome.accuracy.attempted,
      acked: outcome.accuracy.acked,
      acked_in_wal: outcome.accuracy.ackedInWal,
      acked_stored: outcome.accuracy.ackedStored,
      dropped: outcome.accuracy.dropped,
      rejected: outcome.accuracy.rejected,
      pending_after_flush: outcome.accuracy.pending,
      wal_damaged_frames: outcome.accuracy.walDamagedFrames,
      sinks: outcome.accuracy.sinks,
    },
    ingest: {
      events_per_s: outcome.ingest.eventsPerS,
      stream_ack_p50_ms: round(outcome.ingest.ackP50Ms),
      stream_ack_p99_ms: round(outcome.ingest.ackP99Ms),
      append_p99_ms: round(outcome.ingest.appendP99Ms),
      // Ingest's own histogram: the bucket bound the percentile falls under (null: not read, or above 2.5 s).
      server_ack_p50_ms: boundOrNull(outcome.ingest.serverAckP50Ms),
      server_ack_p99_ms: boundOrNull(outcome.ingest.serverAckP99Ms),
      events_acked: outcome.ingest.eventsAcked,
      k6_exit_code: outcome.ingest.k6ExitCode,
    },
    freshness_p95_ms: outcome.freshness.measured ? round(outcome.freshness.p95Ms) : null,
    freshness: outcome.freshness,
    degraded: outcome.degraded.map((d) => ({
      mode: d.mode,
      measured: d.measured,
      ...(d.reason === undefined ? {} : { reason: d.reason }),
      ...(d.overhead === undefined ? {} : overheadJson(d.overhead)),
      ...(d.drainMs === undefined ? {} : { drain_ms: d.drainMs, drain_complete: d.drainComplete }),
      ...(d.spooled === undefined ? {} : { spooled_events: d.spooled }),
      ...(d.sinksCatchUpMs === undefined
        ? {}
        : { sinks_catch_up_ms: d.sinksCatchUpMs, sinks_caught_up: d.sinksCaughtUp }),
    })),
    sdk: outcome.sdk,
    warmup: overheadJson(outcome.warmup),
    ...(outcome.perf === undefined ? {} : { perf_samples: outcome.perf }),
  };
}

/** The sinks' catch-up after a fault, for the report's table. */
function sinksCatchUp(d: DegradedResult): string {
  if (d.sinksCatchUpMs === undefined) return "n/a";
  return d.sinksCaughtUp === true ? `${d.sinksCatchUpMs} ms` : `**not within ${d.sinksCatchUpMs} ms**`;
}

const fmt = (value: number, digits = 1): string => (Number.isFinite(value) ? value.toFixed(digits) : "n/a");

/** A percentile read from a histogram: "≤ bound ms", or why there is none. */
function histogramBound(ms: number | undefined): string {
  if (ms === undefined) return "not read (ingest's metrics did not answer, or it acked nothing)";
  return Number.isFinite(ms) ? `≤ ${fmt(ms, ms < 1 ? 1 : 0)} ms` : "above the histogram's last bound (2.5 s)";
}

/** summary.json's form of {@link histogramBound}: the bound, or null when not read or unbounded. */
function boundOrNull(ms: number | undefined): number | null {
  return ms === undefined || !Number.isFinite(ms) ? null : ms;
}

/**
 * `--perf`: per phase, the samples of each bucket in both bots and the capturing bot's excess
 * as points of the capture-off bot's total (both served the same requests, so samples compare).
 */
export function perfSection(perf: LoadTestOutcome["perf"]): string[] {
  if (perf === undefined) return [];
  const lines = [
    "## Where the CPU went (perf, `--perf`)",
    "",
    "Linux perf sampled each bot at 499 Hz during each phase (`perf/<phase>-<bot>.data`; the bots ran",
    "with `--perf-basic-prof`, which costs both alike). Each sample's stack is put in the first",
    "bucket it matches, in the table's order. The last column is the capturing bot's samples minus",
    "the capture-off bot's, in points of the capture-off bot's total: the buckets' points add up",
    "to this measurement's overhead, which is not the phase's CPU figure above. A JIT-compiled",
    "function can be misnamed after V8 moved or dropped code (the symbol maps only grow).",
    "",
  ];
  for (const [phase, bots] of Object.entries(perf)) {
    const off = bots["off"];
    const on = bots["on"];
    if (off === undefined || on === undefined) continue;
    const offTotal = PERF_BUCKETS.reduce((sum, bucket) => sum + off[bucket], 0);
    const onTotal = PERF_BUCKETS.reduce((sum, bucket) => sum + on[bucket], 0);
    const points = (a: number, b: number): string => {
      if (offTotal === 0) return "n/a";
      const value = ((a - b) / offTotal) * 100;
      return `${value >= 0 ? "+" : ""}${fmt(value, 1)}`;
    };
    lines.push(
      `**${phase}**`,
      "",
      "| bucket | capture off | capture on | on − off (points) |",
      "|---|---:|---:|---:|",
      ...PERF_BUCKETS.map(
        (bucket) => `| ${bucket} | ${off[bucket]} | ${on[bucket]} | ${points(on[bucket], off[bucket])} |`,
      ),
      `| **all** | ${offTotal} | ${onTotal} | ${points(onTotal, offTotal)} |`,
      "",
    );
  }
  return lines;
}

const verdict = (pct: number): string => (pct <= BUDGET_PCT ? "ok" : "**over budget**");

/** CPU per request of one variant on every thread but the main one (V8's and libuv's workers). */
const otherThreadsUs = (v: OverheadResult["on"]): number => v.cpuUsPerRequest - v.mainThreadCpuUsPerRequest;

/** "main / other" CPU per request of one variant. */
function split(v: OverheadResult["on"]): string {
  return `${fmt(v.mainThreadCpuUsPerRequest, 0)} / ${fmt(otherThreadsUs(v), 0)}`;
}

const signed = (value: number): string => (value >= 0 ? `+${fmt(value, 0)}` : fmt(value, 0));

/** Where capture's extra CPU per request landed: on the main thread, on the others. */
function splitDelta(r: OverheadResult): string {
  const main = r.on.mainThreadCpuUsPerRequest - r.off.mainThreadCpuUsPerRequest;
  const other = otherThreadsUs(r.on) - otherThreadsUs(r.off);
  return `${signed(main)} / ${signed(other)} µs`;
}

/** One phase's rows of the comparison table; the CPU row gives the overhead in percent and in µs. */
export function overheadRows(label: string, r: OverheadResult): string[] {
  return [
    `| ${label} | p50 latency (ms) | ${fmt(r.off.p50)} | ${fmt(r.on.p50)} | ${fmt(r.p50Pct, 2)}% | |`,
    `| ${label} | p95 latency (ms) | ${fmt(r.off.p95)} | ${fmt(r.on.p95)} | ${fmt(r.p95Pct, 2)}% | ${verdict(r.p95Pct)} |`,
    `| ${label} | p99 latency (ms) | ${fmt(r.off.p99)} | ${fmt(r.on.p99)} | ${fmt(r.p99Pct, 2)}% | |`,
    `| ${label} | CPU per request (µs) | ${fmt(r.off.cpuUsPerRequest, 0)} | ${fmt(r.on.cpuUsPerRequest, 0)} | ${fmt(r.cpuPct, 2)}% (${signed(r.on.cpuUsPerRequest - r.off.cpuUsPerRequest)} µs) | ${verdict(r.cpuPct)} |`,
    `| ${label} | of which main thread / other threads (µs) | ${split(r.off)} | ${split(r.on)} | ${splitDelta(r)} | |`,
    `| ${label} | capture CPU per event (µs), events per request | | ${fmt(r.captureCpuUsPerEvent)} µs × ${fmt(r.eventsPerRequest, 2)} | | |`,
    `| ${label} | requests / failed | ${r.off.count} / ${Math.round(r.off.failedRate * r.off.count)} | ${r.on.count} / ${Math.round(r.on.failedRate * r.on.count)} | | ${r.errors === 0 ? "ok" : "**errors**"} |`,
  ];
}

/** The report.md text. */
export function reportMarkdown(outcome: LoadTestOutcome): string {
  const a = outcome.accuracy;
  const lines = [
    `# SessionTrack load test — ${outcome.profile} run, ${outcome.startedAt}`,
    "",
    `**${outcome.passed ? "PASSED" : "FAILED"}** the under-${BUDGET_PCT}% overhead budget` +
      ` (${fmt(outcome.seconds, 0)} s on ${outcome.cores} cores; capturing bot's SDK settings: ` +
      `${outcome.sdkFlags.length === 0 ? "the SDK's defaults" : outcome.sdkFlags.join(" ")}; ` +
      `delivery ${DELIVERY[sdkThreadOf(outcome.sdkFlags)]}).`,
    "",
    ...(outcome.targetMisses.length > 0
      ? ["Other thresholds missed:", "", ...outcome.targetMisses.map((v) => `- ${v}`), ""]
      : []),
    ...(outcome.violations.length > 0
      ? ["Violations:", "", ...outcome.violations.map((v) => `- ${v}`), ""]
      : []),
    "## Bot overhead: capture off vs on",
    "",
    "| phase | figure | capture off | capture on | overhead | verdict |",
    "| --- | --- | ---: | ---: | ---: | --- |",
    ...overheadRows("steady load", outcome.overhead),
    ...(outcome.noise === undefined
      ? []
      : overheadRows("noise floor (A/A: both capture off)", outcome.noise)
          .filter((row) => !row.includes("per event"))
          .map((row) => row.replace("**over budget**", "noise"))),
    ...outcome.degraded.flatMap((d) =>
      d.overhead === undefined
        ? [`| ${d.mode} | not measured: ${d.reason ?? ""} | | | | |`]
        : overheadRows(d.mode, d.overhead),
    ),
    "",
    ...(outcome.sdk === null
      ? []
      : [
          `Capture on the request path: \`capture()\` p50 ${fmt(outcome.sdk.captureCallUsP50, 2)} µs, p99 ` +
            `${fmt(outcome.sdk.captureCallUsP99, 2)} µs (the SDK's own sample). All that capture costs the bot ` +
            "(those calls, encoding, gRPC batches and acks, spooling, GC) comes to " +
            `${fmt(outcome.overhead.captureCpuUsPerEvent)} µs of CPU per event under steady load. The SDK's own ` +
            `\`cpuPct\` read ${fmt(outcome.sdk.cpuPct, 2)}% at the end; it times only its own sections. ` +
            "loadtest/README.md says what dominates.",
          "",
        ]),
    "![latency distribution, steady load](latency-overhead.svg)",
    "",
    "## Degraded modes",
    "",
    "| mode | spooled events | backlog delivered after the fault | drain time | sinks caught up after |",
    "| --- | ---: | --- | ---: | ---: |",
    ...outcome.degraded.map((d) =>
      d.measured
        ? `| ${d.mode} | ${d.spooled ?? 0} | ${d.drainComplete === true ? "yes" : "**no**"} | ${d.drainMs ?? 0} ms | ${sinksCatchUp(d)} |`
        : `| ${d.mode} | not measured | ${d.reason ?? ""} | | |`,
    ),
    "",
    "Drain time: from the fault's end until the SDK had delivered its backlog to ingest. Sinks caught " +
      "up: from then until the index and the archive confirmed everything in ingest's WAL (the next " +
      "phase starts only then, so one fault's backlog does not load the next).",
    "",
    "## Capture accuracy",
    "",
    "| figure | value |",
    "| --- | ---: |",
    `| events the bot tried to capture | ${a.attempted} |`,
    `| acknowledged by ingest (distinct ids) | ${a.acked} |`,
    `| of those, in ingest's WAL | ${a.ackedInWal} |`,
    `| of those, in the WAL or a sink | ${a.ackedStored} (${fmt(a.ofAcked * 100, 3)}%, need 100%) |`,
    `| stored, of attempted | ${fmt(a.ofAttempted * 100, 3)}% (need >= 99.9%) |`,
    `| dropped / rejected (reported by the SDK) | ${a.dropped} / ${a.rejected} |`,
    `| unacknowledged after the final flush | ${a.pending} |`,
    ...Object.entries(a.sinks).map(([name, sink]) =>
      "notMeasured" in sink
        ? `| in ${name} | not measured: ${sink.notMeasured} |`
        : `| in ${name} | ${sink.held} (${fmt(sink.ofAcked * 100, 3)}%) |`,
    ),
    "",
    "## Ingest over gRPC (k6/net/grpc)",
    "",
    `- events/s during the gRPC phase: ${outcome.ingest.eventsPerS} (Stream + Append, paced, not a maximum)`,
    `- Stream ack latency (write → ack, seen by k6): p50 ${fmt(outcome.ingest.ackP50Ms)} ms, p99 ${fmt(outcome.ingest.ackP99Ms)} ms`,
    `- Append p99: ${fmt(outcome.ingest.appendP99Ms)} ms; k6 exit code ${outcome.ingest.k6ExitCode}`,
    `- ingest's own ack latency over the phase (its histogram, batch received → acked after fdatasync, Stream and Append): ` +
      `p50 ${histogramBound(outcome.ingest.serverAckP50Ms)}, p99 ${histogramBound(outcome.ingest.serverAckP99Ms)}; ` +
      "what k6 sees beyond this is spent in the client (k6 marshals each write in its JavaScript VU and reads acks only after its writes) and on the way",
    "",
    "## Freshness (ack → searchable)",
    "",
    outcome.freshness.measured
      ? `p50 ${fmt(outcome.freshness.p50Ms)} ms, p95 ${fmt(outcome.freshness.p95Ms)} ms over ${outcome.freshness.probes} probes ` +
        `(${outcome.freshness.timedOut} not searchable within 10 s), measured while ingest.js loads ingest: ` +
        "one event at a time captured through the SDK, timed from its ack to the first Search that finds its unique word " +
        "(polled every 10 ms, so figures include up to 10 ms of polling and one Search round trip)."
      : `Not measured: ${outcome.freshness.reason}.`,
    "",
    ...perfSection(outcome.perf),
    "## Over time",
    "",
    "![throughput](throughput.svg)",
    "",
    "![SDK backlog](backlog.svg)",
    "",
    "![bot CPU per request over time](cpu-per-request.svg)",
    "",
    "## Method",
    "",
    "Two bot processes (capture off, capture on) run side by side and k6 drives both at one",
    "constant arrival rate in the same run: every iteration sends the same request to each of them",
    "at once (one batch, requests tagged `variant`, the order cycling through every permutation",
    "so each is first, and follows each other, equally often), and the bot draws its simulated model latency from a seed of",
    '(session, turn), so both variants do identical work and wait identical "model" times; the',
    "difference between the two is capture plus noise. CPU per request is `process.cpuUsage()` of",
    "each bot over the phase divided by the requests it served (the SDK's background encoding and",
    "gRPC work runs in the bot process, so it is included). Full runs also drive a second",
    "capture-off bot as a third variant and report off vs that twin (A/A) as the noise floor.",
    "Model latency is log-normal with",
    "p50 40 ms and p95 120 ms; each turn also tokenizes the prompt (system prompt + last 8 turns)",
    "and the reply. See loadtest/README.md.",
    "",
  ];
  return lines.join("\n");
}

function rate(samples: readonly Sample[], pick: (s: Sample) => number | undefined): [number, number][] {
  const out: [number, number][] = [];
  for (let i = 1; i < samples.length; i += 1) {
    const a = samples[i - 1]!;
    const b = samples[i]!;
    const va = pick(a);
    const vb = pick(b);
    if (va === undefined || vb === undefined || b.t <= a.t) continue;
    out.push([b.t, Math.max(0, (vb - va) / (b.t - a.t))]);
  }
  return out;
}

/** Writes summary.json, report.md and the charts into `outDir`. */
export function writeReport(outDir: string, outcome: LoadTestOutcome): void {
  writeFileSync(join(outDir, "summary.json"), `${JSON.stringify(summaryJson(outcome), null, 2)}\n`);
  writeFileSync(join(outDir, "report.md"), reportMarkdown(outcome));
  const quantileSeries = (r: OverheadResult): Series[] => [
    { name: "capture off", color: OFF_COLOR, points: r.off.quantiles.map(({ q, ms }) => [q, ms] as const) },
    {
      name: "capture on",
      color: ON_COLOR,
      points: r.on.quantiles.map(({ q, ms }) => [q, ms] as const),
      dashed: true,
    },
  ];
  writeFileSync(
    join(outDir, "latency-overhead.svg"),
    lineChart({
      title: "Bot latency by percentile, steady load",
      xLabel: "percentile",
      yLabel: "latency (ms)",
      series: quantileSeries(outcome.overhead),
    }),
  );
  outcome.degraded.forEach((d, i) => {
    if (d.overhead === undefined) return;
    writeFileSync(
      join(outDir, `latency-degraded-${i + 1}.svg`),
      lineChart({
        title: `Bot latency by percentile, ${d.mode}`,
        xLabel: "percentile",
        yLabel: "latency (ms)",
        series: quantileSeries(d.overhead),
      }),
    );
  });
  const samples = outcome.sampler.samples;
  const bands: Band[] = outcome.sampler.phases.map((p) => ({ label: p.name, from: p.start, to: p.end }));
  writeFileSync(
    join(outDir, "throughput.svg"),
    lineChart({
      title: "Throughput over time",
      xLabel: "seconds since start",
      yLabel: "per second",
      bands,
      series: [
        {
          name: "bot requests/s, capture off",
          color: OFF_COLOR,
          points: rate(samples, (s) => s.offRequests),
        },
        {
          name: "bot requests/s, capture on",
          color: ON_COLOR,
          points: rate(samples, (s) => s.onRequests),
          dashed: true,
        },
        { name: "SDK acks/s (events)", color: "#2ca02c", points: rate(samples, (s) => s.acked) },
      ],
    }),
  );
  writeFileSync(
    join(outDir, "ingest-throughput.svg"),
    lineChart({
      title: "Ingest events stored per second",
      xLabel: "seconds since start",
      yLabel: "events/s",
      bands,
      series: [{ name: "ingest events/s", color: "#9467bd", points: rate(samples, (s) => s.ingestEvents) }],
    }),
  );
  const cpuPoints = (variant: "off" | "on" | "twin"): [number, number][] =>
    cpuPerRequestSeries(
      samples,
      (s) => s[`${variant}CpuUs` as const],
      (s) => s[`${variant}Requests` as const],
      CPU_WINDOW_S,
    );
  const cpuSeries: Series[] = [
    { name: "capture off", color: OFF_COLOR, points: cpuPoints("off") },
    { name: "capture on", color: ON_COLOR, points: cpuPoints("on"), dashed: true },
  ];
  if (samples.some((s) => s.twinRequests !== undefined)) {
    cpuSeries.push({ name: "capture-off twin (A/A)", color: TWIN_COLOR, points: cpuPoints("twin") });
  }
  writeFileSync(
    join(outDir, "cpu-per-request.svg"),
    lineChart({
      title: `Bot CPU per request over time (${CPU_WINDOW_S} s windows)`,
      xLabel: "seconds since start",
      yLabel: "CPU µs per request",
      bands,
      series: cpuSeries,
    }),
  );
  writeFileSync(
    join(outDir, "backlog.svg"),
    lineChart({
      title: "Capture SDK backlog over time",
      xLabel: "seconds since start",
      yLabel: "events / KiB",
      bands,
      series: [
        {
          name: "queued + in flight (events)",
          color: "#ff7f0e",
          points: samples
            .filter((s) => s.queueDepth !== undefined && s.inFlight !== undefined)
            .map((s) => [s.t, (s.queueDepth ?? 0) + (s.inFlight ?? 0)] as const),
        },
        {
          name: "spool on disk (KiB)",
          color: "#8c564b",
          points: samples
            .filter((s) => s.spoolBytes !== undefined)
            .map((s) => [s.t, (s.spoolBytes ?? 0) / 1024] as const),
          dashed: true,
        },
      ],
    }),
  );
}
