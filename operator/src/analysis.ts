import type { KubeObject } from "./k8s/index.js";
import { PORTS } from "./render.js";
import type { AnalysisThresholds, Component } from "./spec.js";

/** Pod annotation naming the full URL of the pod's metrics endpoint (overrides podIP:port). */
export const METRICS_URL_ANNOTATION = "sessiontrack.io/metrics-url";

/** One sample of a Prometheus text exposition. */
interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** Parses the Prometheus text format (the subset prom-client writes). */
export function parsePrometheusText(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)/.exec(line);
    if (match === null) continue;
    const labels: Record<string, string> = {};
    for (const pair of (match[3] ?? "").matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      labels[pair[1] ?? ""] = (pair[2] ?? "").replace(/\\"/g, '"').replace(/\\\\/g, "\\");
    }
    const value = match[4] === "+Inf" ? Infinity : Number(match[4]);
    if (Number.isNaN(value)) continue;
    samples.push({ name: match[1] ?? "", labels, value });
  }
  return samples;
}

/** Which metrics measure a component's errors, traffic and latency. */
const SIGNALS: Record<
  Component,
  {
    total: string;
    errors: string;
    errorFilter?: (labels: Record<string, string>) => boolean;
    latency: string;
  }
> = {
  ingest: {
    total: "sessiontrack_ingest_batches_total",
    errors: "sessiontrack_ingest_rejected_batches_total",
    latency: "sessiontrack_ingest_ack_latency_seconds",
  },
  index: {
    total: "sessiontrack_index_requests_total",
    errors: "sessiontrack_index_requests_total",
    errorFilter: (labels) => labels["code"] !== undefined && labels["code"] !== "OK",
    latency: "sessiontrack_index_search_duration_seconds",
  },
  archive: {
    total: "sessiontrack_archive_events_total",
    errors: "sessiontrack_archive_errors_total",
    latency: "sessiontrack_archive_store_latency_seconds",
  },
};
/**
 * Capture's CPU overhead in the bots, percent of their own CPU: the worst live report of the
 * SDKs connected to the cohort's ingest pods (ingest exports it from capture_overhead_pct).
 */
export const BOT_OVERHEAD_METRIC = "sessiontrack_bot_capture_overhead_pct";

/** What one group of pods (canary or stable) measured. */
export interface CohortMeasurement {
  pods: number;
  scraped: number;
  requests: number;
  errors: number;
  errorRate: number;
  /** p95 in seconds from the summed histogram; undefined without observations. */
  p95: number | undefined;
  botOverheadPct: number | undefined;
}

/** Sums counters and histograms over the scraped pods of one cohort. */
export function measure(component: Component, expositions: string[], pods: number): CohortMeasurement {
  const signal = SIGNALS[component];
  let requests = 0;
  let errors = 0;
  let overhead: number | undefined;
  const buckets = new Map<number, number>();
  for (const text of expositions) {
    for (const sample of parsePrometheusText(text)) {
      if (sample.name === signal.total) requests += sample.value;
      if (sample.name === signal.errors && (signal.errorFilter?.(sample.labels) ?? true))
        errors += sample.value;
      if (sample.name === `${signal.latency}_bucket`) {
        const le = sample.labels["le"] === "+Inf" ? Infinity : Number(sample.labels["le"]);
        buckets.set(le, (buckets.get(le) ?? 0) + sample.value);
      }
      if (sample.name === BOT_OVERHEAD_METRIC) overhead = Math.max(overhead ?? 0, sample.value);
    }
  }
  // The ingest "total" counts every batch; the others' error counters are separate from the total.
  const errorRate = requests > 0 ? errors / requests : 0;
  return {
    pods,
    scraped: expositions.length,
    requests,
    errors,
    errorRate,
    p95: histogramQuantile(0.95, buckets),
    botOverheadPct: overhead,
  };
}

/** The q-quantile of cumulative histogram buckets, interpolated linearly inside the bucket. */
export function histogramQuantile(q: number, buckets: Map<number, number>): number | undefined {
  const sorted = [...buckets.entries()].sort(([a], [b]) => a - b);
  const total = sorted.at(-1)?.[1] ?? 0;
  if (total === 0) return undefined;
  const rank = q * total;
  let previousBound = 0;
  let previousCount = 0;
  for (const [bound, count] of sorted) {
    if (count >= rank) {
      if (bound === Infinity) return previousBound;
      const inBucket = count - previousCount;
      return inBucket === 0
        ? bound
        : previousBound + ((bound - previousBound) * (rank - previousCount)) / inBucket;
    }
    previousBound = bound;
    previousCount = count;
  }
  return previousBound;
}

/** The verdict of one analysis check. */
export interface Verdict {
  healthy: boolean;
  /** The breached threshold and measured value, or why the check could not decide. */
  reason: string;
  /** True when there was not enough data to judge (no breach counted). */
  inconclusive: boolean;
}

/** Compares a canary (or new cohort) with the stable baseline against the thresholds. */
export function judge(
  canary: CohortMeasurement,
  stable: CohortMeasurement,
  thresholds: AnalysisThresholds,
): Verdict {
  if (canary.scraped === 0)
    return { healthy: false, inconclusive: true, reason: "no pod metrics could be read" };
  if (canary.errorRate > thresholds.maxErrorRate) {
    return {
      healthy: false,
      inconclusive: false,
      reason: `error rate ${(canary.errorRate * 100).toFixed(2)}% exceeds ${(thresholds.maxErrorRate * 100).toFixed(2)}% (${canary.errors} of ${canary.requests})`,
    };
  }
  if (canary.p95 !== undefined && stable.p95 !== undefined && stable.p95 > 0) {
    const increasePct = ((canary.p95 - stable.p95) / stable.p95) * 100;
    if (increasePct > thresholds.maxP95AckLatencyIncreasePct) {
      return {
        healthy: false,
        inconclusive: false,
        reason: `p95 latency ${(canary.p95 * 1000).toFixed(1)} ms is ${increasePct.toFixed(0)}% above stable ${(stable.p95 * 1000).toFixed(1)} ms (limit ${thresholds.maxP95AckLatencyIncreasePct}%)`,
      };
    }
  }
  if (canary.botOverheadPct !== undefined && canary.botOverheadPct > thresholds.maxBotOverheadPct) {
    return {
      healthy: false,
      inconclusive: false,
      reason: `bot overhead ${canary.botOverheadPct.toFixed(2)}% exceeds ${thresholds.maxBotOverheadPct}%`,
    };
  }
  return {
    healthy: true,
    inconclusive: false,
    reason: `error rate ${(canary.errorRate * 100).toFixed(2)}%, p95 ${canary.p95 === undefined ? "n/a" : `${(canary.p95 * 1000).toFixed(1)} ms`} (stable ${stable.p95 === undefined ? "n/a" : `${(stable.p95 * 1000).toFixed(1)} ms`})`,
  };
}

/** The URL of a pod's /metrics: its annotation, else http://podIP:metricsPort/metrics. */
export function metricsUrl(pod: KubeObject, component: Component): string | undefined {
  const annotated = pod.metadata.annotations?.[METRICS_URL_ANNOTATION];
  if (annotated !== undefined && annotated !== "") return annotated;
  const ip = (pod["status"] as { podIP?: string } | undefined)?.podIP;
  if (ip === undefined || ip === "") return undefined;
  const host = ip.includes(":") ? `[${ip}]` : ip;
  return `http://${host}:${PORTS[component].metrics}/metrics`;
}

/** Reads every pod's /metrics (bounded by `timeoutMs`); unreachable pods are skipped. */
export async function scrape(urls: string[], timeoutMs: number): Promise<string[]> {
  const results = await Promise.all(
    urls.map(async (url) => {
      try {
        const response = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
        return response.ok ? await response.text() : undefined;
      } catch {
        return undefined;
      }
    }),
  );
  return results.filter((text): text is string => text !== undefined);
}
