import { createHash } from "node:crypto";
import { randomBytes } from "node:crypto";

import type { Logger } from "@sessiontrack/runtime";

import { judge, measure, metricsUrl, scrape, type Verdict } from "./analysis.js";
import { buildCaptureDocument, renderCaptureText, stageIndex, type CanaryRoute } from "./capture.js";
import {
  Informer,
  isStatus,
  type InformerEventType,
  type KubeClient,
  type KubeObject,
  type OwnerReference,
} from "./k8s/index.js";
import type { OperatorMetrics } from "./metrics.js";
import { WorkQueue, type WorkResult } from "./queue.js";
import {
  APPLIED_HASH_ANNOTATION,
  MANAGED_BY,
  PORTS,
  objectNames,
  renderCaptureConfigMap,
  renderIngest,
  renderManagedStore,
  renderSecret,
  renderService,
  renderServiceDeployment,
  withAppliedHash,
  type RenderContext,
} from "./render.js";
import {
  REVISION_CODE_ANNOTATION,
  REVISION_REASON_ANNOTATION,
  REVISION_VERDICT_ANNOTATION,
  changedComponents,
  findRevision,
  imagesOf,
  isBad,
  renderRevision,
  revisionImages,
  revisionName,
  type ControllerRevision,
  type RevisionImages,
} from "./revisions.js";
import {
  COMPONENTS,
  parseSessionStoreSpec,
  type AnalysisThresholds,
  type Component,
  type ComponentStatus,
  type SessionStore,
  type SessionStoreSpec,
  type SessionStoreStatus,
} from "./spec.js";
import { settleConditions, type DesiredCondition } from "./status.js";

/** `kubectl annotate sst NAME sessiontrack.io/rollback-to=REVISION` restores that revision. */
export const ROLLBACK_ANNOTATION = "sessiontrack.io/rollback-to";
/** `sessiontrack.io/abort-rollout: "true"` stops the rollout in progress and keeps stable. */
export const ABORT_ANNOTATION = "sessiontrack.io/abort-rollout";
/** `sessiontrack.io/rollout-paused: "true"` freezes canary steps (a breach still rolls back). */
export const PAUSE_ANNOTATION = "sessiontrack.io/rollout-paused";
const STAGE_ANNOTATION = "sessiontrack.io/capture-stage";
const STAGE_SINCE_ANNOTATION = "sessiontrack.io/capture-stage-since";

/** Options for {@link SessionStoreController}. */
export interface ControllerOptions {
  client: KubeClient;
  logger: Logger;
  metrics: OperatorMetrics;
  /** Watch one namespace, or all when undefined. */
  namespace?: string;
  watchSilenceMs: number;
  resyncMs: number;
  analysisIntervalMs: number;
  workers: number;
  scrapeTimeoutMs?: number;
}

interface EventNote {
  type: "Normal" | "Warning";
  reason: string;
  message: string;
}

const SELECTOR = `app.kubernetes.io/managed-by=${MANAGED_BY}`;
const iso = (date: Date): string => date.toISOString().replace(/\.\d{3}Z$/, "Z");
const objectKey = (kind: string, namespace: string | undefined, name: string | undefined) =>
  `${kind}/${namespace ?? ""}/${name ?? ""}`;

/**
 * Reconciles SessionStores: owned objects by server-side apply (and only when their
 * rendered manifest changed), capture stages, version canaries with analysis and
 * automatic rollback, status conditions and Events. Writes happen only while
 * {@link setLeading}(true).
 */
export class SessionStoreController {
  private readonly informers: Record<string, Informer> = {};
  private readonly queue: WorkQueue;
  private readonly lastApplied = new Map<string, string>();
  private readonly lastAnalysis = new Map<string, number>();
  private readonly stageBaselines = new Map<
    string,
    { stage: string; p95: number | undefined; failures: number }
  >();
  private readonly logger: Logger;

  constructor(private readonly options: ControllerOptions) {
    this.logger = options.logger;
    this.queue = new WorkQueue(
      (key) => this.reconcile(key),
      {
        concurrency: options.workers,
        baseBackoffMs: 200,
        maxBackoffMs: 30_000,
        onDepth: (depth) => options.metrics.queueDepth.set(depth),
      },
      options.logger.child({ component: "queue" }),
    );
    const watch = (
      apiVersion: string,
      kind: string,
      labelSelector: string | undefined,
      handler: (type: InformerEventType, object: KubeObject) => void,
    ) => {
      this.informers[kind] = new Informer(
        options.client,
        {
          apiVersion,
          kind,
          ...(options.namespace === undefined ? {} : { namespace: options.namespace }),
          ...(labelSelector === undefined ? {} : { labelSelector }),
          silenceMs: options.watchSilenceMs,
          resyncMs: options.resyncMs,
        },
        handler,
        options.logger.child({ component: "informer", kind }),
      );
    };
    watch("sessiontrack.io/v1alpha1", "SessionStore", undefined, (type, object) => {
      if (type === "deleted") this.forget(object);
      else this.queue.add(`${object.metadata.namespace ?? ""}/${object.metadata.name ?? ""}`);
    });
    const owned = (type: InformerEventType, object: KubeObject) => this.onOwnedEvent(type, object);
    watch("apps/v1", "StatefulSet", SELECTOR, owned);
    watch("apps/v1", "Deployment", SELECTOR, owned);
    watch("v1", "Service", SELECTOR, owned);
    watch("v1", "ConfigMap", SELECTOR, owned);
    watch("v1", "Secret", SELECTOR, owned);
    watch("apps/v1", "ControllerRevision", SELECTOR, () => undefined);
    watch("v1", "Pod", SELECTOR, () => undefined);
  }

  /** Fills every cache; reconciling starts with {@link setLeading}(true). */
  async start(): Promise<void> {
    await Promise.all(Object.values(this.informers).map((informer) => informer.start()));
  }

  /** Starts or stops reconciling (leader election decides). */
  setLeading(leading: boolean): void {
    if (leading) {
      this.lastApplied.clear();
      for (const store of this.informer("SessionStore").list())
        this.queue.add(`${store.metadata.namespace ?? ""}/${store.metadata.name ?? ""}`);
      this.queue.start();
    } else {
      this.queue.pause();
    }
  }

  /** Stops informers and waits for in-flight reconciles. */
  async stop(): Promise<void> {
    for (const informer of Object.values(this.informers)) informer.stop();
    await this.queue.close();
  }

  /** Queues a SessionStore by "namespace/name". */
  enqueue(key: string): void {
    this.queue.add(key);
  }

  /** Resolves when no reconcile is pending or running. */
  idle(): Promise<void> {
    return this.queue.idle();
  }

  /** Relist counts of every informer, by kind (watch-health diagnostics and tests). */
  relists(): Record<string, Informer["relists"]> {
    return Object.fromEntries(
      Object.entries(this.informers).map(([kind, informer]) => [kind, { ...informer.relists }]),
    );
  }

  private informer(kind: string): Informer {
    const informer = this.informers[kind];
    if (informer === undefined) throw new Error(`no informer for ${kind}`);
    return informer;
  }

  private forget(store: KubeObject): void {
    const key = `${store.metadata.namespace ?? ""}/${store.metadata.name ?? ""}`;
    this.lastAnalysis.delete(key);
    this.stageBaselines.delete(key);
  }

  private onOwnedEvent(type: InformerEventType, object: KubeObject): void {
    const id = objectKey(object.kind, object.metadata.namespace, object.metadata.name);
    // A delete, or a periodic relist, makes the next reconcile compare against the live object.
    if (type === "deleted" || type === "resync") this.lastApplied.delete(id);
    const owner = object.metadata.ownerReferences?.find(
      (ref) => ref.controller === true && ref.kind === "SessionStore",
    );
    if (owner !== undefined && type !== "resync")
      this.queue.add(`${object.metadata.namespace ?? ""}/${owner.name}`);
  }

  private async reconcile(key: string): Promise<WorkResult | void> {
    const slash = key.indexOf("/");
    const namespace = key.slice(0, slash);
    const name = key.slice(slash + 1);
    const store = this.informer("SessionStore").get(namespace, name) as SessionStore | undefined;
    if (store === undefined || store.metadata.deletionTimestamp !== undefined) return;
    const stopTimer = this.options.metrics.reconcileDuration.startTimer();
    try {
      const result = await this.reconcileStore(store);
      stopTimer({ result: "ok" });
      return result;
    } catch (error) {
      stopTimer({ result: "error" });
      this.options.metrics.reconcileErrors.inc();
      this.logger.error({ err: error, store: key }, "reconcile failed");
      throw error;
    }
  }

  private async reconcileStore(store: SessionStore): Promise<WorkResult | void> {
    const now = new Date();
    const namespace = store.metadata.namespace ?? "default";
    const name = store.metadata.name ?? "";
    const key = `${namespace}/${name}`;
    const generation = store.metadata.generation ?? 0;
    const previous: SessionStoreStatus = store.status ?? {};
    const parsed = parseSessionStoreSpec(store.spec);
    if ("error" in parsed) {
      await this.writeStatus(
        store,
        { ...previous, phase: "Degraded", observedGeneration: generation },
        [
          { type: "Ready", status: "False", reason: "InvalidSpec", message: parsed.error },
          { type: "Progressing", status: "False", reason: "InvalidSpec", message: parsed.error },
          { type: "Degraded", status: "True", reason: "InvalidSpec", message: parsed.error },
          { type: "RolledBack", status: "False", reason: "NoRollback", message: "" },
        ],
        [],
        now,
      );
      return;
    }
    const spec = parsed.spec;
    const owner: OwnerReference = {
      apiVersion: store.apiVersion,
      kind: "SessionStore",
      name,
      uid: store.metadata.uid ?? "",
      controller: true,
      blockOwnerDeletion: true,
    };
    const ctx: RenderContext = { name, namespace, owner, spec };
    const annotations = store.metadata.annotations ?? {};
    const events: EventNote[] = [];
    const storeRef = { apiVersion: store.apiVersion, kind: "SessionStore", namespace, name };

    // Revisions: the spec's images are the target; status.stableRevision what runs for everyone.
    const revisions = this.informer("ControllerRevision")
      .list()
      .filter(
        (object) =>
          object.metadata.namespace === namespace &&
          object.metadata.ownerReferences?.some((ref) => ref.uid === owner.uid),
      ) as ControllerRevision[];
    const targetImages = imagesOf(spec);
    let target = revisions.find((revision) => revision.metadata.name === revisionName(name, targetImages));
    if (target === undefined) {
      const number = Math.max(0, ...revisions.map((revision) => revision.revision)) + 1;
      target = await this.createRevision(renderRevision(name, namespace, owner, targetImages, number));
      revisions.push(target);
    }
    let stable = revisions.find((revision) => revision.metadata.name === previous.stableRevision) ?? target;
    let canary =
      previous.canary?.revision === undefined || (previous.canary.weight ?? 0) === 0
        ? undefined
        : { ...previous.canary };
    let lastRollback = previous.lastRollback;

    // SRE: roll back to a named revision.
    const rollbackTo = annotations[ROLLBACK_ANNOTATION];
    if (rollbackTo !== undefined) {
      const wanted = findRevision(revisions, rollbackTo.trim());
      if (wanted === undefined || revisionImages(wanted) === undefined) {
        events.push({
          type: "Warning",
          reason: "RollbackTargetNotFound",
          message: `${ROLLBACK_ANNOTATION}=${rollbackTo}: no such revision of ${name}`,
        });
      } else {
        const from = canary?.revision ?? stable.metadata.name ?? "";
        if (target.metadata.name !== wanted.metadata.name && !isBad(target)) {
          target = await this.markRevision(
            target,
            "bad",
            "ManualRollback",
            `rolled back by request to ${wanted.metadata.name ?? ""}`,
          );
        }
        if (isBad(wanted)) await this.markRevision(wanted, "good", "ManualRollback", "restored by request");
        stable = wanted;
        canary = undefined;
        lastRollback = {
          revision: from,
          restoredRevision: wanted.metadata.name ?? "",
          reason: `manual rollback requested with ${ROLLBACK_ANNOTATION}`,
          time: iso(now),
        };
        events.push({
          type: "Normal",
          reason: "RolledBack",
          message: `restored revision ${wanted.metadata.name ?? ""} (${wanted.revision}) by request`,
        });
      }
      await this.options.client.mergePatch(storeRef, {
        metadata: { annotations: { [ROLLBACK_ANNOTATION]: null } },
      });
    }
    // SRE: abort the rollout in progress.
    if (annotations[ABORT_ANNOTATION] !== undefined) {
      if (
        annotations[ABORT_ANNOTATION] === "true" &&
        target.metadata.name !== stable.metadata.name &&
        !isBad(target)
      ) {
        target = await this.markRevision(
          target,
          "bad",
          "Aborted",
          `rollout aborted by request (${ABORT_ANNOTATION})`,
        );
        lastRollback = {
          revision: target.metadata.name ?? "",
          restoredRevision: stable.metadata.name ?? "",
          reason: "rollout aborted by request",
          time: iso(now),
        };
        canary = undefined;
        events.push({
          type: "Normal",
          reason: "RolloutAborted",
          message: `rollout of ${target.metadata.name ?? ""} aborted; ${stable.metadata.name ?? ""} stays stable`,
        });
      }
      await this.options.client.mergePatch(storeRef, {
        metadata: { annotations: { [ABORT_ANNOTATION]: null } },
      });
    }

    // Version canary.
    let requeueAfterMs: number | undefined;
    let stableImages: RevisionImages = revisionImages(stable) ?? targetImages;
    let canaryComponents: Component[] = [];
    let analysisProblem: string | undefined;
    const steps = spec.rollout.canary.steps;
    if (target.metadata.name === stable.metadata.name || isBad(target)) {
      canary = undefined;
    } else {
      canaryComponents = changedComponents(stableImages, targetImages);
      const first = canaryComponents[0] ?? "ingest";
      if (canary === undefined || canary.revision !== target.metadata.name) {
        canary = {
          component: first,
          image: targetImages[first],
          weight: steps[0] ?? 100,
          step: 0,
          revision: target.metadata.name ?? "",
          stepStartedAt: iso(now),
          failures: 0,
        };
        this.lastAnalysis.set(key, now.getTime());
        events.push({
          type: "Normal",
          reason: "RolloutStarted",
          message: `canary ${canary.revision} (${canaryComponents.map((c) => `${c}=${targetImages[c]}`).join(", ")}) at ${canary.weight}%`,
        });
      } else if (now.getTime() - (this.lastAnalysis.get(key) ?? 0) >= this.options.analysisIntervalMs) {
        this.lastAnalysis.set(key, now.getTime());
        const verdict = await this.analyseCanary(namespace, name, canaryComponents, spec.rollout.analysis);
        if (!verdict.healthy && !verdict.inconclusive) {
          canary.failures = (canary.failures ?? 0) + 1;
          analysisProblem = verdict.reason;
          this.logger.warn(
            { store: key, failures: canary.failures, reason: verdict.reason },
            "canary analysis breached",
          );
          if (canary.failures >= spec.rollout.failureLimit) {
            const reason = `analysis failed ${canary.failures} times in a row: ${verdict.reason}`;
            target = await this.markRevision(target, "bad", "AnalysisFailed", reason);
            lastRollback = {
              revision: target.metadata.name ?? "",
              restoredRevision: stable.metadata.name ?? "",
              reason,
              time: iso(now),
            };
            events.push({
              type: "Warning",
              reason: "RolledBack",
              message: `canary ${target.metadata.name ?? ""} rolled back to ${stable.metadata.name ?? ""}: ${reason}`,
            });
            this.options.metrics.rollbacks.inc();
            canary = undefined;
          }
        } else if (verdict.healthy) {
          canary.failures = 0;
          const stepAge = now.getTime() - Date.parse(canary.stepStartedAt ?? iso(now));
          if (annotations[PAUSE_ANNOTATION] !== "true" && stepAge >= spec.rollout.canary.interval) {
            const step = (canary.step ?? 0) + 1;
            if (step < steps.length) {
              canary = { ...canary, step, weight: steps[step] ?? 100, stepStartedAt: iso(now) };
              events.push({
                type: "Normal",
                reason: "CanaryStep",
                message: `canary ${canary.revision ?? ""} healthy (${verdict.reason}); now at ${canary.weight}%`,
              });
            } else {
              events.push({
                type: "Normal",
                reason: "Promoted",
                message: `revision ${target.metadata.name ?? ""} promoted to stable (${verdict.reason})`,
              });
              stable = target;
              stableImages = targetImages;
              canary = undefined;
            }
          }
        }
      }
      if (canary !== undefined) requeueAfterMs = this.options.analysisIntervalMs;
    }
    if (canary === undefined) canaryComponents = [];

    // Capture stages.
    const capture = await this.captureStage(key, spec, previous, namespace, name, now, events);
    if (capture.requeueAfterMs !== undefined)
      requeueAfterMs = Math.min(requeueAfterMs ?? Infinity, capture.requeueAfterMs);
    const names = objectNames(name);
    const route: CanaryRoute | undefined =
      canary === undefined
        ? undefined
        : {
            component: canaryComponents[0] ?? "ingest",
            revision: canary.revision ?? "",
            image: canary.image ?? "",
            weight: canary.weight ?? 0,
            address: `${names.canary(canaryComponents[0] ?? "ingest")}.${namespace}.svc:${PORTS[canaryComponents[0] ?? "ingest"].grpc}`,
          };
    const document = buildCaptureDocument(spec, capture.index, route);
    const captureText = renderCaptureText(document);

    // Owned objects: the capture ConfigMap first, so a kill switch is published before anything else.
    await this.ensureApplied(
      renderCaptureConfigMap(ctx, captureText, {
        [STAGE_ANNOTATION]: capture.stage,
        [STAGE_SINCE_ANNOTATION]: capture.since,
      }),
    );
    await this.ensureSecrets(ctx);
    const desired: KubeObject[] = [
      renderService(ctx, "ingest", "stable", true),
      renderService(ctx, "index", "stable"),
      renderService(ctx, "archive", "stable"),
      ...(spec.meilisearch.mode === "managed" ? renderManagedStore(ctx, "meilisearch") : []),
      ...(spec.s3.mode === "managed" ? renderManagedStore(ctx, "s3") : []),
      renderIngest(ctx, "stable", stableImages.ingest, spec.ingest.replicas),
      renderServiceDeployment(ctx, "index", "stable", stableImages.index, spec.index.replicas),
      renderServiceDeployment(ctx, "archive", "stable", stableImages.archive, spec.archive.replicas),
    ];
    for (const component of COMPONENTS) {
      const kind = component === "ingest" ? "StatefulSet" : "Deployment";
      const existing = this.informer(kind).get(namespace, names.canary(component));
      const active = canary !== undefined && canaryComponents.includes(component);
      if (!active && existing === undefined) continue;
      const liveImage = (
        existing?.["spec"] as { template?: { spec?: { containers?: { image?: string }[] } } } | undefined
      )?.template?.spec?.containers?.[0]?.image;
      // No canary: the canary workload stays, scaled to zero.
      const image = active ? targetImages[component] : (liveImage ?? targetImages[component]);
      const replicas = active
        ? Math.max(1, Math.ceil((spec[component].replicas * (canary?.weight ?? 0)) / 100))
        : 0;
      desired.push(
        component === "ingest"
          ? renderIngest(ctx, "canary", image, replicas)
          : renderServiceDeployment(ctx, component, "canary", image, replicas),
        renderService(ctx, component, "canary", component === "ingest"),
      );
    }
    await Promise.all(desired.map((object) => this.ensureApplied(object)));

    // Status.
    const components = this.componentStatus(namespace, names, spec);
    const notReady = Object.entries(components)
      .filter(([, status]) => status.ready !== true)
      .map(([component]) => component);
    const updating = Object.entries(components)
      .filter(([, status]) => (status.updatedReplicas ?? 0) < (status.replicas ?? 0))
      .map(([component]) => component);
    const badCode = isBad(target)
      ? (target.metadata.annotations?.[REVISION_CODE_ANNOTATION] ?? "AnalysisFailed")
      : undefined;
    const conditions: DesiredCondition[] = [
      notReady.length === 0
        ? {
            type: "Ready",
            status: "True",
            reason: "AllReplicasReady",
            message: "every workload has all replicas ready",
          }
        : {
            type: "Ready",
            status: "False",
            reason: "ReplicasNotReady",
            message: `not ready: ${notReady.join(", ")}`,
          },
      canary !== undefined
        ? {
            type: "Progressing",
            status: "True",
            reason: "CanaryInProgress",
            message: `canary ${canary.revision ?? ""} at ${canary.weight ?? 0}% (step ${(canary.step ?? 0) + 1} of ${steps.length})`,
          }
        : updating.length > 0
          ? {
              type: "Progressing",
              status: "True",
              reason: "RollingUpdate",
              message: `updating: ${updating.join(", ")}`,
            }
          : {
              type: "Progressing",
              status: "False",
              reason: "Stable",
              message: `revision ${stable.metadata.name ?? ""} runs everywhere`,
            },
      analysisProblem !== undefined && canary !== undefined
        ? { type: "Degraded", status: "True", reason: "AnalysisFailing", message: analysisProblem }
        : { type: "Degraded", status: "False", reason: "Healthy", message: "no failing analysis" },
      badCode !== undefined
        ? {
            type: "RolledBack",
            status: "True",
            reason: badCode,
            message: target.metadata.annotations?.[REVISION_REASON_ANNOTATION] ?? lastRollback?.reason ?? "",
          }
        : {
            type: "RolledBack",
            status: "False",
            reason: "NoRollback",
            message: "the current revision was not rolled back",
          },
    ];
    const next: SessionStoreStatus = {
      observedGeneration: generation,
      capture: {
        enabled: document.enabled,
        stage: capture.stage,
        sampleRate: document.sampleRate,
        configRevision: createHash("sha256").update(captureText).digest("hex").slice(0, 12),
      },
      ...(canary === undefined ? {} : { canary }),
      currentRevision: target.metadata.name ?? "",
      stableRevision: stable.metadata.name ?? "",
      ...(lastRollback === undefined ? {} : { lastRollback }),
      components,
    };
    await this.writeStatus(store, next, conditions, events, now);
    await this.pruneRevisions(revisions, spec.rollout.revisionHistoryLimit, [stable, target]);
    return requeueAfterMs === undefined ? undefined : { requeueAfterMs };
  }

  /** Decides the capture stage in force, advancing or stepping back under Automatic advancement. */
  private async captureStage(
    key: string,
    spec: SessionStoreSpec,
    previous: SessionStoreStatus,
    namespace: string,
    name: string,
    now: Date,
    events: EventNote[],
  ): Promise<{ index: number; stage: string; since: string; requeueAfterMs?: number }> {
    const stages = spec.capture.stages;
    const configMap = this.informer("ConfigMap").get(namespace, objectNames(name).capture);
    const publishedStage = configMap?.metadata.annotations?.[STAGE_ANNOTATION];
    const publishedSince = configMap?.metadata.annotations?.[STAGE_SINCE_ANNOTATION];
    const sinceFor = (stage: string) =>
      publishedStage === stage && publishedSince !== undefined ? publishedSince : iso(now);
    if (stages.length === 0) return { index: -1, stage: "", since: sinceFor("") };
    if (spec.capture.advancement === "Manual") {
      const index = stageIndex(spec, spec.capture.currentStage);
      const stage = stages[index]?.name ?? "";
      return { index, stage, since: sinceFor(stage) };
    }
    let index = stageIndex(spec, previous.capture?.stage ?? spec.capture.currentStage);
    let stage = stages[index]?.name ?? "";
    let since = sinceFor(stage);
    if (!spec.capture.enabled) return { index, stage, since };
    if (now.getTime() - (this.lastAnalysis.get(`stage:${key}`) ?? 0) >= this.options.analysisIntervalMs) {
      this.lastAnalysis.set(`stage:${key}`, now.getTime());
      const current = stages[index];
      // Unset: spec.rollout.analysis applies; set: thresholds left out take the built-in defaults.
      const thresholds: AnalysisThresholds =
        current?.analysis === undefined
          ? spec.rollout.analysis
          : {
              maxErrorRate: 0.01,
              maxP95AckLatencyIncreasePct: 20,
              maxBotOverheadPct: 5,
              ...stripUndefined(current.analysis),
            };
      const pods = this.podsOf(namespace, name, "ingest", "stable");
      const measurement = measure(
        "ingest",
        await scrape(pods.urls, this.options.scrapeTimeoutMs ?? 2000),
        pods.count,
      );
      let baseline = this.stageBaselines.get(key);
      if (baseline === undefined || baseline.stage !== stage) {
        baseline = { stage, p95: measurement.p95, failures: 0 };
        this.stageBaselines.set(key, baseline);
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
        if (
          index < stages.length - 1 &&
          now.getTime() - Date.parse(since) >= (current?.bakeTime ?? Infinity)
        ) {
          events.push({
            type: "Normal",
            reason: "CaptureStageAdvanced",
            message: `capture stage ${stage} passed analysis for its bake time (${verdict.reason}); now ${stages[index + 1]?.name ?? ""}`,
          });
          index += 1;
        }
      }
      const nextStage = stages[index]?.name ?? "";
      if (nextStage !== stage) {
        stage = nextStage;
        since = iso(now);
      }
    }
    return { index, stage, since, requeueAfterMs: this.options.analysisIntervalMs };
  }

  private podsOf(
    namespace: string,
    name: string,
    component: Component,
    track: "stable" | "canary",
  ): { urls: string[]; count: number } {
    const pods = this.informer("Pod")
      .list()
      .filter((pod) => {
        const podLabels = pod.metadata.labels ?? {};
        return (
          pod.metadata.namespace === namespace &&
          pod.metadata.deletionTimestamp === undefined &&
          podLabels["app.kubernetes.io/instance"] === name &&
          podLabels["app.kubernetes.io/component"] === component &&
          podLabels["sessiontrack.io/track"] === track
        );
      });
    const urls = pods
      .map((pod) => metricsUrl(pod, component))
      .filter((url): url is string => url !== undefined);
    return { urls, count: pods.length };
  }

  /** Scrapes canary and stable pods of every changed component; the first breach decides. */
  private async analyseCanary(
    namespace: string,
    name: string,
    components: Component[],
    thresholds: AnalysisThresholds,
  ): Promise<Verdict> {
    const timeout = this.options.scrapeTimeoutMs ?? 2000;
    const verdicts = await Promise.all(
      components.map(async (component) => {
        const canaryPods = this.podsOf(namespace, name, component, "canary");
        const stablePods = this.podsOf(namespace, name, component, "stable");
        const [canaryText, stableText] = await Promise.all([
          scrape(canaryPods.urls, timeout),
          scrape(stablePods.urls, timeout),
        ]);
        const verdict = judge(
          measure(component, canaryText, canaryPods.count),
          measure(component, stableText, stablePods.count),
          thresholds,
        );
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

  /** Server-side applies `object` unless the live object already carries the same rendered hash. */
  private async ensureApplied(object: KubeObject): Promise<boolean> {
    const stamped = withAppliedHash(object);
    const hash = stamped.metadata.annotations?.[APPLIED_HASH_ANNOTATION] ?? "";
    const id = objectKey(object.kind, object.metadata.namespace, object.metadata.name);
    const live = this.informers[object.kind]?.get(object.metadata.namespace, object.metadata.name ?? "");
    if (live?.metadata.annotations?.[APPLIED_HASH_ANNOTATION] === hash || this.lastApplied.get(id) === hash)
      return false;
    await this.options.client.apply(stamped);
    this.lastApplied.set(id, hash);
    this.logger.debug({ kind: object.kind, name: object.metadata.name }, "applied");
    return true;
  }

  /** Generated credentials: created once when missing, never rewritten (so never rotated). */
  private async ensureSecrets(ctx: RenderContext): Promise<void> {
    const names = objectNames(ctx.name);
    const wanted: { name: string; component: string; owned: boolean; data: () => Record<string, string> }[] =
      [];
    if (ctx.spec.meilisearch.mode === "managed") {
      wanted.push({
        name: names.meilisearch,
        component: "meilisearch",
        owned: true,
        data: () => ({ masterKey: randomBytes(32).toString("base64url") }),
      });
    }
    if (ctx.spec.s3.mode === "managed") {
      wanted.push({
        name: names.s3,
        component: "s3",
        owned: true,
        data: () => ({
          accessKeyId: `st${randomBytes(9).toString("hex")}`,
          secretAccessKey: randomBytes(30).toString("base64url"),
        }),
      });
    }
    if (ctx.spec.privacy.encryption.keySecretRef === undefined) {
      // Not owned: deleting the SessionStore must never destroy the keys the archive is encrypted with.
      wanted.push({
        name: names.encryptionKeys,
        component: "archive",
        owned: false,
        data: () => ({ default: randomBytes(32).toString("base64") }),
      });
    }
    for (const secret of wanted) {
      if (this.informer("Secret").get(ctx.namespace, secret.name) !== undefined) continue;
      if (
        (await this.options.client.get({
          apiVersion: "v1",
          kind: "Secret",
          namespace: ctx.namespace,
          name: secret.name,
        })) !== undefined
      )
        continue;
      const object = renderSecret(ctx, secret.name, secret.component, secret.data());
      if (!secret.owned) delete object.metadata.ownerReferences;
      try {
        await this.options.client.create(object);
        this.logger.info({ secret: secret.name }, "generated credentials secret");
      } catch (error) {
        if (!isStatus(error, 409)) throw error;
      }
    }
  }

  private componentStatus(
    namespace: string,
    names: ReturnType<typeof objectNames>,
    spec: SessionStoreSpec,
  ): Record<string, ComponentStatus> {
    const read = (kind: string, objectName: string): ComponentStatus => {
      const object = this.informer(kind).get(namespace, objectName);
      const objectSpec = object?.["spec"] as
        { replicas?: number; template?: { spec?: { containers?: { image?: string }[] } } } | undefined;
      const status = object?.["status"] as { readyReplicas?: number; updatedReplicas?: number } | undefined;
      const replicas = objectSpec?.replicas ?? 0;
      const readyReplicas = status?.readyReplicas ?? 0;
      return {
        replicas,
        readyReplicas,
        updatedReplicas: status?.updatedReplicas ?? 0,
        ready: object !== undefined && readyReplicas >= replicas,
        image: objectSpec?.template?.spec?.containers?.[0]?.image ?? "",
      };
    };
    return {
      ingest: read("StatefulSet", names.ingest),
      index: read("Deployment", names.index),
      archive: read("Deployment", names.archive),
      ...(spec.meilisearch.mode === "managed" ? { meilisearch: read("StatefulSet", names.meilisearch) } : {}),
      ...(spec.s3.mode === "managed" ? { s3: read("StatefulSet", names.s3) } : {}),
    };
  }

  /** Patches status only when something changed, then records an Event per transition. */
  private async writeStatus(
    store: SessionStore,
    next: SessionStoreStatus,
    desired: DesiredCondition[],
    events: EventNote[],
    now: Date,
  ): Promise<void> {
    const previous = store.status ?? {};
    const { conditions, transitions } = settleConditions(
      previous.conditions,
      desired,
      store.metadata.generation ?? 0,
      now,
    );
    const rolledBack = conditions.find((condition) => condition.type === "RolledBack")?.status === "True";
    const phase: NonNullable<SessionStoreStatus["phase"]> = conditions.some(
      (c) => c.type === "Degraded" && c.status === "True",
    )
      ? "Degraded"
      : rolledBack
        ? "RolledBack"
        : conditions.some((c) => c.type === "Progressing" && c.status === "True")
          ? "Progressing"
          : conditions.some((c) => c.type === "Ready" && c.status === "True")
            ? "Ready"
            : "Progressing";
    const status: SessionStoreStatus = { ...next, phase, conditions };
    const comparable = (value: SessionStoreStatus) => JSON.stringify(sortKeys(value));
    if (comparable(status) !== comparable(previous)) {
      const patch: Record<string, unknown> = { ...status };
      for (const field of ["canary", "lastRollback"] as const)
        if (status[field] === undefined) patch[field] = null;
      await this.options.client.mergePatch(
        {
          apiVersion: store.apiVersion,
          kind: "SessionStore",
          namespace: store.metadata.namespace ?? "default",
          name: store.metadata.name ?? "",
        },
        { status: patch },
        { subresource: "status" },
      );
    }
    const notes: EventNote[] = [
      ...events,
      ...transitions.map((transition): EventNote => ({
        type:
          (transition.type === "Degraded" || transition.type === "RolledBack") === (transition.to === "True")
            ? "Warning"
            : "Normal",
        reason: `${transition.type}${transition.to === "True" ? "" : "Cleared"}`,
        message:
          `${transition.type} is now ${transition.to} (${transition.reason}): ${transition.message}`.slice(
            0,
            1000,
          ),
      })),
    ];
    for (const note of notes) {
      try {
        await this.options.client.event(store, note.type, note.reason, note.message);
      } catch (error) {
        this.logger.warn({ err: error, reason: note.reason }, "recording an event failed");
      }
    }
  }

  private async createRevision(revision: ControllerRevision): Promise<ControllerRevision> {
    try {
      return await this.options.client.create<ControllerRevision>(revision);
    } catch (error) {
      if (!isStatus(error, 409)) throw error;
      const existing = await this.options.client.get<ControllerRevision>({
        apiVersion: "apps/v1",
        kind: "ControllerRevision",
        namespace: revision.metadata.namespace ?? "",
        name: revision.metadata.name ?? "",
      });
      if (existing === undefined) throw error;
      return existing;
    }
  }

  private markRevision(
    revision: ControllerRevision,
    verdict: "bad" | "good",
    code: string,
    reason: string,
  ): Promise<ControllerRevision> {
    return this.options.client.mergePatch<ControllerRevision>(
      {
        apiVersion: "apps/v1",
        kind: "ControllerRevision",
        namespace: revision.metadata.namespace ?? "",
        name: revision.metadata.name ?? "",
      },
      {
        metadata: {
          annotations:
            verdict === "bad"
              ? {
                  [REVISION_VERDICT_ANNOTATION]: "bad",
                  [REVISION_CODE_ANNOTATION]: code,
                  [REVISION_REASON_ANNOTATION]: reason.slice(0, 1000),
                }
              : {
                  [REVISION_VERDICT_ANNOTATION]: null,
                  [REVISION_CODE_ANNOTATION]: null,
                  [REVISION_REASON_ANNOTATION]: null,
                },
        },
      },
    );
  }

  /** Keeps the newest `limit` revisions (and always stable and target). */
  private async pruneRevisions(
    revisions: ControllerRevision[],
    limit: number,
    keep: ControllerRevision[],
  ): Promise<void> {
    const protectedNames = new Set(keep.map((revision) => revision.metadata.name));
    const sorted = [...revisions].sort((a, b) => b.revision - a.revision);
    for (const revision of sorted.slice(limit)) {
      if (protectedNames.has(revision.metadata.name)) continue;
      await this.options.client.delete({
        apiVersion: "apps/v1",
        kind: "ControllerRevision",
        namespace: revision.metadata.namespace ?? "",
        name: revision.metadata.name ?? "",
      });
    }
  }
}

function stripUndefined(value: Record<string, number | undefined>): Record<string, number> {
  return Object.fromEntries(
    Object.entries(value).filter((entry): entry is [string, number] => entry[1] !== undefined),
  );
}

function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value !== null && typeof value === "object") {
    return Object.fromEntries(
      Object.entries(value as Record<string, unknown>)
        .filter(([, v]) => v !== undefined)
        .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
        .map(([k, v]) => [k, sortKeys(v)]),
    );
  }
  return value;
}
