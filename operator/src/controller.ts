import { createHash } from "node:crypto";

import type { Logger } from "@sessiontrack/runtime";

import { buildCaptureDocument, renderCaptureText, type CanaryRoute } from "./capture.js";
import { CaptureStagePlanner } from "./capture-stages.js";
import { GeneratedSecrets } from "./credentials.js";
import {
  Informer,
  type InformerEventType,
  type KubeClient,
  type KubeObject,
  type OwnerReference,
} from "./k8s/index.js";
import { IngestScaleDown, type ScaleDownPlan } from "./ingest-drain.js";
import type { OperatorMetrics } from "./metrics.js";
import { PodMetrics } from "./pod-metrics.js";
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
import { RevisionHistory } from "./revision-history.js";
import { TenantsSecretError, effectiveTenantsFile } from "./service-wiring.js";
import {
  REVISION_CODE_ANNOTATION,
  REVISION_REASON_ANNOTATION,
  imagesOf,
  isBad,
  renderRevision,
  revisionImages,
  revisionName,
  type ControllerRevision,
} from "./revisions.js";
import {
  PAUSE_ANNOTATION,
  advanceCanary,
  applySreRequests,
  watchPromotion,
  type RolloutState,
} from "./rollout.js";
import {
  COMPONENTS,
  parseSessionStoreSpec,
  type Component,
  type ComponentStatus,
  type SessionStore,
  type SessionStoreSpec,
  type SessionStoreStatus,
} from "./spec.js";
import { StatusWriter, type DesiredCondition } from "./status.js";

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

const SELECTOR = `app.kubernetes.io/managed-by=${MANAGED_BY}`;
/** How long a reconcile waits for the watch to deliver its own writes before going on anyway. */
const CACHE_WAIT_MS = 2_000;
/** A canary's replicas: its weight's share of the stable count, at least one. */
const canaryReplicas = (stable: number, weight: number) => Math.max(1, Math.ceil((stable * weight) / 100));
const objectKey = (kind: string, namespace: string | undefined, name: string | undefined) =>
  `${kind}/${namespace ?? ""}/${name ?? ""}`;
const storeKey = (object: KubeObject) => `${object.metadata.namespace ?? ""}/${object.metadata.name ?? ""}`;

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
  /** Owned objects to compare with a dry-run apply at their next reconcile (after a periodic relist). */
  private readonly verify = new Set<string>();
  private readonly logger: Logger;
  private readonly podMetrics: PodMetrics;
  private readonly stages: CaptureStagePlanner;
  private readonly history: RevisionHistory;
  private readonly status: StatusWriter;
  private readonly secrets: GeneratedSecrets;
  private readonly ingestScaleDown: IngestScaleDown;

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
      if (type === "deleted") this.forget(storeKey(object));
      else this.queue.add(storeKey(object));
    });
    const owned = (type: InformerEventType, object: KubeObject) => this.onOwnedEvent(type, object);
    for (const [apiVersion, kind] of [
      ["apps/v1", "StatefulSet"],
      ["apps/v1", "Deployment"],
      ["v1", "Service"],
      ["v1", "ConfigMap"],
      ["v1", "Secret"],
    ] as const) {
      watch(apiVersion, kind, SELECTOR, owned);
    }
    watch("apps/v1", "ControllerRevision", SELECTOR, () => undefined);
    watch("v1", "Pod", SELECTOR, () => undefined);
    this.podMetrics = new PodMetrics(this.informer("Pod"), options.scrapeTimeoutMs ?? 2000);
    this.stages = new CaptureStagePlanner(this.podMetrics, options.analysisIntervalMs);
    this.history = new RevisionHistory(options.client, (revision) =>
      this.informer("ControllerRevision").waitForVersion(
        revision.metadata.namespace,
        revision.metadata.name ?? "",
        revision.metadata.resourceVersion ?? "",
        CACHE_WAIT_MS,
      ),
    );
    this.secrets = new GeneratedSecrets(options.client, this.informer("Secret"), options.logger);
    this.status = new StatusWriter(options.client, options.logger);
    this.ingestScaleDown = new IngestScaleDown(
      options.client,
      this.informer("Pod"),
      this.informer("StatefulSet"),
      options.scrapeTimeoutMs ?? 2000,
      options.logger.child({ component: "ingest-scale-down" }),
    );
  }

  /** Fills every cache; reconciling starts with {@link setLeading}(true). */
  async start(): Promise<void> {
    await Promise.all(Object.values(this.informers).map((informer) => informer.start()));
  }

  /** Starts or stops reconciling (leader election decides). */
  setLeading(leading: boolean): void {
    if (leading) {
      this.lastApplied.clear();
      for (const store of this.informer("SessionStore").list()) this.queue.add(storeKey(store));
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

  private forget(key: string): void {
    this.lastAnalysis.delete(key);
    this.stages.forget(key);
  }

  private onOwnedEvent(type: InformerEventType, object: KubeObject): void {
    const id = objectKey(object.kind, object.metadata.namespace, object.metadata.name);
    // A delete, or a periodic relist, makes the next reconcile compare against the live object.
    if (type === "deleted" || type === "resync") this.lastApplied.delete(id);
    // A periodic relist re-checks the live object against what the operator would apply.
    if (type === "resync") this.verify.add(id);
    const owner = object.metadata.ownerReferences?.find(
      (ref) => ref.controller === true && ref.kind === "SessionStore",
    );
    if (owner !== undefined) {
      this.queue.add(`${object.metadata.namespace ?? ""}/${owner.name}`);
    }
  }

  private async reconcile(key: string): Promise<WorkResult | void> {
    const slash = key.indexOf("/");
    const store = this.informer("SessionStore").get(key.slice(0, slash), key.slice(slash + 1)) as
      SessionStore | undefined;
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
      const invalid = (type: DesiredCondition["type"], status: "True" | "False"): DesiredCondition => ({
        type,
        status,
        reason: "InvalidSpec",
        message: parsed.error,
      });
      await this.status.write(
        store,
        { ...previous, observedGeneration: generation },
        [
          invalid("Ready", "False"),
          invalid("Progressing", "False"),
          invalid("Degraded", "True"),
          invalid("RolledBack", "False"),
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

    // Revisions: the spec's images are the target; status.stableRevision runs for everyone else.
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
      target = await this.history.create(renderRevision(name, namespace, owner, targetImages, number));
      revisions.push(target);
    }
    const state: RolloutState = {
      target,
      stable: revisions.find((revision) => revision.metadata.name === previous.stableRevision) ?? target,
      canary:
        previous.canary?.revision === undefined || (previous.canary.weight ?? 0) === 0
          ? undefined
          : { ...previous.canary },
      lastRollback: previous.lastRollback,
      events: [],
    };
    await applySreRequests(state, store, revisions, {
      client: this.options.client,
      history: this.history,
      now,
    });
    const due = now.getTime() - (this.lastAnalysis.get(key) ?? 0) >= this.options.analysisIntervalMs;
    const canaryComponents = await advanceCanary(state, spec, targetImages, {
      history: this.history,
      now,
      paused: store.metadata.annotations?.[PAUSE_ANNOTATION] === "true",
      analyse: due
        ? (components) => {
            this.lastAnalysis.set(key, now.getTime());
            return this.podMetrics.analyseCanary(namespace, name, components, spec.rollout.analysis);
          }
        : undefined,
      onStarted: () => this.lastAnalysis.set(key, now.getTime()),
      onRollback: () => this.options.metrics.rollbacks.inc(),
    });
    const stillDue = now.getTime() - (this.lastAnalysis.get(key) ?? 0) >= this.options.analysisIntervalMs;
    // Failed checks of a promoted revision live in status, so a restart or a new leader keeps counting.
    const checkedRevision = state.stable.metadata.name ?? "";
    let windowFailures =
      previous.promotionCheck?.revision === checkedRevision ? (previous.promotionCheck.failures ?? 0) : 0;
    const windowOpen = await watchPromotion(state, spec, revisions, {
      history: this.history,
      now,
      failures: {
        get: () => windowFailures,
        set: (count) => {
          windowFailures = count;
        },
      },
      analyse: stillDue
        ? (components) => {
            this.lastAnalysis.set(key, now.getTime());
            return this.podMetrics.analyseStable(namespace, name, components, spec.rollout.analysis);
          }
        : undefined,
      onRollback: () => this.options.metrics.rollbacks.inc(),
    });
    let requeueAfterMs =
      state.canary === undefined && !windowOpen ? undefined : this.options.analysisIntervalMs;

    // Capture: the stage in force, the canary route, the published file.
    const names = objectNames(name);
    const configMap = this.informer("ConfigMap").get(namespace, names.capture);
    const stage = await this.stages.decide({
      key,
      namespace,
      name,
      spec,
      servedStage: previous.capture?.stage,
      persisted: previous.captureRollout,
      published: {
        stage: configMap?.metadata.annotations?.[STAGE_ANNOTATION],
        since: configMap?.metadata.annotations?.[STAGE_SINCE_ANNOTATION],
      },
      now,
      events: state.events,
    });
    if (stage.requeueAfterMs !== undefined) {
      requeueAfterMs = Math.min(requeueAfterMs ?? Infinity, stage.requeueAfterMs);
    }
    const routed = canaryComponents[0];
    const route: CanaryRoute | undefined =
      state.canary === undefined || routed === undefined
        ? undefined
        : {
            component: routed,
            revision: state.canary.revision ?? "",
            image: state.canary.image ?? "",
            weight: state.canary.weight ?? 0,
            address: `${names.canary(routed)}.${namespace}.svc:${PORTS[routed].grpc}`,
          };
    const document = buildCaptureDocument(spec, stage.index, route);
    const captureText = renderCaptureText(document);

    // Owned objects: the capture ConfigMap first, so a kill switch is published before anything else.
    await this.ensureApplied(
      renderCaptureConfigMap(ctx, captureText, {
        [STAGE_ANNOTATION]: stage.stage,
        [STAGE_SINCE_ANNOTATION]: stage.since,
      }),
    );
    const { serviceKey } = await this.secrets.ensure(ctx);
    // The services' tenants file: the user's, plus the shipper key; a broken one is reported, not fatal.
    let tenantsProblem: string | undefined;
    const tenantsFile: KubeObject[] = [];
    try {
      const tenants = await effectiveTenantsFile(this.options.client, namespace, spec, serviceKey);
      tenantsFile.push(renderSecret(ctx, names.serviceTenants, "tenants", { "tenants.yaml": tenants.text }));
      await this.secrets.ensureTenantKeys(ctx, tenants.tenants);
    } catch (error) {
      if (!(error instanceof TenantsSecretError)) throw error;
      tenantsProblem = error.message;
      // The user's Secret is not watched: look again soon.
      requeueAfterMs = Math.min(requeueAfterMs ?? Infinity, 10_000);
    }
    const stableImages = revisionImages(state.stable) ?? targetImages;
    // A scale-down of ingest waits until the leaving replicas have shipped their WAL.
    const scaleDown = await this.ingestScaleDown.plan({
      namespace,
      name,
      track: "stable",
      desired: spec.ingest.replicas,
      previous: previous.ingestDrain,
      timeoutMs: spec.ingest.drainTimeoutSeconds * 1000,
      now,
      events: state.events,
    });
    // An ended ingest canary (rollback, abort, promotion) drains the same way: its route is
    // already gone from the capture config, and its pods go only once their WAL is shipped.
    const canaryIngest = await this.ingestScaleDown.plan({
      namespace,
      name,
      track: "canary",
      desired:
        state.canary !== undefined && canaryComponents.includes("ingest")
          ? canaryReplicas(spec.ingest.replicas, state.canary.weight ?? 0)
          : 0,
      previous: previous.canaryIngestDrain,
      timeoutMs: spec.ingest.drainTimeoutSeconds * 1000,
      now,
      events: state.events,
    });
    if (scaleDown.drain !== undefined || canaryIngest.drain !== undefined) {
      requeueAfterMs = Math.min(requeueAfterMs ?? Infinity, this.options.analysisIntervalMs);
    }
    const ingestSet = renderIngest(ctx, "stable", stableImages.ingest, scaleDown.replicas);
    const desired: KubeObject[] = [
      renderService(ctx, "ingest", "stable", true),
      renderService(ctx, "index", "stable"),
      renderService(ctx, "archive", "stable"),
      ...(spec.meilisearch.mode === "managed" ? renderManagedStore(ctx, "meilisearch") : []),
      ...(spec.s3.mode === "managed" ? renderManagedStore(ctx, "s3") : []),
      ingestSet,
      renderServiceDeployment(ctx, "index", "stable", stableImages.index, spec.index.replicas),
      renderServiceDeployment(ctx, "archive", "stable", stableImages.archive, spec.archive.replicas),
      ...this.canaryWorkloads(ctx, state, canaryComponents, targetImages, canaryIngest.replicas),
      ...tenantsFile,
    ];
    const applied = await Promise.all(desired.map((object) => this.ensureApplied(object)));
    // The next reconcile must see the lowered replicas, or it would start that drain again.
    for (const [plan, setName] of [
      [scaleDown, names.ingest],
      [canaryIngest, names.canary("ingest")],
    ] as const) {
      const index = desired.findIndex(
        (object) => object.kind === "StatefulSet" && object.metadata.name === setName,
      );
      const version = index < 0 ? undefined : applied[index]?.metadata.resourceVersion;
      if (plan.scalesDown && version !== undefined) {
        await this.informer("StatefulSet").waitForVersion(namespace, setName, version, CACHE_WAIT_MS);
      }
    }

    const components = this.componentStatus(namespace, names, spec);
    const next: SessionStoreStatus = {
      observedGeneration: generation,
      capture: {
        enabled: document.enabled,
        stage: stage.stage,
        sampleRate: document.sampleRate,
        // The revision ingest computes for this file and serves on WatchConfig.
        configRevision: createHash("sha256").update(captureText).digest("hex").slice(0, 12),
      },
      ...(state.canary === undefined ? {} : { canary: state.canary }),
      ...(stage.rollout === undefined ? {} : { captureRollout: stage.rollout }),
      ...(scaleDown.drain === undefined ? {} : { ingestDrain: scaleDown.drain }),
      ...(canaryIngest.drain === undefined ? {} : { canaryIngestDrain: canaryIngest.drain }),
      ...(windowOpen && windowFailures > 0
        ? { promotionCheck: { revision: checkedRevision, failures: windowFailures } }
        : {}),
      currentRevision: state.target.metadata.name ?? "",
      stableRevision: state.stable.metadata.name ?? "",
      ...(state.lastRollback === undefined ? {} : { lastRollback: state.lastRollback }),
      components,
    };
    const written = await this.status.write(
      store,
      next,
      this.conditions(state, components, spec, tenantsProblem, [scaleDown, canaryIngest]),
      state.events,
      now,
    );
    // The next reconcile of this key must see this status (the rollout's state), not the one before.
    if (written?.metadata.resourceVersion !== undefined) {
      await this.informer("SessionStore").waitForVersion(
        namespace,
        name,
        written.metadata.resourceVersion,
        CACHE_WAIT_MS,
      );
    }
    await this.history.prune(revisions, spec.rollout.revisionHistoryLimit, [state.stable, state.target]);
    return requeueAfterMs === undefined ? undefined : { requeueAfterMs };
  }

  /**
   * Canary workloads: sized by the weight while a canary runs, scaled to zero (kept) otherwise;
   * the ingest canary to `ingestReplicas`, which holds it until its leaving pods are drained.
   */
  private canaryWorkloads(
    ctx: RenderContext,
    state: RolloutState,
    active: readonly Component[],
    targetImages: Record<Component, string>,
    ingestReplicas: number,
  ): KubeObject[] {
    const names = objectNames(ctx.name);
    const objects: KubeObject[] = [];
    for (const component of COMPONENTS) {
      const kind = component === "ingest" ? "StatefulSet" : "Deployment";
      const existing = this.informer(kind).get(ctx.namespace, names.canary(component));
      const running = state.canary !== undefined && active.includes(component);
      if (!running && existing === undefined) continue;
      const liveImage = (
        existing?.["spec"] as { template?: { spec?: { containers?: { image?: string }[] } } } | undefined
      )?.template?.spec?.containers?.[0]?.image;
      const image = running ? targetImages[component] : (liveImage ?? targetImages[component]);
      const replicas =
        component === "ingest"
          ? ingestReplicas
          : running
            ? canaryReplicas(ctx.spec[component].replicas, state.canary?.weight ?? 0)
            : 0;
      objects.push(
        component === "ingest"
          ? renderIngest(ctx, "canary", image, replicas)
          : renderServiceDeployment(ctx, component, "canary", image, replicas),
        renderService(ctx, component, "canary", component === "ingest"),
      );
    }
    return objects;
  }

  private conditions(
    state: RolloutState,
    components: Record<string, ComponentStatus>,
    spec: SessionStoreSpec,
    tenantsProblem: string | undefined,
    drains: readonly ScaleDownPlan[],
  ): DesiredCondition[] {
    const joined = (messages: (string | undefined)[]) => {
      const present = messages.filter((message): message is string => message !== undefined);
      return present.length === 0 ? undefined : present.join("; ");
    };
    const drainProgress = joined(drains.map((plan) => plan.progressing));
    const drainTimeout = joined(drains.map((plan) => plan.timedOut));
    const { canary, target, stable } = state;
    const notReady = Object.entries(components)
      .filter(([, status]) => status.ready !== true)
      .map(([component]) => component);
    const updating = Object.entries(components)
      .filter(([, status]) => (status.updatedReplicas ?? 0) < (status.replicas ?? 0))
      .map(([component]) => component);
    const ready: DesiredCondition =
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
          };
    const progressing: DesiredCondition =
      canary !== undefined
        ? {
            type: "Progressing",
            status: "True",
            reason: "CanaryInProgress",
            message: `canary ${canary.revision ?? ""} at ${canary.weight ?? 0}% (step ${(canary.step ?? 0) + 1} of ${spec.rollout.canary.steps.length})`,
          }
        : drainProgress !== undefined
          ? { type: "Progressing", status: "True", reason: "DrainingIngest", message: drainProgress }
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
              };
    const degraded: DesiredCondition =
      tenantsProblem !== undefined
        ? { type: "Degraded", status: "True", reason: "TenantsSecretInvalid", message: tenantsProblem }
        : state.analysisProblem !== undefined
          ? { type: "Degraded", status: "True", reason: "AnalysisFailing", message: state.analysisProblem }
          : drainTimeout !== undefined
            ? { type: "Degraded", status: "True", reason: "DrainTimeout", message: drainTimeout }
            : { type: "Degraded", status: "False", reason: "Healthy", message: "no failing analysis" };
    const rolledBack: DesiredCondition = isBad(target)
      ? {
          type: "RolledBack",
          status: "True",
          reason: target.metadata.annotations?.[REVISION_CODE_ANNOTATION] ?? "AnalysisFailed",
          message:
            target.metadata.annotations?.[REVISION_REASON_ANNOTATION] ?? state.lastRollback?.reason ?? "",
        }
      : {
          type: "RolledBack",
          status: "False",
          reason: "NoRollback",
          message: "the current revision was not rolled back",
        };
    return [ready, progressing, degraded, rolledBack];
  }

  /** True when applying `object` would change `live` (someone edited a field the operator owns). */
  private async drifted(object: KubeObject, live: KubeObject): Promise<boolean> {
    const wouldBe = await this.options.client.applyDryRun(object);
    const content = (value: KubeObject) =>
      JSON.stringify([value["spec"], value["data"], value.metadata.labels, value.metadata.annotations]);
    const drift = content(wouldBe) !== content(live);
    if (drift)
      this.logger.info({ kind: object.kind, name: object.metadata.name }, "drift found; re-applying");
    return drift;
  }

  /** Server-side applies `object` unless the live object already carries the same rendered hash; returns what was written. */
  private async ensureApplied(object: KubeObject): Promise<KubeObject | undefined> {
    const stamped = withAppliedHash(object);
    const hash = stamped.metadata.annotations?.[APPLIED_HASH_ANNOTATION] ?? "";
    const id = objectKey(object.kind, object.metadata.namespace, object.metadata.name);
    const live = this.informers[object.kind]?.get(object.metadata.namespace, object.metadata.name ?? "");
    const unchanged =
      live?.metadata.annotations?.[APPLIED_HASH_ANNOTATION] === hash || this.lastApplied.get(id) === hash;
    if (unchanged && !(this.verify.delete(id) && live !== undefined && (await this.drifted(stamped, live)))) {
      return undefined;
    }
    const written = await this.options.client.apply(stamped);
    this.lastApplied.set(id, hash);
    this.verify.delete(id);
    this.logger.debug({ kind: object.kind, name: object.metadata.name }, "applied");
    return written;
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
}
