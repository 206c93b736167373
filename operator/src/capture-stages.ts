import { judge } from "./analysis.js";
import { stageIndex } from "./capture.js";
import type { PodMetrics } from "./pod-metrics.js";
import type { AnalysisThresholds, SessionStoreSpec, SessionStoreStatus } from "./spec.js";
import { iso, type EventNote } from "./status.js";

/** What an automatic stage's analysis carries from one check to the next (status.captureRollout). */
export type CaptureRolloutState = NonNullable<SessionStoreStatus["captureRollout"]>;

/** The capture stage in force and since when. */
export interface StageDecision {
  /** Index into spec.capture.stages; -1 without stages. */
  index: number;
  stage: string;
  since: string;
  /** The analysis state to persist in status; undefined when no automatic analysis runs. */
  rollout?: CaptureRolloutState;
  requeueAfterMs?: number;
}

const DEFAULT_THRESHOLDS: AnalysisThresholds = {
  maxErrorRate: 0.01,
  maxP95AckLatencyIncreasePct: 20,
  maxBotOverheadPct: 5,
};

/** Seconds (as measured) to whole microseconds in milliseconds (as stored: no float noise in status). */
const toMs = (seconds: number): number => Math.round(seconds * 1e6) / 1e3;

/**
 * Decides which capture stage is in force. Manual: spec.capture.currentStage. Automatic: the
 * stage in status advances after passing its analysis for its bake time and steps back
 * after failureLimit failed checks in a row. A stage's p95 baseline is the healthy
 * measurement taken just before it started (for the stage the rollout began in, or without
 * latency data then, the first measurement with some); the baseline and the failure count
 * live in status.captureRollout, so a restarted operator or a new leader goes on with them.
 */
export class CaptureStagePlanner {
  private readonly lastCheck = new Map<string, number>();

  constructor(
    private readonly podMetrics: PodMetrics,
    private readonly analysisIntervalMs: number,
  ) {}

  forget(key: string): void {
    this.lastCheck.delete(key);
  }

  async decide(input: {
    key: string;
    namespace: string;
    name: string;
    spec: SessionStoreSpec;
    /** The stage in status (what the operator last served). */
    servedStage: string | undefined;
    /** status.captureRollout as last written. */
    persisted: CaptureRolloutState | undefined;
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
    // Stored numbers count only for the stage they were measured for.
    const kept = input.persisted?.stage === stage ? input.persisted : undefined;
    const unchanged = { index, stage, since, ...(kept === undefined ? {} : { rollout: kept }) };
    if (!spec.capture.enabled) return unchanged;
    const requeueAfterMs = this.analysisIntervalMs;
    if (now.getTime() - (this.lastCheck.get(key) ?? 0) < this.analysisIntervalMs) {
      return { ...unchanged, requeueAfterMs };
    }
    this.lastCheck.set(key, now.getTime());
    const current = stages[index];
    // Unset: spec.rollout.analysis applies; set: thresholds left out take the built-in defaults.
    const thresholds: AnalysisThresholds =
      current?.analysis === undefined
        ? spec.rollout.analysis
        : { ...DEFAULT_THRESHOLDS, ...definedOnly(current.analysis) };
    const measurement = await this.podMetrics.measure(input.namespace, input.name, "ingest", "stable");
    let rollout: CaptureRolloutState = kept ?? { stage, failures: 0 };
    if (rollout.baselineP95Ms === undefined && measurement.p95 !== undefined) {
      // No baseline yet (the stage the rollout began in, or no latency data before): the first one.
      rollout = { ...rollout, baselineP95Ms: toMs(measurement.p95), baselineMeasuredAt: iso(now) };
    }
    const baselineP95 = rollout.baselineP95Ms === undefined ? undefined : rollout.baselineP95Ms / 1000;
    const verdict = judge(measurement, { ...measurement, p95: baselineP95 }, thresholds);
    if (!verdict.healthy && !verdict.inconclusive) {
      // Counted up to the limit: a first stage that keeps failing has nowhere to step back to.
      const failures = Math.min((rollout.failures ?? 0) + 1, spec.rollout.failureLimit);
      rollout = { ...rollout, failures };
      if (failures >= spec.rollout.failureLimit && index > 0) {
        events.push({
          type: "Warning",
          reason: "CaptureStageRolledBack",
          message: `capture stage ${stage} failed analysis ${failures} times in a row (${verdict.reason}); back to ${stages[index - 1]?.name ?? ""}`,
        });
        index -= 1;
        // The failed stage's baseline was measured before it started: it fits the stage below.
        rollout = { ...rollout, stage: stages[index]?.name ?? "", failures: 0 };
      }
    } else if (verdict.healthy) {
      rollout = { ...rollout, failures: 0 };
      if (index < stages.length - 1 && now.getTime() - Date.parse(since) >= (current?.bakeTime ?? Infinity)) {
        events.push({
          type: "Normal",
          reason: "CaptureStageAdvanced",
          message: `capture stage ${stage} passed analysis for its bake time (${verdict.reason}); now ${stages[index + 1]?.name ?? ""}`,
        });
        index += 1;
        // The next stage is judged against this healthy measurement, taken before it widens capture.
        rollout = {
          stage: stages[index]?.name ?? "",
          failures: 0,
          ...(measurement.p95 === undefined
            ? {}
            : { baselineP95Ms: toMs(measurement.p95), baselineMeasuredAt: iso(now) }),
        };
      }
    }
    const next = stages[index]?.name ?? "";
    return next === stage
      ? { index, stage, since, rollout, requeueAfterMs }
      : { index, stage: next, since: iso(now), rollout, requeueAfterMs };
  }
}

function definedOnly(value: Record<string, number | undefined>): Record<string, number> {
  return Object.fromEntries(
    Object.entries(value).filter((entry): entry is [string, number] => entry[1] !== undefined),
  );
}
