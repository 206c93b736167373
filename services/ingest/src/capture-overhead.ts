// The bots' own measure of what capture costs them, as reported on Append/Stream batches.
import { Counter, Gauge, Histogram, type Registry } from "prom-client";

/** Name the operator's canary analysis reads (operator/src/analysis.ts BOT_OVERHEAD_METRIC). */
export const BOT_OVERHEAD_METRIC = "sessiontrack_bot_capture_overhead_pct";

/** A report is live this long after it arrived. */
const REPORT_TTL_MS = 60_000;
/** Above this a report is not a CPU share but a bug (percent of one process, several cores). */
const MAX_PLAUSIBLE_PCT = 1000;

/** Why a report was refused (the `reason` label). */
type RefusedReason = "not_a_number" | "negative" | "above_1000";

/**
 * The latest capture_overhead_pct of each reporter (a Stream, or an Append connection),
 * kept for 60 s. The gauge is the maximum over live reporters, so the operator's
 * max-overhead threshold catches the worst bot rather than an average that hides it.
 * A report of 0 means "no measurement" and changes nothing; an impossible one (NaN,
 * negative, > 1000) is counted and ignored, and never fails the batch carrying it.
 */
export class CaptureOverheadReports {
  private readonly latest = new Map<string, { pct: number; at: number }>();
  private lastExpiry = 0;
  private readonly refused: Counter<"reason">;
  private readonly reported: Histogram;

  constructor(
    registry: Registry,
    private readonly now: () => number = Date.now,
  ) {
    const registers = [registry];
    // Gauges read at scrape time, after expiring old reports.
    const live = (): number[] => {
      this.expire();
      return [...this.latest.values()].map((report) => report.pct);
    };
    new Gauge({
      name: BOT_OVERHEAD_METRIC,
      help: "Highest capture overhead (percent of the bot process's CPU spent on capture, over ~1 s) among the bots that reported in the last 60 s; 0 when none did (see sessiontrack_bot_capture_overhead_reporters).",
      registers,
      collect() {
        this.set(Math.max(0, ...live()));
      },
    });
    new Gauge({
      name: "sessiontrack_bot_capture_overhead_reporters",
      help: "Streams and Append connections whose capture overhead report is less than 60 s old.",
      registers,
      collect() {
        this.set(live().length);
      },
    });
    this.reported = new Histogram({
      name: "sessiontrack_bot_capture_overhead_reported_pct",
      help: "Every accepted capture overhead report, in percent of the bot process's CPU.",
      buckets: [0.1, 0.25, 0.5, 1, 2, 5, 10, 25, 50, 100],
      registers,
    });
    this.refused = new Counter({
      name: "sessiontrack_bot_capture_overhead_refused_total",
      help: "Capture overhead reports ignored as impossible (the batch itself is not affected), by reason.",
      labelNames: ["reason"] as const,
      registers,
    });
  }

  /** Records `pct` as `reporter`'s latest measurement (0: none taken). */
  report(reporter: string, pct: number): void {
    if (pct === 0) return;
    const reason: RefusedReason | undefined = Number.isNaN(pct)
      ? "not_a_number"
      : pct < 0
        ? "negative"
        : pct > MAX_PLAUSIBLE_PCT
          ? "above_1000"
          : undefined;
    if (reason !== undefined) {
      this.refused.inc({ reason });
      return;
    }
    const now = this.now();
    // Also expired here, so reporters that come and go stay bounded without scrapes.
    if (now - this.lastExpiry > REPORT_TTL_MS) this.expire();
    this.latest.set(reporter, { pct, at: now });
    this.reported.observe(pct);
  }

  private expire(): void {
    this.lastExpiry = this.now();
    const oldest = this.lastExpiry - REPORT_TTL_MS;
    for (const [reporter, report] of this.latest) if (report.at < oldest) this.latest.delete(reporter);
  }
}
