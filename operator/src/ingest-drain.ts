// Scale-down of ingest without stranding WAL: the replicas that go are drained first.
import type { Logger } from "@sessiontrack/runtime";

import { metricsUrl, parsePrometheusText, scrape } from "./analysis.js";
import type { Informer, KubeClient, KubeObject } from "./k8s/index.js";
import { objectNames } from "./render.js";
import type { IngestDrainStatus } from "./spec.js";
import { iso, type EventNote } from "./status.js";

/** The pod annotation ingest watches (downward API): "true" closes its intake until its WAL is shipped. */
export const DRAIN_ANNOTATION = "sessiontrack.io/drain";

/** What one draining pod's /metrics say. */
interface PodDrainState {
  pod: string;
  drained: boolean;
  /** What it still holds ("archive 12 records (4 KiB), 1 open stream"), or "drained". */
  summary: string;
}

/** The replica count to apply for an ingest StatefulSet (stable or canary), and what to report. */
export interface ScaleDownPlan {
  replicas: number;
  /** Persisted in status (ingestDrain, canaryIngestDrain) while a scale-down waits. */
  drain: IngestDrainStatus | undefined;
  /** Progressing=True (DrainingIngest) message while waiting. */
  progressing: string | undefined;
  /** Degraded=True (DrainTimeout) message once the wait exceeds the drain timeout. */
  timedOut: string | undefined;
  /** True when this plan lowers the replicas. */
  scalesDown: boolean;
}

/** Inputs of {@link IngestScaleDown.plan}. */
export interface ScaleDownInput {
  namespace: string;
  name: string;
  /** The stable StatefulSet (NAME-ingest) or the canary's (NAME-ingest-canary). */
  track: "stable" | "canary";
  /** The replicas wanted: spec.ingest.replicas (stable); the canary's share, 0 once it ended (canary). */
  desired: number;
  previous: IngestDrainStatus | undefined;
  timeoutMs: number;
  now: Date;
  events: EventNote[];
}

const ordinalOf = (podName: string, setName: string): number | undefined => {
  if (!podName.startsWith(`${setName}-`)) return undefined;
  const suffix = podName.slice(setName.length + 1);
  return /^\d+$/.test(suffix) ? Number(suffix) : undefined;
};

/**
 * Holds a scale-down of the stable ingest StatefulSet until the replicas it removes (the
 * highest ordinals) have shipped their WAL: they are annotated {@link DRAIN_ANNOTATION},
 * which makes ingest refuse new streams and batches and fail readiness, and the replicas
 * are lowered only past pods whose /metrics show draining, no open stream and zero lag
 * and backlog for every sink. A timeout is reported, never acted on: acknowledged data is
 * never dropped. A scale-up (or a smaller scale-down) removes the annotation again.
 */
export class IngestScaleDown {
  constructor(
    private readonly client: KubeClient,
    private readonly pods: Informer,
    private readonly statefulSets: Informer,
    private readonly scrapeTimeoutMs: number,
    private readonly logger: Logger,
  ) {}

  async plan(input: ScaleDownInput): Promise<ScaleDownPlan> {
    const { namespace, name, track, desired, previous, now, events } = input;
    const names = objectNames(name);
    const setName = track === "stable" ? names.ingest : names.canary("ingest");
    const what = track === "stable" ? "ingest" : "the ingest canary";
    const why =
      track === "stable" ? `spec.ingest.replicas is ${desired}` : `the canary runs ${desired} replicas again`;
    const live = this.statefulSets.get(namespace, setName);
    const current = (live?.["spec"] as { replicas?: number } | undefined)?.replicas;
    const steady: ScaleDownPlan = {
      replicas: desired,
      drain: undefined,
      progressing: undefined,
      timedOut: undefined,
      scalesDown: false,
    };
    // Pods that keep running must not stay draining (a scale-up, or a smaller scale-down).
    const released = await this.setDraining(namespace, setName, (ordinal) => ordinal < desired, false);
    if (current === undefined || desired >= current) {
      // Reached its target (a status write after the last step may have failed): done, not cancelled.
      const abandoned = current === undefined || desired > (previous?.replicas ?? desired);
      if (previous !== undefined && abandoned) {
        events.push({
          type: "Normal",
          reason: "DrainCancelled",
          message: `scale-down of ${what} to ${previous.replicas ?? desired} cancelled: ${why}${released.length === 0 ? "" : `; ${released.join(", ")} take sessions again`}`,
        });
      }
      return steady;
    }

    const leaving = Array.from({ length: current - desired }, (_, i) => `${setName}-${desired + i}`);
    await this.setDraining(namespace, setName, (ordinal) => ordinal >= desired && ordinal < current, true);
    if (previous === undefined) {
      events.push({
        type: "Normal",
        reason: "DrainStarted",
        message: `draining ${leaving.join(", ")} before scaling ${what} from ${current} to ${desired}: their intake is closed until every acknowledged WAL record is shipped`,
      });
    }
    const states = await Promise.all(leaving.map((pod) => this.inspect(namespace, pod)));
    // The StatefulSet removes the highest ordinals first: lower past every drained one.
    let replicas = current;
    while (replicas > desired && states[replicas - desired - 1]?.drained === true) replicas -= 1;
    const pending = states.filter((state) => !state.drained);
    if (replicas < current) {
      const gone = states.slice(replicas - desired).map((state) => `${state.pod} (${state.summary})`);
      events.push({
        type: "Normal",
        reason: "IngestScaledDown",
        message: `${what} scaled from ${current} to ${replicas}; leaving with nothing unshipped: ${gone.join(", ")}`,
      });
    }
    if (pending.length === 0) return { ...steady, scalesDown: true };

    const startedAt = previous?.startedAt ?? iso(now);
    const waitedMs = now.getTime() - Date.parse(startedAt);
    const holding = pending.map((state) => `${state.pod}: ${state.summary}`).join("; ");
    return {
      replicas,
      drain: { replicas: desired, pods: pending.map((state) => state.pod), startedAt },
      progressing: `holding ${what} at ${replicas} replicas (${track === "stable" ? "spec" : "target"}: ${desired}) until the leaving replicas have shipped their WAL: ${holding}`,
      timedOut:
        waitedMs > input.timeoutMs
          ? `scale-down of ${what} to ${desired} has waited since ${startedAt}, longer than spec.ingest.drainTimeoutSeconds (${Math.round(input.timeoutMs / 1000)} s); it keeps waiting, nothing acknowledged is dropped: ${holding}`
          : undefined,
      scalesDown: replicas < current,
    };
  }

  /** Sets (or removes) the drain annotation on the pods of `setName` whose ordinal `selects`; returns the pods changed. */
  private async setDraining(
    namespace: string,
    setName: string,
    selects: (ordinal: number) => boolean,
    draining: boolean,
  ): Promise<string[]> {
    const changed: string[] = [];
    for (const pod of this.pods.list()) {
      const podName = pod.metadata.name ?? "";
      const ordinal = ordinalOf(podName, setName);
      if (pod.metadata.namespace !== namespace || ordinal === undefined || !selects(ordinal)) continue;
      if ((pod.metadata.annotations?.[DRAIN_ANNOTATION] === "true") === draining) continue;
      await this.client.mergePatch(
        { apiVersion: "v1", kind: "Pod", namespace, name: podName },
        { metadata: { annotations: { [DRAIN_ANNOTATION]: draining ? "true" : null } } },
      );
      this.logger.info({ pod: podName, draining }, draining ? "drain requested" : "drain withdrawn");
      changed.push(podName);
    }
    return changed;
  }

  /** Reads a leaving pod's /metrics: drained once it refuses intake, has no open stream or unacked batch, and no lag. */
  private async inspect(namespace: string, podName: string): Promise<PodDrainState> {
    const pod: KubeObject | undefined = this.pods.get(namespace, podName);
    const waiting = (summary: string): PodDrainState => ({ pod: podName, drained: false, summary });
    if (pod === undefined) {
      // A replica that never ran (an unfinished scale-up) has no WAL volume: nothing to lose.
      const claim = `wal-${podName}`;
      const volume = await this.client.get({
        apiVersion: "v1",
        kind: "PersistentVolumeClaim",
        namespace,
        name: claim,
      });
      if (volume === undefined) return { pod: podName, drained: true, summary: "never ran (no WAL volume)" };
      return waiting(`no pod to read its metrics, and its WAL volume ${claim} may hold unshipped records`);
    }
    const url = metricsUrl(pod, "ingest");
    if (url === undefined) return waiting("no pod IP yet; metrics unreadable");
    const [text] = await scrape([url], this.scrapeTimeoutMs);
    if (text === undefined) return waiting(`metrics unreadable at ${url}`);
    const samples = parsePrometheusText(text);
    const value = (metric: string) => samples.find((sample) => sample.name === metric)?.value;
    const problems: string[] = [];
    if (value("sessiontrack_ingest_draining") !== 1) problems.push("has not closed its intake yet");
    const streams = value("sessiontrack_ingest_open_streams") ?? 0;
    if (streams > 0) problems.push(`${streams} open stream${streams === 1 ? "" : "s"}`);
    // Batches accepted before the drain and still waiting on fsync (an ingest without the gauge: none).
    const batches = value("sessiontrack_ingest_batches_in_flight") ?? 0;
    if (batches > 0) problems.push(`${batches} batch${batches === 1 ? "" : "es"} not acked yet`);
    const lag = samples.filter((sample) => sample.name === "sessiontrack_shipper_lag_records");
    if (lag.length === 0) problems.push("exports no shipper lag");
    for (const sample of lag) {
      const sink = sample.labels["sink"] ?? "?";
      const bytes =
        samples.find(
          (other) => other.name === "sessiontrack_shipper_backlog_bytes" && other.labels["sink"] === sink,
        )?.value ?? 0;
      if (sample.value > 0 || bytes > 0)
        problems.push(`${sink} ${sample.value} records (${bytes} bytes) unshipped`);
    }
    return problems.length === 0
      ? { pod: podName, drained: true, summary: "drained: WAL shipped to every sink, no open stream" }
      : waiting(problems.join(", "));
  }
}
