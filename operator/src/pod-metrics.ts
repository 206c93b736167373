import { judge, measure, metricsUrl, scrape, type CohortMeasurement, type Verdict } from "./analysis.js";
import type { Informer } from "./k8s/index.js";
import type { AnalysisThresholds, Component } from "./spec.js";

/** Reads the /metrics of a SessionStore's pods straight from the pods (no Prometheus needed). */
export class PodMetrics {
  constructor(
    private readonly pods: Informer,
    private readonly timeoutMs: number,
  ) {}

  /** Sums the metrics of one component's stable or canary pods. */
  async measure(
    namespace: string,
    name: string,
    component: Component,
    track: "stable" | "canary",
  ): Promise<CohortMeasurement> {
    const pods = this.pods.list().filter((pod) => {
      const labels = pod.metadata.labels ?? {};
      return (
        pod.metadata.namespace === namespace &&
        pod.metadata.deletionTimestamp === undefined &&
        labels["app.kubernetes.io/instance"] === name &&
        labels["app.kubernetes.io/component"] === component &&
        labels["sessiontrack.io/track"] === track
      );
    });
    const urls = pods
      .map((pod) => metricsUrl(pod, component))
      .filter((url): url is string => url !== undefined);
    return measure(component, await scrape(urls, this.timeoutMs), pods.length);
  }

  /** Checks the stable pods of `components` on their own (error rate, bot overhead): no baseline exists. */
  async analyseStable(
    namespace: string,
    name: string,
    components: Component[],
    thresholds: AnalysisThresholds,
  ): Promise<Verdict> {
    const verdicts = await Promise.all(
      components.map(async (component) => {
        const stable = await this.measure(namespace, name, component, "stable");
        const verdict = judge(stable, stable, thresholds);
        return { ...verdict, reason: `${component}: ${verdict.reason}` };
      }),
    );
    return (
      verdicts.find((verdict) => !verdict.healthy && !verdict.inconclusive) ??
      verdicts.find((verdict) => verdict.inconclusive) ?? {
        healthy: true,
        inconclusive: false,
        reason: verdicts.map((verdict) => verdict.reason).join("; "),
      }
    );
  }

  /** Compares canary and stable pods of every changed component; the first breach decides. */
  async analyseCanary(
    namespace: string,
    name: string,
    components: Component[],
    thresholds: AnalysisThresholds,
  ): Promise<Verdict> {
    const verdicts = await Promise.all(
      components.map(async (component) => {
        const [canary, stable] = await Promise.all([
          this.measure(namespace, name, component, "canary"),
          this.measure(namespace, name, component, "stable"),
        ]);
        const verdict = judge(canary, stable, thresholds);
        return { ...verdict, reason: `${component}: ${verdict.reason}` };
      }),
    );
    const breach = verdicts.find((verdict) => !verdict.healthy && !verdict.inconclusive);
    if (breach !== undefined) return breach;
    const unsure = verdicts.find((verdict) => verdict.inconclusive);
    if (unsure !== undefined) return unsure;
    return {
      healthy: true,
      inconclusive: false,
      reason: verdicts.map((verdict) => verdict.reason).join("; "),
    };
  }
}
