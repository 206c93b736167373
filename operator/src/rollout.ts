import type { Verdict } from "./analysis.js";
import type { KubeClient } from "./k8s/index.js";
import type { RevisionHistory } from "./revision-history.js";
import {
  PROMOTED_AT_ANNOTATION,
  PROMOTED_FROM_ANNOTATION,
  changedComponents,
  findRevision,
  isBad,
  revisionImages,
  type ControllerRevision,
  type RevisionImages,
} from "./revisions.js";
import type { Component, SessionStore, SessionStoreSpec, SessionStoreStatus } from "./spec.js";
import { iso, type EventNote } from "./status.js";

/** `kubectl annotate sst NAME sessiontrack.io/rollback-to=REVISION` restores that revision. */
export const ROLLBACK_ANNOTATION = "sessiontrack.io/rollback-to";
/** `sessiontrack.io/abort-rollout: "true"` stops the rollout in progress and keeps stable. */
export const ABORT_ANNOTATION = "sessiontrack.io/abort-rollout";
/** `sessiontrack.io/rollout-paused: "true"` freezes canary steps (a breach still rolls back). */
export const PAUSE_ANNOTATION = "sessiontrack.io/rollout-paused";

type CanaryStatus = NonNullable<SessionStoreStatus["canary"]>;

/** Where a SessionStore's revisions stand; each step of a reconcile moves it on. */
export interface RolloutState {
  /** The revision of the spec's images. */
  target: ControllerRevision;
  /** The revision every session not in the canary cohort runs. */
  stable: ControllerRevision;
  canary: CanaryStatus | undefined;
  lastRollback: SessionStoreStatus["lastRollback"];
  /** The last analysis breach while the canary still runs (for the Degraded condition). */
  analysisProblem?: string;
  events: EventNote[];
}

/** Acts on the SRE annotations (rollback-to, abort-rollout) and removes them once handled. */
export async function applySreRequests(
  state: RolloutState,
  store: SessionStore,
  revisions: readonly ControllerRevision[],
  deps: { client: KubeClient; history: RevisionHistory; now: Date },
): Promise<void> {
  const annotations = store.metadata.annotations ?? {};
  const name = store.metadata.name ?? "";
  const ref = {
    apiVersion: store.apiVersion,
    kind: "SessionStore",
    namespace: store.metadata.namespace ?? "",
    name,
  };
  const rollbackTo = annotations[ROLLBACK_ANNOTATION];
  if (rollbackTo !== undefined) {
    const wanted = findRevision(revisions, rollbackTo.trim());
    if (wanted === undefined || revisionImages(wanted) === undefined) {
      state.events.push({
        type: "Warning",
        reason: "RollbackTargetNotFound",
        message: `${ROLLBACK_ANNOTATION}=${rollbackTo}: no such revision of ${name}`,
      });
    } else {
      const from = state.canary?.revision ?? state.stable.metadata.name ?? "";
      // The spec's revision is refused from now on, or it would start a canary again at once.
      if (state.target.metadata.name !== wanted.metadata.name && !isBad(state.target)) {
        state.target = await deps.history.mark(
          state.target,
          "bad",
          "ManualRollback",
          `rolled back by request to ${wanted.metadata.name ?? ""}`,
        );
      }
      if (isBad(wanted)) await deps.history.mark(wanted, "good", "ManualRollback", "restored by request");
      state.stable = wanted;
      state.canary = undefined;
      state.lastRollback = {
        revision: from,
        restoredRevision: wanted.metadata.name ?? "",
        reason: `manual rollback requested with ${ROLLBACK_ANNOTATION}`,
        time: iso(deps.now),
      };
      state.events.push({
        type: "Normal",
        reason: "RolledBack",
        message: `restored revision ${wanted.metadata.name ?? ""} (${wanted.revision}) by request`,
      });
    }
    await deps.client.mergePatch(ref, { metadata: { annotations: { [ROLLBACK_ANNOTATION]: null } } });
  }
  if (annotations[ABORT_ANNOTATION] !== undefined) {
    const running = state.target.metadata.name !== state.stable.metadata.name && !isBad(state.target);
    if (annotations[ABORT_ANNOTATION] === "true" && running) {
      state.target = await deps.history.mark(
        state.target,
        "bad",
        "Aborted",
        `rollout aborted by request (${ABORT_ANNOTATION})`,
      );
      state.lastRollback = {
        revision: state.target.metadata.name ?? "",
        restoredRevision: state.stable.metadata.name ?? "",
        reason: "rollout aborted by request",
        time: iso(deps.now),
      };
      state.canary = undefined;
      state.events.push({
        type: "Normal",
        reason: "RolloutAborted",
        message: `rollout of ${state.target.metadata.name ?? ""} aborted; ${state.stable.metadata.name ?? ""} stays stable`,
      });
    }
    await deps.client.mergePatch(ref, { metadata: { annotations: { [ABORT_ANNOTATION]: null } } });
  }
}

/**
 * Moves the version canary on: starts it for a new target revision, and on each analysis
 * (when `analyse` is given) counts breaches — rolling back after failureLimit in a row —
 * or, when healthy past the step interval and not paused, goes to the next weight and
 * finally promotes. Returns the components the canary runs (empty when none).
 */
export async function advanceCanary(
  state: RolloutState,
  spec: SessionStoreSpec,
  targetImages: RevisionImages,
  deps: {
    history: RevisionHistory;
    now: Date;
    paused: boolean;
    /** Runs one analysis of these components; undefined when no analysis is due yet. */
    analyse: ((components: Component[]) => Promise<Verdict>) | undefined;
    onStarted: () => void;
    onRollback: () => void;
  },
): Promise<Component[]> {
  const { now } = deps;
  const steps = spec.rollout.canary.steps;
  if (state.target.metadata.name === state.stable.metadata.name || isBad(state.target)) {
    state.canary = undefined;
    return [];
  }
  const components = changedComponents(revisionImages(state.stable) ?? targetImages, targetImages);
  const first = components[0] ?? "ingest";
  if (state.canary === undefined || state.canary.revision !== state.target.metadata.name) {
    state.canary = {
      component: first,
      image: targetImages[first],
      weight: steps[0] ?? 100,
      step: 0,
      revision: state.target.metadata.name ?? "",
      stepStartedAt: iso(now),
      failures: 0,
    };
    state.events.push({
      type: "Normal",
      reason: "RolloutStarted",
      message: `canary ${state.canary.revision ?? ""} (${components.map((c) => `${c}=${targetImages[c]}`).join(", ")}) at ${state.canary.weight ?? 0}%`,
    });
    deps.onStarted();
    return components;
  }
  if (deps.analyse === undefined) return components;
  const canary = { ...state.canary };
  state.canary = canary;
  const verdict = await deps.analyse(components);
  if (verdict.inconclusive) return components;
  if (!verdict.healthy) {
    canary.failures = (canary.failures ?? 0) + 1;
    state.analysisProblem = verdict.reason;
    if (canary.failures < spec.rollout.failureLimit) return components;
    const reason = `analysis failed ${canary.failures} times in a row: ${verdict.reason}`;
    state.target = await deps.history.mark(state.target, "bad", "AnalysisFailed", reason);
    state.lastRollback = {
      revision: state.target.metadata.name ?? "",
      restoredRevision: state.stable.metadata.name ?? "",
      reason,
      time: iso(now),
    };
    state.events.push({
      type: "Warning",
      reason: "RolledBack",
      message: `canary ${state.target.metadata.name ?? ""} rolled back to ${state.stable.metadata.name ?? ""}: ${reason}`,
    });
    deps.onRollback();
    state.canary = undefined;
    delete state.analysisProblem;
    return [];
  }
  canary.failures = 0;
  const stepAge = now.getTime() - Date.parse(canary.stepStartedAt ?? iso(now));
  if (deps.paused || stepAge < spec.rollout.canary.interval) return components;
  const step = (canary.step ?? 0) + 1;
  if (step < steps.length) {
    state.canary = { ...canary, step, weight: steps[step] ?? 100, stepStartedAt: iso(now) };
    state.events.push({
      type: "Normal",
      reason: "CanaryStep",
      message: `canary ${canary.revision ?? ""} healthy (${verdict.reason}); now at ${state.canary.weight ?? 0}%`,
    });
    return components;
  }
  state.events.push({
    type: "Normal",
    reason: "Promoted",
    message: `revision ${state.target.metadata.name ?? ""} promoted to stable (${verdict.reason})`,
  });
  state.target = await deps.history.recordPromotion(state.target, state.stable, iso(now));
  state.stable = state.target;
  state.canary = undefined;
  return [];
}

/**
 * Within spec.rollout.rollbackWindow after a promotion, keeps analysing the promoted
 * revision's pods (error rate and bot overhead: the old revision no longer runs, so there
 * is no latency baseline) and rolls back to the revision it replaced after failureLimit
 * failed checks in a row. A manual rollback after the promotion ends the window.
 * Returns true while the window is open (the caller keeps polling).
 */
export async function watchPromotion(
  state: RolloutState,
  spec: SessionStoreSpec,
  revisions: readonly ControllerRevision[],
  deps: {
    history: RevisionHistory;
    now: Date;
    failures: { get(): number; set(count: number): void };
    analyse: ((components: Component[]) => Promise<Verdict>) | undefined;
    onRollback: () => void;
  },
): Promise<boolean> {
  const { stable } = state;
  if (state.canary !== undefined || state.target.metadata.name !== stable.metadata.name || isBad(stable))
    return false;
  const promotedAt = Date.parse(stable.metadata.annotations?.[PROMOTED_AT_ANNOTATION] ?? "");
  const previous = revisions.find(
    (revision) => revision.metadata.name === stable.metadata.annotations?.[PROMOTED_FROM_ANNOTATION],
  );
  if (Number.isNaN(promotedAt) || previous === undefined || isBad(previous)) return false;
  if (deps.now.getTime() - promotedAt > spec.rollout.rollbackWindow) return false;
  const manualSince = Date.parse(state.lastRollback?.time ?? "");
  if (!Number.isNaN(manualSince) && manualSince >= promotedAt) return false;
  const previousImages = revisionImages(previous);
  const stableImages = revisionImages(stable);
  if (deps.analyse === undefined || previousImages === undefined || stableImages === undefined) return true;
  const verdict = await deps.analyse(changedComponents(previousImages, stableImages));
  if (verdict.inconclusive) return true;
  if (verdict.healthy) {
    deps.failures.set(0);
    return true;
  }
  const failures = deps.failures.get() + 1;
  deps.failures.set(failures);
  state.analysisProblem = verdict.reason;
  if (failures < spec.rollout.failureLimit) return true;
  const reason = `analysis failed ${failures} times in a row within the rollback window after promotion: ${verdict.reason}`;
  state.target = await deps.history.mark(stable, "bad", "AnalysisFailed", reason);
  state.lastRollback = {
    revision: stable.metadata.name ?? "",
    restoredRevision: previous.metadata.name ?? "",
    reason,
    time: iso(deps.now),
  };
  state.events.push({
    type: "Warning",
    reason: "RolledBack",
    message: `revision ${stable.metadata.name ?? ""} rolled back to ${previous.metadata.name ?? ""}: ${reason}`,
  });
  state.stable = previous;
  delete state.analysisProblem;
  deps.failures.set(0);
  deps.onRollback();
  return false;
}
