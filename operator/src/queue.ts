import type { Logger } from "@sessiontrack/runtime";

/** What a handler may ask for after a successful run. */
export interface WorkResult {
  /** Run this key again after this many milliseconds (polling a rollout step). */
  requeueAfterMs?: number;
}

/** Options for {@link WorkQueue}. */
export interface WorkQueueOptions {
  /** Keys processed at once; one key is never processed twice at the same time. */
  concurrency: number;
  /** First retry delay after a failure; doubles per consecutive failure. */
  baseBackoffMs: number;
  maxBackoffMs: number;
  /** Reports queue depth (pending keys) whenever it changes. */
  onDepth?: (depth: number) => void;
}

/**
 * Keyed work queue: a key waiting is queued once however often it is added (dedupe); a
 * key being processed is never processed concurrently, and an add during processing runs
 * it once more afterwards; failures retry with exponential backoff and full jitter.
 */
export class WorkQueue {
  private readonly pending: string[] = [];
  private readonly pendingSet = new Set<string>();
  private readonly active = new Set<string>();
  private readonly dirty = new Set<string>();
  private readonly failures = new Map<string, number>();
  private readonly delayed = new Map<string, { at: number; timer: NodeJS.Timeout }>();
  private paused = true;
  private closed = false;
  private idleWaiters: (() => void)[] = [];

  constructor(
    private readonly handler: (key: string) => Promise<WorkResult | void>,
    private readonly options: WorkQueueOptions,
    private readonly logger: Logger,
  ) {}

  /** Queues `key` now (deduplicated). */
  add(key: string): void {
    if (this.closed) return;
    const delayed = this.delayed.get(key);
    if (delayed !== undefined) {
      clearTimeout(delayed.timer);
      this.delayed.delete(key);
    }
    if (this.active.has(key)) {
      this.dirty.add(key);
      return;
    }
    if (this.pendingSet.has(key)) return;
    this.pendingSet.add(key);
    this.pending.push(key);
    this.reportDepth();
    this.pump();
  }

  /** Queues `key` after `ms`; an earlier pending delay for the key wins. */
  addAfter(key: string, ms: number): void {
    if (this.closed) return;
    const at = Date.now() + ms;
    const existing = this.delayed.get(key);
    if (existing !== undefined && existing.at <= at) return;
    if (existing !== undefined) clearTimeout(existing.timer);
    const timer = setTimeout(() => {
      this.delayed.delete(key);
      this.add(key);
    }, ms);
    timer.unref();
    this.delayed.set(key, { at, timer });
  }

  /** Starts (or resumes) handing keys to the handler. */
  start(): void {
    this.paused = false;
    this.pump();
  }

  /** Stops handing out keys; queued keys stay queued. */
  pause(): void {
    this.paused = true;
  }

  /** Pending keys (not counting ones being processed). */
  get depth(): number {
    return this.pending.length;
  }

  /** Resolves when nothing is pending or being processed. */
  async idle(): Promise<void> {
    if (this.pending.length === 0 && this.active.size === 0) return;
    await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
  }

  /** Drops everything and refuses new work; resolves when in-flight handlers finish. */
  async close(): Promise<void> {
    this.closed = true;
    this.paused = true;
    this.pending.length = 0;
    this.pendingSet.clear();
    for (const { timer } of this.delayed.values()) clearTimeout(timer);
    this.delayed.clear();
    await this.idle();
  }

  private reportDepth(): void {
    this.options.onDepth?.(this.pending.length);
  }

  private pump(): void {
    while (!this.paused && this.active.size < this.options.concurrency) {
      const index = this.pending.findIndex((key) => !this.active.has(key));
      if (index < 0) break;
      const [key] = this.pending.splice(index, 1);
      if (key === undefined) break;
      this.pendingSet.delete(key);
      this.reportDepth();
      this.active.add(key);
      void this.run(key);
    }
  }

  private async run(key: string): Promise<void> {
    try {
      const result = await this.handler(key);
      this.failures.delete(key);
      if (result?.requeueAfterMs !== undefined) this.addAfter(key, result.requeueAfterMs);
    } catch (error) {
      const attempt = (this.failures.get(key) ?? 0) + 1;
      this.failures.set(key, attempt);
      const ceiling = Math.min(this.options.maxBackoffMs, this.options.baseBackoffMs * 2 ** (attempt - 1));
      const delay = Math.round(ceiling / 2 + (Math.random() * ceiling) / 2);
      this.logger.warn(
        { err: error, key, attempt, retryInMs: delay },
        "work item failed; retrying with backoff",
      );
      this.addAfter(key, delay);
    } finally {
      this.active.delete(key);
      if (this.dirty.delete(key)) this.add(key);
      this.pump();
      if (this.pending.length === 0 && this.active.size === 0) {
        const waiters = this.idleWaiters;
        this.idleWaiters = [];
        for (const resolve of waiters) resolve();
      }
    }
  }
}
