import type { Logger } from "@sessiontrack/runtime";

import type { KubeClient } from "./client.js";
import { isStatus, type KubeObject } from "./types.js";

/** What an informer tells its handler. `resync` re-announces every cached object after a relist. */
export type InformerEventType = "added" | "modified" | "deleted" | "resync";

/** Options for {@link Informer}. */
export interface InformerOptions {
  apiVersion: string;
  kind: string;
  /** One namespace, or every namespace when undefined. */
  namespace?: string;
  labelSelector?: string;
  /**
   * A watch that delivers nothing (not even a bookmark) for this long is presumed dead
   * and replaced by a relist: the JS client's watches can go quiet without an error.
   */
  silenceMs: number;
  /** Full relist period, which also re-announces every object (missed-event safety net). */
  resyncMs: number;
}

const key = (object: KubeObject): string =>
  `${object.metadata.namespace ?? ""}/${object.metadata.name ?? ""}`;

/**
 * List-then-watch cache of one kind. A 410 Gone (resourceVersion too old) relists from
 * scratch; a watch refused with 429 is resumed from the same resourceVersion after a backoff;
 * a silent watch is aborted by a watchdog and relisted; every `resyncMs` a full relist diffs
 * against the cache and re-announces all objects.
 */
export class Informer {
  private readonly cache = new Map<string, KubeObject>();
  private resourceVersion = "";
  private stopWatch: (() => void) | undefined;
  private watchdog: NodeJS.Timeout | undefined;
  private resyncTimer: NodeJS.Timeout | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private running = false;
  private synced = false;
  private generation = 0;
  private failures = 0;
  private readonly waiters = new Set<{
    id: string;
    resourceVersion: string;
    resolve: (seen: boolean) => void;
  }>();
  /** Relists done so far, by cause (for metrics and tests). */
  readonly relists = { initial: 0, gone: 0, silent: 0, periodic: 0, error: 0 };

  constructor(
    private readonly client: KubeClient,
    private readonly options: InformerOptions,
    private readonly handler: (type: InformerEventType, object: KubeObject) => void,
    private readonly logger: Logger,
  ) {}

  /** Lists once (the cache is complete when this resolves) and starts watching. */
  async start(): Promise<void> {
    this.running = true;
    // The first list retries transient failures (an API server still starting, a CRD's
    // storage initialising); the cache must be complete before anyone reads it.
    for (let attempt = 0; ; attempt++) {
      try {
        await this.relist("initial");
        break;
      } catch (error) {
        if (!this.running) return;
        const delay = Math.min(5_000, 100 * 2 ** attempt);
        this.logger.warn(
          { err: error, kind: this.options.kind, retryInMs: delay },
          isStatus(error, 404)
            ? "informer: kind not served (is the CRD installed?); retrying"
            : "informer: initial list failed; retrying",
        );
        await new Promise((resolve) => setTimeout(resolve, delay));
      }
    }
    this.synced = true;
    this.resyncTimer = setInterval(() => void this.relistSafely("periodic"), this.options.resyncMs);
    this.resyncTimer.unref();
  }

  /** Stops watching; the cache stays readable. */
  stop(): void {
    this.running = false;
    for (const waiter of this.waiters) waiter.resolve(false);
    this.generation += 1;
    clearInterval(this.resyncTimer);
    clearTimeout(this.watchdog);
    clearTimeout(this.retryTimer);
    this.stopWatch?.();
    this.stopWatch = undefined;
  }

  get hasSynced(): boolean {
    return this.synced;
  }

  /** The resourceVersion the next watch resumes from (the last one listed or seen). */
  get lastResourceVersion(): string {
    return this.resourceVersion;
  }

  /** The cached object, if any. */
  get(namespace: string | undefined, name: string): KubeObject | undefined {
    return this.cache.get(`${namespace ?? ""}/${name}`);
  }

  /**
   * Resolves true once the cache holds `resourceVersion` of the object (or a later event of
   * it), false after `timeoutMs`. A controller that just wrote an object waits for this, so
   * its next reconcile never acts on the version before its own write.
   */
  waitForVersion(
    namespace: string | undefined,
    name: string,
    resourceVersion: string,
    timeoutMs: number,
  ): Promise<boolean> {
    const id = `${namespace ?? ""}/${name}`;
    if (this.cache.get(id)?.metadata.resourceVersion === resourceVersion) return Promise.resolve(true);
    return new Promise((resolve) => {
      const waiter = {
        id,
        resourceVersion,
        resolve: (seen: boolean) => {
          clearTimeout(timer);
          this.waiters.delete(waiter);
          resolve(seen);
        },
      };
      const timer = setTimeout(() => waiter.resolve(false), timeoutMs);
      timer.unref();
      this.waiters.add(waiter);
    });
  }

  private settle(id: string, object: KubeObject): void {
    for (const waiter of this.waiters) {
      if (waiter.id === id && waiter.resourceVersion === object.metadata.resourceVersion)
        waiter.resolve(true);
    }
  }

  /** Every cached object. */
  list(): KubeObject[] {
    return [...this.cache.values()];
  }

  private async relistSafely(cause: keyof Informer["relists"]): Promise<void> {
    try {
      await this.relist(cause);
    } catch (error) {
      this.scheduleRetry(error);
    }
  }

  private scheduleRetry(error: unknown): void {
    this.afterBackoff(error, "informer: list failed; retrying", () => void this.relistSafely("error"));
  }

  private scheduleWatchRetry(generation: number, error: unknown): void {
    this.afterBackoff(error, "informer: watch refused; resuming it after a backoff", () => {
      if (generation !== this.generation) return;
      void this.openWatch(generation).catch((failure: unknown) => this.scheduleRetry(failure));
    });
  }

  /** Runs `retry` after an exponential backoff with jitter, longer with each consecutive failure. */
  private afterBackoff(error: unknown, message: string, retry: () => void): void {
    if (!this.running) return;
    this.failures += 1;
    const delay = Math.min(30_000, 250 * 2 ** Math.min(this.failures, 7)) * (0.5 + Math.random() / 2);
    this.logger.warn({ err: error, kind: this.options.kind, retryInMs: Math.round(delay) }, message);
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(retry, delay);
    this.retryTimer.unref();
  }

  private async relist(cause: keyof Informer["relists"]): Promise<void> {
    if (!this.running) return;
    const { apiVersion, kind, namespace, labelSelector } = this.options;
    this.generation += 1;
    const generation = this.generation;
    this.stopWatch?.();
    this.stopWatch = undefined;
    clearTimeout(this.watchdog);
    this.relists[cause] += 1;
    const { items, resourceVersion } = await this.client.list(apiVersion, kind, namespace, labelSelector);
    if (generation !== this.generation || !this.running) return;
    this.failures = 0;
    const seen = new Set<string>();
    for (const item of items) {
      const id = key(item);
      seen.add(id);
      const previous = this.cache.get(id);
      this.cache.set(id, item);
      this.settle(id, item);
      if (previous === undefined) this.handler("added", item);
      else if (previous.metadata.resourceVersion !== item.metadata.resourceVersion)
        this.handler("modified", item);
      else if (cause === "periodic" || cause === "silent" || cause === "gone") this.handler("resync", item);
    }
    for (const [id, previous] of this.cache) {
      if (!seen.has(id)) {
        this.cache.delete(id);
        this.handler("deleted", previous);
      }
    }
    this.resourceVersion = resourceVersion;
    if (cause !== "initial") this.logger.info({ kind, cause, objects: items.length }, "informer: relisted");
    await this.openWatch(generation);
  }

  private armWatchdog(generation: number): void {
    clearTimeout(this.watchdog);
    this.watchdog = setTimeout(() => {
      if (generation !== this.generation) return;
      this.logger.warn(
        { kind: this.options.kind, silentMs: this.options.silenceMs },
        "informer: watch went silent; relisting",
      );
      void this.relistSafely("silent");
    }, this.options.silenceMs);
    this.watchdog.unref();
  }

  private async openWatch(generation: number): Promise<void> {
    const { apiVersion, kind, namespace, labelSelector } = this.options;
    this.armWatchdog(generation);
    // Server-side timeout a little under the silence limit keeps healthy watches cycling.
    const timeoutSeconds = Math.max(
      1,
      Math.floor((this.options.silenceMs / 1000) * (0.8 + Math.random() * 0.1)),
    );
    let ended = false;
    const stop = await this.client.watch(
      apiVersion,
      kind,
      namespace,
      this.resourceVersion,
      (event) => {
        if (generation !== this.generation) return;
        this.failures = 0;
        this.armWatchdog(generation);
        const rv = event.object.metadata.resourceVersion;
        if (rv !== undefined) this.resourceVersion = rv;
        if (event.type === "BOOKMARK") return;
        const id = key(event.object);
        if (event.type === "DELETED") {
          this.cache.delete(id);
          this.handler("deleted", event.object);
        } else {
          const existed = this.cache.has(id);
          this.cache.set(id, event.object);
          this.settle(id, event.object);
          this.handler(existed ? "modified" : "added", event.object);
        }
      },
      (error) => {
        ended = true;
        if (generation !== this.generation || !this.running) return;
        if (isStatus(error, 410)) {
          this.logger.info({ kind }, "informer: resourceVersion gone (410); relisting from scratch");
          void this.relistSafely("gone");
        } else if (isStatus(error, 429)) {
          // Refused for now (API server overloaded, or the kind's storage re-initialising after a
          // CRD change): resume the same watch after a backoff, as client-go's reflector does. A
          // relist would cost the server more, and a resourceVersion that is gone by then gets a 410.
          this.scheduleWatchRetry(generation, error);
        } else if (error !== undefined && error !== null) {
          this.scheduleRetry(error);
        } else {
          // A clean end (server timeout): resume from the last resourceVersion seen.
          void this.openWatch(generation).catch((failure: unknown) => this.scheduleRetry(failure));
        }
      },
      { timeoutSeconds, ...(labelSelector === undefined ? {} : { labelSelector }) },
    );
    if (generation !== this.generation) stop();
    else {
      this.stopWatch = stop;
      // Established (the API server answered 200): a quiet healthy watch must not keep a long backoff.
      if (!ended) this.failures = 0;
    }
  }
}
