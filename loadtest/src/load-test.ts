// The load test: starts the real stack and both bots, runs the k6 phases, checks the budget.
import { PROTO_DIR } from "@sessiontrack/runtime";
import type { MinioServer } from "@sessiontrack/testkit";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { cpus, tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";

import { accuracyOf, walEventIds, type CaptureAccuracy } from "./accuracy.js";
import { trackDir, untrackDir } from "./children.js";
import type { BotStats } from "./bot/chat-bot.js";
import type { LoadProfile } from "./config.js";
import { FaultProxy } from "./fault-proxy.js";
import { metricValue, runK6, type K6Result } from "./k6.js";
import { keepPerfMaps, recordPhase, type PerfCounts } from "./perf-profile.js";
import {
  botStats,
  cpuWindow,
  histogramPercentileMs,
  ingestEventsAndAcks,
  overheadOf,
  shipperLagRecords,
  Sampler,
  type OverheadResult,
} from "./measure.js";
import { ArchiveReader, IndexReader, measureFreshness, percentile, storeHolds } from "./sinks.js";
import {
  BOT_MAIN,
  createStackHome,
  freePort,
  SESSIONTRACK_BIN,
  spawnServed,
  startSinks,
  type ServedProcess,
  type StackHome,
} from "./stack.js";

/** The overhead budget: capture may add at most this much, in percent. */
export const BUDGET_PCT = 5;

/** A degraded mode's outcome: overhead while the fault lasts, and the drain afterwards. */
export interface DegradedResult {
  mode: string;
  measured: boolean;
  /** Why not, when not measured. */
  reason?: string;
  overhead?: OverheadResult;
  /** How long the SDK took to deliver its backlog once the fault ended, ms. */
  drainMs?: number;
  drainComplete?: boolean;
  /** Events the SDK spooled during the fault. */
  spooled?: number;
  /**
   * How long after the SDK's drain the sinks (index, archive) confirmed everything ingest's
   * WAL held, ms; undefined when ingest ships nowhere or its metrics did not answer.
   */
  sinksCatchUpMs?: number;
  sinksCaughtUp?: boolean;
}

/** How long the runner waits for the sinks to catch up after a fault before it goes on. */
export const SINK_CATCH_UP_TIMEOUT_MS = 120_000;

/** Everything one run measured; written to summary.json. */
export interface LoadTestOutcome {
  profile: string;
  /** SDK options the capturing bot ran with (empty: the SDK's defaults). */
  sdkFlags: readonly string[];
  startedAt: string;
  seconds: number;
  cores: number;
  warmup: OverheadResult;
  overhead: OverheadResult;
  /** Two capture-off bots compared in the steady-load phase (A/A): the noise floor; full runs only. */
  noise: OverheadResult | undefined;
  degraded: DegradedResult[];
  ingest: {
    eventsPerS: number;
    ackP50Ms: number;
    ackP99Ms: number;
    appendP99Ms: number;
    /**
     * Ingest's own ack latency over the phase (its histogram: batch decoded → acked after
     * fdatasync, Stream and Append), as the upper bound of the bucket the percentile falls in;
     * undefined when ingest's metrics did not answer or it acked nothing.
     */
    serverAckP50Ms: number | undefined;
    serverAckP99Ms: number | undefined;
    k6ExitCode: number;
    eventsAcked: number;
  };
  freshness:
    | { measured: false; reason: string }
    | { measured: true; p50Ms: number; p95Ms: number; probes: number; timedOut: number };
  accuracy: CaptureAccuracy;
  sdk: BotStats["sdk"];
  /** Breaches of the bot budget: overhead > 5%, failed requests, lost events. */
  violations: string[];
  /** Misses of the other thresholds: ingest.js (ack latency, errors), freshness timeouts and p95 over 1 s. */
  targetMisses: string[];
  /** True when the bot budget held (violations is empty). */
  passed: boolean;
  sampler: Sampler;
  k6: Record<string, K6Result>;
  /** `--perf`: samples per bucket for each overhead phase and bot (off, on); absent otherwise. */
  perf?: Record<string, Record<string, PerfCounts>>;
}

async function post(url: string): Promise<unknown> {
  const res = await fetch(url, { method: "POST", signal: AbortSignal.timeout(60_000) });
  if (!res.ok) throw new Error(`${url} answered ${res.status}`);
  return res.json();
}

/** Runs the whole load test and returns what it measured; `outDir` receives logs and k6 summaries. */
export async function runLoadTest(options: {
  profile: LoadProfile;
  k6Path: string;
  outDir: string;
  /** Extra flags for the capturing bot (SDK options). */
  sdkFlags?: readonly string[];
  /** Sample the bots with Linux perf in each overhead phase (`run.js --perf`). */
  perf?: boolean;
  log?: (line: string) => void;
}): Promise<LoadTestOutcome> {
  const { profile, k6Path, outDir } = options;
  const log = options.log ?? ((line: string) => console.log(line));
  const started = Date.now();
  const workDir = trackDir(mkdtempSync(join(tmpdir(), "sessiontrack-loadtest-")));
  const logs = join(outDir, "logs");
  mkdirSync(logs, { recursive: true });
  const processes: ServedProcess[] = [];
  let ingest: ServedProcess | undefined;
  let proxy: FaultProxy | undefined;
  let sampler: Sampler | undefined;
  let minio: MinioServer | undefined;
  const k6: Record<string, K6Result> = {};
  const perfCounts: Record<string, Record<string, PerfCounts>> = {};
  // --perf: V8 writes /tmp/perf-<pid>.map for each bot so perf can name JIT-compiled functions.
  // That flag also turns on V8's event log, one isolate-*-v8.log per isolate in the working
  // directory (the checkout); perf does not read it, so it goes nowhere.
  const nodeFlags =
    options.perf === true ? ["--perf-basic-prof", "--no-logfile-per-isolate", "--logfile=/dev/null"] : [];
  try {
    const home: StackHome = createStackHome(join(workDir, "home"));
    const dataDir = join(workDir, "ingest-data");
    const ingestPort = await freePort();

    const sinks = await startSinks({ home, workDir, logs, log });
    processes.push(...sinks.processes);
    minio = sinks.minio;
    const { index, archive, sinkArgs } = sinks;
    const startIngest = async (): Promise<ServedProcess> =>
      spawnServed(
        "ingest",
        [
          SESSIONTRACK_BIN,
          "ingest",
          "serve",
          "--data-dir",
          dataDir,
          "--tenants",
          home.tenantsFile,
          "--capture-config",
          home.captureConfigFile,
          "--listen",
          `127.0.0.1:${ingestPort}`,
          "--metrics-listen",
          "127.0.0.1:0",
          "--log-level",
          "info",
          ...sinkArgs,
        ],
        /^ingest serving$/,
        join(logs, "ingest.log"),
      );
    ingest = await startIngest();
    let ingestMetrics: string | undefined = ingest.announced["metrics"] as string;
    log(`loadtest: ingest at ${ingest.address} (metrics ${ingestMetrics})`);

    proxy = new FaultProxy({ host: "127.0.0.1", port: ingestPort });
    const proxyAddress = await proxy.listen();

    const botOff = await spawnServed(
      "bot-off",
      [...nodeFlags, BOT_MAIN, "--capture", "off", "--bot-id", "reference-bot-off"],
      /^bot serving$/,
      join(logs, "bot-off.log"),
    );
    processes.push(botOff);
    const botOn = await spawnServed(
      "bot-on",
      [
        ...nodeFlags,
        BOT_MAIN,
        "--capture",
        "on",
        "--bot-id",
        "reference-bot",
        "--target",
        proxyAddress,
        "--api-key-file",
        home.apiKeyFile,
        "--spool-dir",
        join(workDir, "spool"),
        "--record-dir",
        join(workDir, "bot-records"),
        ...(options.sdkFlags ?? []),
      ],
      /^bot serving$/,
      join(logs, "bot-on.log"),
    );
    processes.push(botOn);
    const offUrl = `http://${botOff.address}`;
    const onUrl = `http://${botOn.address}`;
    log(`loadtest: bots off=${offUrl} on=${onUrl} (capture via proxy ${proxyAddress})`);

    const runId = `lt${started.toString(36)}`;

    // The noise floor (full runs): a second capture-off bot driven in the same k6 runs as a
    // third variant, so off vs twin (A/A) is measured under exactly the conditions of off vs on.
    let twinUrl: string | undefined;
    if (profile.twin) {
      const twin = await spawnServed(
        "bot-twin",
        [...nodeFlags, BOT_MAIN, "--capture", "off", "--bot-id", "reference-bot-twin"],
        /^bot serving$/,
        join(logs, "bot-twin.log"),
      );
      processes.push(twin);
      twinUrl = `http://${twin.address}`;
    }
    sampler = new Sampler(offUrl, onUrl, () => ingestMetrics, twinUrl);
    sampler.start();
    const noise: Record<string, OverheadResult> = {};

    /** Runs overhead.js for one phase and measures CPU of the bots around it. */
    const overheadPhase = async (phase: string, seconds: number): Promise<OverheadResult> => {
      const end = sampler!.phase(phase);
      const [offBefore, onBefore] = await Promise.all([botStats(offUrl), botStats(onUrl)]);
      const twinBefore = twinUrl === undefined ? undefined : await botStats(twinUrl);
      const recording =
        options.perf === true
          ? recordPhase(outDir, phase, { off: botOff.child.pid!, on: botOn.child.pid! })
          : undefined;
      const result = await runK6({
        k6Path,
        script: "overhead.js",
        name: phase,
        outDir,
        env: {
          BOT_OFF: offUrl,
          BOT_ON: onUrl,
          RATE: String(profile.botRate),
          DURATION: `${seconds}s`,
          PHASE: phase,
          RUN_ID: runId,
          ...(twinUrl === undefined ? {} : { BOT_TWIN: twinUrl }),
        },
      });
      const [offAfter, onAfter] = await Promise.all([botStats(offUrl), botStats(onUrl)]);
      if (recording !== undefined) perfCounts[phase] = await recording.stop();
      if (twinUrl !== undefined && twinBefore !== undefined) {
        const twinAfter = await botStats(twinUrl);
        noise[phase] = overheadOf(
          phase,
          result.summary,
          cpuWindow(offBefore, offAfter),
          cpuWindow(twinBefore, twinAfter),
          result.exitCode,
          twinAfter.errors - twinBefore.errors,
          "twin",
        );
        log(
          `loadtest: ${phase}: noise floor (off vs capture-off twin): p95 ${noise[phase].p95Pct.toFixed(2)}%, ` +
            `CPU/request ${noise[phase].cpuPct.toFixed(2)}%`,
        );
      }
      end();
      k6[phase] = result;
      const botErrors = offAfter.errors - offBefore.errors + (onAfter.errors - onBefore.errors);
      const overhead = overheadOf(
        phase,
        result.summary,
        cpuWindow(offBefore, offAfter),
        cpuWindow(onBefore, onAfter),
        result.exitCode,
        botErrors,
      );
      log(
        `loadtest: ${phase}: p95 off ${overhead.off.p95.toFixed(1)} ms / on ${overhead.on.p95.toFixed(1)} ms ` +
          `(${overhead.p95Pct.toFixed(2)}%), CPU/request off ${overhead.off.cpuUsPerRequest.toFixed(0)} µs / ` +
          `on ${overhead.on.cpuUsPerRequest.toFixed(0)} µs (${overhead.cpuPct.toFixed(2)}%), errors ${overhead.errors}`,
      );
      return overhead;
    };

    /** After a fault: waits until the SDK delivered everything it holds. */
    const drain = async (): Promise<{ drainMs: number; complete: boolean }> => {
      const t0 = Date.now();
      const flushed = (await post(`${onUrl}/flush`)) as { flush: { complete: boolean } | null };
      return { drainMs: Date.now() - t0, complete: flushed.flush?.complete === true };
    };

    /**
     * After a fault and the SDK's drain: waits until the sinks confirmed all that ingest's WAL
     * holds. Ingest ships from its own process, so a backlog left from one fault would load
     * ingest (and the machine) during the next phase; each phase starts caught up instead.
     */
    const sinksCatchUp = async (): Promise<Pick<DegradedResult, "sinksCatchUpMs" | "sinksCaughtUp">> => {
      const t0 = Date.now();
      for (;;) {
        const lag = ingestMetrics === undefined ? undefined : await shipperLagRecords(ingestMetrics);
        if (lag === undefined) return {};
        const waited = Date.now() - t0;
        if (lag === 0) return { sinksCatchUpMs: waited, sinksCaughtUp: true };
        if (waited > SINK_CATCH_UP_TIMEOUT_MS) {
          log(`loadtest: the sinks are still ${lag} WAL records behind after ${waited} ms; going on`);
          return { sinksCatchUpMs: waited, sinksCaughtUp: false };
        }
        await sleep(100);
      }
    };

    const warmup = await overheadPhase("warmup", profile.warmupSeconds);
    const overhead = await overheadPhase("overhead", profile.overheadSeconds);

    const degraded: DegradedResult[] = [];

    /**
     * One fault: `begin` starts it, the phase runs under load, `end` lifts it; then the SDK's
     * drain and the sinks' catch-up are timed and the outcome joins `degraded`. `countSpool`
     * false reports 0 spooled events without asking (a fault the SDK never sees).
     */
    const faultPhase = async (
      phase: string,
      mode: string,
      fault: { begin?: () => Promise<void> | void; end?: () => Promise<void> | void } = {},
      countSpool = true,
    ): Promise<void> => {
      const spooledBefore = countSpool ? ((await botStats(onUrl)).sdk?.spooled ?? 0) : 0;
      await fault.begin?.();
      const result = await overheadPhase(phase, profile.degradedSeconds);
      await fault.end?.();
      const drained = await drain();
      const sinks = await sinksCatchUp();
      degraded.push({
        mode,
        measured: true,
        overhead: result,
        drainMs: drained.drainMs,
        drainComplete: drained.complete,
        ...sinks,
        spooled: countSpool ? ((await botStats(onUrl)).sdk?.spooled ?? 0) - spooledBefore : 0,
      });
    };

    // Degraded: ingest answers, but every ack arrives slowAckMs late.
    const faultProxy = proxy;
    await faultPhase("ingest_slow", `ingest_slow (+${profile.slowAckMs} ms per ack)`, {
      begin: () => faultProxy.setMode({ kind: "delay", delayMs: profile.slowAckMs }),
      end: () => faultProxy.setMode({ kind: "pass" }),
    });

    // Degraded: ingest is killed (SIGKILL) for the whole phase, then restarted on its port.
    const killed = ingest;
    await faultPhase("ingest_down", "ingest_down (SIGKILL, restarted after)", {
      begin: async () => {
        await killed.stop("SIGKILL");
        ingestMetrics = undefined;
      },
      end: async () => {
        ingest = await startIngest();
        ingestMetrics = ingest.announced["metrics"] as string;
      },
    });

    // After the outage: ingest is back and the SDK has replayed its spool (the drain just
    // above, without load). The capturing bot still runs dearer for about a minute after each
    // change of state (loadtest/README.md, "Sixth pass"), so that minute is measured as its own
    // phase, under the same budget, and the next fault starts from steady load.
    await faultPhase("ingest_restarted", "ingest_restarted (the phase after ingest came back)");

    // Degraded: the archive's object store (MinIO) is down; ingest keeps acking from its WAL
    // and the shipper retries, so the bot must not notice and the archive must catch up.
    if (minio !== undefined) {
      const store = minio;
      await faultPhase(
        "minio_down",
        "minio_down (archive's S3 stopped)",
        { begin: () => store.stop(), end: () => store.start() },
        false,
      );
    } else {
      degraded.push({
        mode: "minio_down",
        measured: false,
        reason:
          archive === undefined
            ? "this checkout's CLI has no `sessiontrack archive serve`"
            : "MinIO is not built (`make tools`); the archive ran on a local directory",
      });
    }

    // ingest alone over gRPC (k6/net/grpc), after the bot phases so it cannot disturb them.
    const endIngest = sampler.phase("ingest_grpc");
    const before = await ingestEventsAndAcks(ingestMetrics);
    const eventsBefore = before?.eventsTotal ?? 0;
    const ingestStarted = Date.now();
    const reader = index === undefined ? undefined : new IndexReader(index.address, home.apiKey);
    const freshnessRun =
      reader === undefined
        ? undefined
        : measureFreshness({
            ingest: ingest.address,
            apiKey: home.apiKey,
            spoolDir: join(workDir, "probe-spool"),
            reader,
            probes: profile.freshnessProbes,
            timeoutMs: 10_000,
          });
    const ingestRun = await runK6({
      k6Path,
      script: "ingest.js",
      name: "ingest",
      outDir,
      env: {
        INGEST: ingest.address,
        API_KEY: home.apiKey,
        PROTO_DIR,
        DURATION: `${profile.ingestSeconds}s`,
        STREAM_RATE: String(profile.ingestStreamRate),
        APPEND_RATE: String(profile.ingestAppendRate),
      },
    });
    const ingestSeconds = (Date.now() - ingestStarted) / 1000;
    const freshness = await freshnessRun;
    const after = await ingestEventsAndAcks(ingestMetrics);
    const eventsAfter = after?.eventsTotal ?? eventsBefore;
    const serverAckMs = (q: number): number | undefined =>
      before === undefined || after === undefined
        ? undefined
        : histogramPercentileMs(before.ackBuckets, after.ackBuckets, q);
    endIngest();
    k6["ingest"] = ingestRun;
    log(`loadtest: ${ingestRun.stdout}`);

    // Final accounting: flush the SDK, then read what the WAL holds once ingest stopped.
    const finalFlush = await drain();
    const finalOn = await botStats(onUrl);
    const ackedIds = (await (await fetch(`${onUrl}/acked-ids`)).text()).split("\n").filter((id) => id !== "");
    const sessionIds = (await (await fetch(`${onUrl}/sessions`)).text())
      .split("\n")
      .filter((id) => id !== "");
    // The shipper delivers asynchronously: give the sinks a while to catch up.
    const ackedSet = new Set(ackedIds);
    const indexHeld =
      reader === undefined ? undefined : await storeHolds(reader, sessionIds, ackedSet, 60_000);
    reader?.close();
    const archiveReader = archive === undefined ? undefined : new ArchiveReader(archive.address, home.apiKey);
    const archiveHeld =
      archiveReader === undefined ? undefined : await storeHolds(archiveReader, sessionIds, ackedSet, 60_000);
    archiveReader?.close();
    sampler.stop();
    await ingest.stop("SIGTERM");
    ingestMetrics = undefined;
    const wal = await walEventIds(dataDir);
    const sdk = finalOn.sdk;
    const accuracy = accuracyOf({
      attempted: finalOn.captureAttempted,
      ackedIds,
      wal,
      dropped: sdk?.dropped ?? 0,
      rejected: sdk?.rejected ?? 0,
      pending: (sdk?.queueDepth ?? 0) + (sdk?.inFlight ?? 0) + (finalFlush.complete ? 0 : 1),
      sinks: {
        index: indexHeld ?? "this checkout's CLI has no `sessiontrack index serve`",
        archive: archiveHeld ?? "this checkout's CLI has no `sessiontrack archive serve`",
      },
    });

    const ingestFigures = {
      eventsPerS: Math.round((eventsAfter - eventsBefore) / ingestSeconds),
      ackP50Ms: metricValue(ingestRun.summary, "ingest_ack_latency", "p(50)"),
      ackP99Ms: metricValue(ingestRun.summary, "ingest_ack_latency", "p(99)"),
      appendP99Ms: metricValue(ingestRun.summary, "grpc_req_duration{scenario:append}", "p(99)"),
      serverAckP50Ms: serverAckMs(50),
      serverAckP99Ms: serverAckMs(99),
      k6ExitCode: ingestRun.exitCode,
      eventsAcked: metricValue(ingestRun.summary, "ingest_acked_events", "count"),
    };

    const violations = budgetViolations(overhead, degraded, accuracy);
    const targetMisses = otherTargetMisses(ingestFigures.k6ExitCode, freshness);
    return {
      profile: profile.name,
      sdkFlags: options.sdkFlags ?? [],
      startedAt: new Date(started).toISOString(),
      seconds: (Date.now() - started) / 1000,
      cores: cpus().length,
      warmup,
      overhead,
      noise: noise["overhead"],
      degraded,
      ingest: ingestFigures,
      freshness:
        freshness === undefined
          ? { measured: false, reason: "this checkout's CLI has no `sessiontrack index serve`" }
          : {
              measured: true,
              p50Ms: percentile(freshness.samplesMs, 50),
              p95Ms: percentile(freshness.samplesMs, 95),
              probes: freshness.samplesMs.length + freshness.timedOut,
              timedOut: freshness.timedOut,
            },
      accuracy,
      sdk,
      violations,
      targetMisses,
      passed: violations.length === 0,
      sampler,
      k6,
      ...(options.perf === true ? { perf: perfCounts } : {}),
    };
  } finally {
    sampler?.stop();
    await Promise.all(processes.map((p) => p.stop("SIGTERM")));
    await ingest?.stop("SIGTERM");
    await proxy?.close();
    await minio?.cleanup();
    rmSync(workDir, { recursive: true, force: true });
    untrackDir(workDir);
    // The JIT symbol maps V8 wrote for perf (--perf-basic-prof) go next to the perf data, so
    // /tmp does not fill up run after run (copy one back to /tmp to name JIT frames again).
    if (nodeFlags.length > 0) keepPerfMaps(processes, join(outDir, "perf"));
  }
}

/** DESIGN.md's freshness target: an acknowledged event is searchable within 1 s (p95). */
export const FRESHNESS_P95_TARGET_MS = 1_000;

/**
 * Misses of the targets other than the bot budget: ingest.js's k6 thresholds, freshness
 * probes never found, and freshness p95 over {@link FRESHNESS_P95_TARGET_MS}.
 */
export function otherTargetMisses(
  ingestK6ExitCode: number,
  freshness: { samplesMs: readonly number[]; timedOut: number } | undefined,
): string[] {
  const misses: string[] = [];
  if (ingestK6ExitCode !== 0) {
    misses.push(`ingest gRPC: k6 exited with ${ingestK6ExitCode} (a threshold failed)`);
  }
  if (freshness === undefined) return misses;
  if (freshness.timedOut > 0) {
    misses.push(`freshness: ${freshness.timedOut} acknowledged probe events were not searchable within 10 s`);
  }
  if (freshness.samplesMs.length === 0) return misses;
  const p95 = percentile(freshness.samplesMs, 95);
  if (p95 > FRESHNESS_P95_TARGET_MS) {
    misses.push(
      `freshness: p95 ${p95.toFixed(0)} ms from ack to searchable (target ${FRESHNESS_P95_TARGET_MS} ms)`,
    );
  }
  return misses;
}

/** Every way this run missed its budget, in words; empty when it passed. */
export function budgetViolations(
  overhead: OverheadResult,
  degraded: readonly DegradedResult[],
  accuracy: CaptureAccuracy,
): string[] {
  const out: string[] = [];
  const check = (result: OverheadResult, label: string): void => {
    if (!(result.p95Pct <= BUDGET_PCT)) {
      out.push(`${label}: capture adds ${result.p95Pct.toFixed(2)}% to p95 latency (budget ${BUDGET_PCT}%)`);
    }
    if (!(result.cpuPct <= BUDGET_PCT)) {
      out.push(
        `${label}: capture adds ${result.cpuPct.toFixed(2)}% to CPU per request (budget ${BUDGET_PCT}%)`,
      );
    }
    if (result.errors > 0) out.push(`${label}: ${result.errors} requests failed`);
    if (result.k6ExitCode !== 0)
      out.push(`${label}: k6 exited with ${result.k6ExitCode} (a threshold failed)`);
  };
  check(overhead, "steady load");
  for (const mode of degraded) {
    if (!mode.measured || mode.overhead === undefined) continue;
    check(mode.overhead, mode.mode);
    if (mode.drainComplete !== true)
      out.push(`${mode.mode}: the SDK did not deliver its backlog after the fault`);
  }
  if (accuracy.ofAcked < 1) {
    out.push(
      `capture accuracy: ${accuracy.acked - accuracy.ackedInWal} acknowledged events are missing from the WAL`,
    );
  }
  if (accuracy.ofAttempted < 0.999) {
    out.push(
      `capture accuracy: ${(accuracy.ofAttempted * 100).toFixed(3)}% of attempted events stored (need >= 99.9%)`,
    );
  }
  for (const [name, sink] of Object.entries(accuracy.sinks)) {
    if ("held" in sink && sink.ofAcked < 1) {
      out.push(`capture accuracy: ${name} holds ${sink.held} of ${accuracy.acked} acknowledged events`);
    }
  }
  if (accuracy.walDamagedFrames > 0)
    out.push(`WAL: ${accuracy.walDamagedFrames} frames failed their checksum`);
  return out;
}
