const SAMPLE_RING = 1024;
const WINDOW_NS = 1_000_000_000n;
/** One capture() call in this many is timed (see SessionTrackClient.captureWithState). */
export const CAPTURE_SAMPLE_EVERY = 64;
/** A report never claims more than this (an SDK costing as much as the bot itself). */
const MAX_OVERHEAD_PCT = 100;
/**
 * No report from a window in which the whole process used less CPU than this: an idle bot's
 * tiny denominator (and one sampled capture scaled up by 64) would read as a huge overhead
 * and could roll a healthy canary back.
 */
const MIN_WINDOW_CPU_NS = 50_000_000;
/** Nor from a window with fewer timed captures than this (the scale-up is too coarse). */
const MIN_WINDOW_SAMPLES = 4;

/**
 * Measures what the SDK costs the bot: the duration of a sample of `capture()` calls
 * (1 in 64, so the clock reads themselves stay off the hot path) and the share of wall
 * time spent in background work (encode, send, spool), over windows of about a second.
 * Each window also yields an overhead report for ingest: the SDK's time on the bot's
 * thread (sampled captures scaled up, plus background work) as a percentage of the rest
 * of the process's CPU. It is a lower bound: grpc-js and socket work outside the SDK's
 * own callbacks, and garbage collection, are not attributed to capture.
 */
export class CostMeter {
  private readonly captureSamplesNs = new Float64Array(SAMPLE_RING);
  private sampleCount = 0;
  private windowStart = process.hrtime.bigint();
  private windowBusyNs = 0n;
  private lastPct = 0;
  private sorted: Float64Array | undefined;
  private sortedAt = -1;
  private windowCaptureNs = 0;
  private windowSamples = 0;
  private windowCpu = process.cpuUsage();
  private pendingReport: number | undefined;

  /** Records one sampled capture() duration. */
  recordCapture(ns: bigint): void {
    this.captureSamplesNs[this.sampleCount++ % SAMPLE_RING] = Number(ns);
    this.windowCaptureNs += Number(ns) * CAPTURE_SAMPLE_EVERY;
    this.windowSamples++;
  }

  /**
   * Records capture work measured on another thread (a worker client's bot thread posting
   * its noted calls), so the overhead report counts it with the sampled capture calls.
   */
  recordForeignWork(ns: number): void {
    this.windowCaptureNs += ns;
  }

  /** Records background work that ran from `startNs` until now; true when a window just closed. */
  recordBackground(startNs: bigint): boolean {
    const now = process.hrtime.bigint();
    this.windowBusyNs += now - startNs;
    const elapsed = now - this.windowStart;
    if (elapsed >= WINDOW_NS) {
      this.lastPct = (Number(this.windowBusyNs) / Number(elapsed)) * 100;
      this.closeOverheadWindow(Number(this.windowBusyNs));
      this.windowBusyNs = 0n;
      this.windowStart = now;
      return true;
    }
    return false;
  }

  /**
   * The overhead of the last complete window, once: the next batch carries it to ingest
   * as `capture_overhead_pct`; undefined until another window closes.
   */
  takeOverheadReport(): number | undefined {
    const report = this.pendingReport;
    this.pendingReport = undefined;
    return report;
  }

  private closeOverheadWindow(backgroundNs: number): void {
    const usage = process.cpuUsage();
    const processUs = usage.user + usage.system - (this.windowCpu.user + this.windowCpu.system);
    this.windowCpu = usage;
    const sdkNs = backgroundNs + this.windowCaptureNs;
    const samples = this.windowSamples;
    this.windowCaptureNs = 0;
    this.windowSamples = 0;
    const processNs = processUs * 1000;
    if (processNs < MIN_WINDOW_CPU_NS || samples < MIN_WINDOW_SAMPLES || sdkNs <= 0) return;
    const botNs = processNs - sdkNs;
    const pct = botNs > 0 ? (sdkNs / botNs) * 100 : MAX_OVERHEAD_PCT;
    this.pendingReport = Math.min(MAX_OVERHEAD_PCT, pct);
  }

  /** Background work as a percentage of wall time in the last complete window. */
  get cpuPct(): number {
    return this.lastPct;
  }

  /** The given percentile (0..100) of sampled capture() durations, in microseconds. */
  captureUs(percentile: number): number {
    const n = Math.min(this.sampleCount, SAMPLE_RING);
    if (n === 0) return 0;
    // stats() asks for two percentiles and may be polled often: sort once per new samples (numeric typed-array sort).
    if (this.sorted === undefined || this.sortedAt !== this.sampleCount) {
      this.sorted = this.captureSamplesNs.slice(0, n).sort();
      this.sortedAt = this.sampleCount;
    }
    const sorted = this.sorted;
    const index = Math.min(n - 1, Math.floor((percentile / 100) * n));
    return sorted[index]! / 1000;
  }
}
