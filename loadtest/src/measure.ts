// What the runner reads from the bots and ingest while load runs, and the overhead figures
// computed from it.
import type { BotStats } from "./bot/chat-bot.js";
import { metricValue, type K6Summary } from "./k6.js";

/** GET <bot>/stats. */
export async function botStats(base: string): Promise<BotStats> {
  const res = await fetch(`${base}/stats`);
  if (!res.ok) throw new Error(`${base}/stats answered ${res.status}`);
  return (await res.json()) as BotStats;
}

/** The text of ingest's /metrics, or undefined when it does not answer within 800 ms. */
async function scrapeMetrics(metricsAddress: string): Promise<string | undefined> {
  try {
    const res = await fetch(`http://${metricsAddress}/metrics`, { signal: AbortSignal.timeout(800) });
    return await res.text();
  } catch {
    return undefined;
  }
}

/** Sum of every sample of `name` (one per label set) in Prometheus text, or undefined when there is none. */
export function sumOfMetric(text: string, name: string): number | undefined {
  let total: number | undefined;
  for (const match of text.matchAll(new RegExp(`^${name}(?:\\{[^}]*\\})? ([0-9.e+-]+)$`, "gm"))) {
    total = (total ?? 0) + Number(match[1]);
  }
  return total;
}

/** Sum of `sessiontrack_ingest_events_total` over results in ingest's /metrics text. */
function eventsTotalOf(text: string): number {
  return sumOfMetric(text, "sessiontrack_ingest_events_total") ?? 0;
}

/** Sum of ingest's `sessiontrack_ingest_events_total` over results, or undefined when down. */
export async function ingestEventsTotal(metricsAddress: string): Promise<number | undefined> {
  const text = await scrapeMetrics(metricsAddress);
  return text === undefined ? undefined : eventsTotalOf(text);
}

/** A Prometheus histogram's cumulative bucket counts by upper bound (seconds; `Infinity` for +Inf). */
export type HistogramBuckets = ReadonlyMap<number, number>;

/** The `<name>_bucket` samples of an unlabelled histogram in Prometheus text, summed per bound. */
export function histogramBuckets(text: string, name: string): HistogramBuckets {
  const buckets = new Map<number, number>();
  for (const match of text.matchAll(
    new RegExp(`^${name}_bucket\\{(?:[^}]*,)?le="([^"]+)"[^}]*\\} ([0-9.e+-]+)$`, "gm"),
  )) {
    const bound = match[1] === "+Inf" ? Number.POSITIVE_INFINITY : Number(match[1]);
    buckets.set(bound, (buckets.get(bound) ?? 0) + Number(match[2]));
  }
  return buckets;
}

/**
 * The `q`-th percentile (0–100) of what a histogram counted between two scrapes, as the
 * upper bound of the bucket it falls in, in milliseconds: "at most this". `Infinity` when it
 * falls in the +Inf bucket; undefined when nothing was counted in between.
 */
export function histogramPercentileMs(
  before: HistogramBuckets,
  after: HistogramBuckets,
  q: number,
): number | undefined {
  const bounds = [...after.keys()].sort((a, b) => a - b);
  const counts = bounds.map((bound) => (after.get(bound) ?? 0) - (before.get(bound) ?? 0));
  const total = counts.at(-1) ?? 0;
  if (total <= 0) return undefined;
  const rank = (q / 100) * total;
  const at = counts.findIndex((count) => count >= rank);
  return bounds[at]! * 1000;
}

/**
 * From one scrape of ingest's /metrics: its stored events (as {@link ingestEventsTotal}) and
 * its own ack latency histogram (`sessiontrack_ingest_ack_latency_seconds`); undefined when down.
 */
export async function ingestEventsAndAcks(
  metricsAddress: string,
): Promise<{ eventsTotal: number; ackBuckets: HistogramBuckets } | undefined> {
  const text = await scrapeMetrics(metricsAddress);
  if (text === undefined) return undefined;
  return {
    eventsTotal: eventsTotalOf(text),
    ackBuckets: histogramBuckets(text, "sessiontrack_ingest_ack_latency_seconds"),
  };
}

/**
 * WAL records the sinks (index, archive) have not confirmed yet, summed
 * (`sessiontrack_shipper_lag_records`); undefined when ingest does not answer or ships nowhere.
 */
export async function shipperLagRecords(metricsAddress: string): Promise<number | undefined> {
  const text = await scrapeMetrics(metricsAddress);
  return text === undefined ? undefined : sumOfMetric(text, "sessiontrack_shipper_lag_records");
}

/** CPU and requests of one bot over a window. */
export interface CpuWindow {
  requests: number;
  cpuMs: number;
  cpuUsPerRequest: number;
  /** The main thread's share of {@link cpuUsPerRequest}; NaN where it cannot be read. */
  mainThreadCpuUsPerRequest: number;
  /** Events the SDK accepted in the window (0 with capture off). */
  events: number;
}

/** The difference between two stats snapshots of one bot. */
export function cpuWindow(before: BotStats, after: BotStats): CpuWindow {
  const requests = after.requests - before.requests;
  const cpuUs = processCpuUs(after) - processCpuUs(before);
  const mainUs =
    before.mainThreadCpuUs === null || after.mainThreadCpuUs === null
      ? Number.NaN
      : after.mainThreadCpuUs - before.mainThreadCpuUs;
  return {
    requests,
    cpuMs: cpuUs / 1000,
    cpuUsPerRequest: requests > 0 ? cpuUs / requests : Number.NaN,
    mainThreadCpuUsPerRequest: requests > 0 ? mainUs / requests : Number.NaN,
    events: (after.sdk?.captured ?? 0) - (before.sdk?.captured ?? 0),
  };
}

/** Latency of one variant in one phase, from k6's tagged sub-metrics. */
export interface VariantLatency {
  count: number;
  p50: number;
  p95: number;
  p99: number;
  failedRate: number;
  /** p(1)..p(99), p(99.5), p(99.9) in ms, for the distribution chart. */
  quantiles: { q: number; ms: number }[];
}

/** Reads one variant's latency figures from an overhead.js summary. */
export function variantLatency(summary: K6Summary | undefined, variant: string): VariantLatency {
  const name = `http_req_duration{variant:${variant}}`;
  const values = summary?.metrics[name]?.values ?? {};
  const quantiles: { q: number; ms: number }[] = [];
  for (const [stat, ms] of Object.entries(values)) {
    const match = /^p\(([0-9.]+)\)$/.exec(stat);
    if (match !== null) quantiles.push({ q: Number(match[1]), ms });
  }
  quantiles.sort((a, b) => a.q - b.q);
  return {
    count: metricValue(summary, name, "count"),
    p50: metricValue(summary, name, "p(50)"),
    p95: metricValue(summary, name, "p(95)"),
    p99: metricValue(summary, name, "p(99)"),
    failedRate: metricValue(summary, `http_req_failed{variant:${variant}}`, "rate"),
    quantiles,
  };
}

/** One phase's comparison of capture on vs off. */
export interface OverheadResult {
  phase: string;
  off: VariantLatency & CpuWindow;
  on: VariantLatency & CpuWindow;
  /** (on − off) / off of p95 latency, in percent. */
  p95Pct: number;
  p50Pct: number;
  p99Pct: number;
  /** (on − off) / off of CPU per request, in percent. */
  cpuPct: number;
  /** Failed requests of both variants. */
  errors: number;
  /** Captured events per request, and capture's extra CPU per captured event (µs). */
  eventsPerRequest: number;
  captureCpuUsPerEvent: number;
  k6ExitCode: number;
}

const pct = (on: number, off: number): number => ((on - off) / off) * 100;

/** Combines latency (k6) and CPU (bot stats) of both variants into an {@link OverheadResult}. */
export function overheadOf(
  phase: string,
  summary: K6Summary | undefined,
  cpuOff: CpuWindow,
  cpuOn: CpuWindow,
  k6ExitCode: number,
  botErrors: number,
  /** The variant compared with "off": "on", or "twin" for the A/A noise floor. */
  variant = "on",
): OverheadResult {
  const off = { ...variantLatency(summary, "off"), ...cpuOff };
  const on = { ...variantLatency(summary, variant), ...cpuOn };
  const failed =
    Math.round((Number.isNaN(off.failedRate) ? 1 : off.failedRate) * off.count) +
    Math.round((Number.isNaN(on.failedRate) ? 1 : on.failedRate) * on.count);
  return {
    phase,
    off,
    on,
    p50Pct: pct(on.p50, off.p50),
    p95Pct: pct(on.p95, off.p95),
    p99Pct: pct(on.p99, off.p99),
    cpuPct: pct(on.cpuUsPerRequest, off.cpuUsPerRequest),
    errors: (Number.isNaN(failed) ? 0 : failed) + botErrors,
    eventsPerRequest: on.requests > 0 ? on.events / on.requests : Number.NaN,
    captureCpuUsPerEvent:
      on.events > 0 ? ((on.cpuUsPerRequest - off.cpuUsPerRequest) * on.requests) / on.events : Number.NaN,
    k6ExitCode,
  };
}

/** One sample of the time series the charts draw. */
export interface Sample {
  /** Seconds since the run started. */
  t: number;
  offRequests: number | undefined;
  onRequests: number | undefined;
  /** Requests of the capture-off twin (full runs); undefined without one. */
  twinRequests: number | undefined;
  /** process.cpuUsage() (user + system, µs) of each bot. */
  offCpuUs: number | undefined;
  onCpuUs: number | undefined;
  twinCpuUs: number | undefined;
  queueDepth: number | undefined;
  inFlight: number | undefined;
  spoolBytes: number | undefined;
  acked: number | undefined;
  ingestEvents: number | undefined;
}

/** Polls the bots and ingest every second until stopped. */
export class Sampler {
  readonly samples: Sample[] = [];
  readonly phases: { name: string; start: number; end: number }[] = [];
  private readonly startedAt = Date.now();
  private timer: NodeJS.Timeout | undefined;
  private busy = false;

  constructor(
    private readonly botOff: string,
    private readonly botOn: string,
    private readonly ingestMetrics: () => string | undefined,
    private readonly botTwin?: string,
  ) {}

  now(): number {
    return (Date.now() - this.startedAt) / 1000;
  }

  start(): void {
    this.timer = setInterval(() => void this.sample(), 1000);
  }

  /** Marks a phase for the charts' bands; returns a function that ends it. */
  phase(name: string): () => void {
    const entry = { name, start: this.now(), end: Number.NaN };
    this.phases.push(entry);
    return () => {
      entry.end = this.now();
    };
  }

  private async sample(): Promise<void> {
    if (this.busy) return;
    this.busy = true;
    try {
      const t = this.now();
      const [off, on, twin, events] = await Promise.all([
        botStats(this.botOff).catch(() => undefined),
        botStats(this.botOn).catch(() => undefined),
        this.botTwin === undefined ? undefined : botStats(this.botTwin).catch(() => undefined),
        (async () => {
          const address = this.ingestMetrics();
          return address === undefined ? undefined : ingestEventsTotal(address);
        })(),
      ]);
      this.samples.push({
        t,
        offRequests: off?.requests,
        onRequests: on?.requests,
        twinRequests: twin?.requests,
        offCpuUs: off === undefined ? undefined : processCpuUs(off),
        onCpuUs: on === undefined ? undefined : processCpuUs(on),
        twinCpuUs: twin === undefined ? undefined : processCpuUs(twin),
        queueDepth: on?.sdk?.queueDepth,
        inFlight: on?.sdk?.inFlight,
        spoolBytes: on?.sdk?.spoolBytes,
        acked: on?.sdk?.acked,
        ingestEvents: events,
      });
    } finally {
      this.busy = false;
    }
  }

  stop(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
  }
}

/** process.cpuUsage() of a bot, user + system, in µs. */
function processCpuUs(stats: BotStats): number {
  return stats.cpuUserUs + stats.cpuSystemUs;
}

/**
 * CPU per request of one bot in consecutive windows of about `windowS` seconds:
 * [end of window (s), µs per request]. A window without requests or with a missing sample
 * (a bot that did not answer /stats) yields no point.
 */
export function cpuPerRequestSeries(
  samples: readonly Sample[],
  cpu: (s: Sample) => number | undefined,
  requests: (s: Sample) => number | undefined,
  windowS: number,
): [number, number][] {
  const out: [number, number][] = [];
  let start: Sample | undefined;
  for (const sample of samples) {
    if (cpu(sample) === undefined || requests(sample) === undefined) {
      start = undefined;
      continue;
    }
    if (start === undefined) {
      start = sample;
      continue;
    }
    if (sample.t - start.t < windowS) continue;
    const served = requests(sample)! - requests(start)!;
    if (served > 0) out.push([sample.t, (cpu(sample)! - cpu(start)!) / served]);
    start = sample;
  }
  return out;
}
