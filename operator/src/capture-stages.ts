import { judge } from "./analysis.js";
import { stageIndex } from "./capture.js";
import type { PodMetrics } from "./pod-metrics.js";
import type { AnalysisThresholds, SessionStoreSpec } from "./spec.js";
import { iso, type EventNote } from "./status.js";

/** The capture stage in force and since when. */
export interface StageDecision {
  /** Index into spec.capture.stages; -1 without stages. */
  index: number;
  stage: string;
  since: string;
  requeueAfterMs?: number;
}

const DEFAULT_THRESHOLDS: AnalysisThresholds = {
  maxErrorRate: 0.01,
  maxP95AckLatencyIncreasePct: 20,
  maxBotOverheadPct: 5,
};

/**
 * Decides which capture stage is in force. Manual: spec.capture.currentStage. Automatic: the
 * stage in status advances after passing its analysis for its bake time and steps back
 * after failureLimit failed checks. The p95 baseline of a stage is measured when it starts
 * (kept in memory; a restarted operator measures it again).
 */
export class CaptureStagePlanner {
  private readonly baselines = new Map<
    string,
    { stage: string; p95: number | undefined; failures: number }
  >();
  private readonly lastCheck = new Map<string, number>();

  constructor(
    private readonly podMetrics: PodMetrics,
    private readonly analysisIntervalMs: number,
  ) {}

  forget(key: string): void {
    this.baselines.delete(key);
    this.lastCheck.delete(key);
  }

  async decide(input: {
    key: string;
    namespace: string;
    name: string;
    spec: SessionStoreSpec;
    /** The stage in status (what the operator last served). */
    servedStage: string | undefined;
    /** The stage and start time recorded on the published ConfigMap. */
    published: { stage: string | undefined; since: string | undefined };
    now: Date;
    events: EventNote[];
  }): Promise<StageDecision> {
    const { key, spec, now, events, published } = input;
    const stages = spec.capture.stages;
    const sinceFor = (stage: string) =>
      published.stage === stage && published.since !== undefined ? published.since : iso(now);
    if (stages.length === 0) return { index: -1, stage: "", since: sinceFor("") };
    if (spec.capture.advancement === "Manual") {
      const index = stageIndex(spec, spec.capture.currentStage);
      const stage = stages[index]?.name ?? "";
      return { index, stage, since: sinceFor(stage) };
    }
    let index = stageIndex(spec, input.servedStage ?? spec.capture.currentStage);
    const stage = stages[index]?.name ?? "";
    const since = sinceFor(stage);
    if (!spec.capture.enabled) return { index, stage, since };
    const requeueAfterMs = this.analysisIntervalMs;
    if (now.getTime() - (this.lastCheck.get(key) ?? 0) < this.analysisIntervalMs) {
      return { index, stage, since, requeueAfterMs };
    }
    this.lastCheck.set(key, now.getTime());
    const current = stages[index];
    // Unset: spec.rollout.analysis applies; set: thresholds left out take the built-in defaults.
    const thresholds: AnalysisThresholds =
      current?.analysis === undefined
        ? spec.rollout.analysis
        : { ...DEFAULT_THRESHOLDS, ...definedOnly(current.analysis) };
    const measurement = await this.podMetrics.measure(input.namespace, input.name, "ingest", "stable");
    let baseline = this.baselines.get(key);
    if (baseline === undefined || baseline.stage !== stage) {
      baseline = { stage, p95: measurement.p95, failures: 0 };
      this.baselines.set(key, baseline);
    }
    const verdict = judge(measurement, { ...measurement, p95: baseline.p95 }, thresholds);
    if (!verdict.healthy && !verdict.inconclusive) {
      baseline.failures += 1;
      if (baseline.failures >= spec.rollout.failureLimit && index > 0) {
        events.push({
          type: "Warning",
          reason: "CaptureStageRolledBack",
          message: `capture stage ${stage} failed analysis (${verdict.reason}); back to ${stages[index - 1]?.name ?? ""}`,
        });
        index -= 1;
      }
    } else if (verdict.healthy) {
      baseline.failures = 0;
      if (index < stages.length - 1 && now.getTime() - Date.parse(since) >= (current?.bakeTime ?? Infinity)) {
        events.push({
          type: "Normal",
          reason: "CaptureStageAdvanced",
          message: `capture stage ${stage} passed analysis for its bake time (${verdict.reason}); now ${stages[index + 1]?.name ?? ""}`,
        });
        index += 1;
      }
    }
    const next = stages[index]?.name ?? "";
    return next === stage
      ? { index, stage, since, requeueAfterMs }
      : { index, stage: next, since: iso(now), requeueAfterMs };
  }
}

function definedOnly(value: Record<string, number | undefined>): Record<string, number> {
  return Object.fromEntries(
    Object.entries(value).filter((entry): entry is [string, number] => entry[1] !== undefined),
  );
}
