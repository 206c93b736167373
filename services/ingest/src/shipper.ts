// The shipper: delivers WAL records at-least-once to every sink, each behind its own cursor.
import { StorageUnavailableError } from "@sessiontrack/errors";
import type { Logger } from "@sessiontrack/runtime";
import type { WalRecord, WriteAheadLog } from "@sessiontrack/wal";

import type { ShipperMetrics } from "./metrics.js";
import { CanaryDeliveryError, splitByCanaryCohort, type CanarySinkRoutes } from "./shipper-canary.js";
import {
  codeName,
  encodeEventsRequest,
  isTransient,
  type SinkName,
  type SinkTransport,
} from "./shipper-sinks.js";

/** Retry timing. Permanent rejections wait longer, but are retried all the same. */
export interface ShipperBackoff {
  /** First retry after a transient failure (sink down, slow, overloaded). */
  baseMs: number;
  /** Longest wait between transient retries. */
  maxMs: number;
  /** Wait between retries of a batch the sink rejected as invalid or unauthorized. */
  permanentMs: number;
}

/** How to run a {@link Shipper}. */
export interface ShipperOptions {
  wal: WriteAheadLog;
  sinks: readonly SinkTransport[];
  metrics: ShipperMetrics;
  logger: Logger;
  /** Bounds of one batch read from the WAL and sent in one call. */
  batch: { maxRecords: number; maxBytes: number };
  backoff?: Partial<ShipperBackoff>;
  /** Jitter source, injectable for tests. */
  random?: () => number;
  /** The index/archive canary route in force, if ingest follows one. */
  canary?: CanarySinkRoutes;
}

/** What a sink's loop is doing, for erasure errors and tests. */
export interface SinkStatus {
  sink: SinkName;
  cursor: number;
  /** Failed attempts since the last success. */
  failures: number;
  /** The last failure, while failing. */
  lastError: { code: string; message: string; permanent: boolean } | undefined;
}

const DEFAULT_BACKOFF: ShipperBackoff = { baseMs: 100, maxMs: 5_000, permanentMs: 30_000 };

/**
 * Ships the write-ahead log to every sink. Each sink has a loop that reads the records
 * after its cursor, sends them as one batch, and confirms the cursor only after the sink
 * acknowledged the batch — so a crash anywhere means a resend, never a gap (sinks are
 * idempotent on event_id). Loops are independent: one sink being down never holds back
 * another, and the WAL deletes a segment only once every sink confirmed it.
 */
export class Shipper {
  private readonly loops: SinkLoop[];
  private unsubscribe: (() => void) | undefined;

  constructor(private readonly options: ShipperOptions) {
    const backoff = { ...DEFAULT_BACKOFF, ...options.backoff };
    this.loops = options.sinks.map(
      (transport) =>
        new SinkLoop(
          transport,
          options,
          backoff,
          options.random ?? Math.random,
          options.logger.child({ sink: transport.name }),
        ),
    );
  }

  /** Names of the sinks shipped to. */
  get sinkNames(): SinkName[] {
    return this.loops.map((loop) => loop.name);
  }

  /** Starts every sink's loop; appends wake them up. */
  start(): void {
    this.unsubscribe = this.options.wal.onDurable(() => {
      for (const loop of this.loops) loop.wake();
    });
    for (const loop of this.loops) loop.start();
  }

  /**
   * Retries every failing sink now rather than at the end of its backoff: the canary route
   * changed, so a batch held by a failing canary may go to the stable sink now.
   */
  routeChanged(): void {
    for (const loop of this.loops) loop.retryNow();
  }

  /** Each sink's cursor and failure state. */
  status(): SinkStatus[] {
    return this.loops.map((loop) => loop.status());
  }

  /**
   * Resolves once every sink confirmed every record up to `lsn`. Rejects with
   * StorageUnavailableError naming the sinks still behind (and why) after `timeoutMs`.
   */
  async waitForShipped(lsn: number, timeoutMs: number): Promise<void> {
    const behind = await Promise.all(this.loops.map((loop) => loop.waitFor(lsn, timeoutMs)));
    const late = this.loops.filter((_, index) => !behind[index]);
    if (late.length === 0) return;
    const why = late.map((loop) => {
      const status = loop.status();
      const error =
        status.lastError === undefined
          ? "no error reported, still sending"
          : `last error ${status.lastError.code}: ${status.lastError.message}`;
      return `${status.sink} has confirmed up to lsn ${status.cursor} (${error})`;
    });
    throw new StorageUnavailableError(
      `not every acknowledged event reached the sinks within ${timeoutMs} ms (needed lsn ${lsn}): ${why.join("; ")}`,
    );
  }

  /**
   * Stops the loops. For up to `drainMs` they keep shipping what is already durable (a
   * failing sink stops at once); then in-flight calls are cancelled. Whatever is not
   * confirmed stays in the WAL and ships after the next start.
   */
  async stop(drainMs: number): Promise<void> {
    this.unsubscribe?.();
    await Promise.all(this.loops.map((loop) => loop.stop(drainMs)));
  }
}

/** One sink's delivery loop. */
class SinkLoop {
  readonly name: SinkName;
  private running: Promise<void> | undefined;
  private draining = false;
  private stopping = false;
  private readonly abort = new AbortController();
  private woken = false;
  private wakeUp: (() => void) | undefined;
  private interruptSleep: (() => void) | undefined;
  private failures = 0;
  private lastError: SinkStatus["lastError"];
  private readonly waiters = new Set<{ lsn: number; resolve: (reached: boolean) => void }>();

  constructor(
    private readonly transport: SinkTransport,
    private readonly options: ShipperOptions,
    private readonly backoff: ShipperBackoff,
    private readonly random: () => number,
    private readonly logger: Logger,
  ) {
    this.name = transport.name;
  }

  start(): void {
    this.running ??= this.run().catch((error: unknown) => {
      this.logger.fatal({ err: error }, "shipper: loop crashed; this sink receives nothing until restart");
    });
  }

  wake(): void {
    this.woken = true;
    this.wakeUp?.();
  }

  retryNow(): void {
    this.wake();
    this.interruptSleep?.();
  }

  status(): SinkStatus {
    return {
      sink: this.name,
      cursor: this.options.wal.getCursor(this.name),
      failures: this.failures,
      lastError: this.lastError,
    };
  }

  /** True once the cursor reaches `lsn`, false after `timeoutMs`. */
  waitFor(lsn: number, timeoutMs: number): Promise<boolean> {
    if (this.options.wal.getCursor(this.name) >= lsn) return Promise.resolve(true);
    return new Promise((resolve) => {
      const waiter = {
        lsn,
        resolve: (reached: boolean) => {
          clearTimeout(timer);
          this.waiters.delete(waiter);
          resolve(reached);
        },
      };
      const timer = setTimeout(() => waiter.resolve(false), timeoutMs);
      this.waiters.add(waiter);
      this.wake();
      // Someone is waiting (an erasure): retry now rather than at the end of a backoff.
      this.interruptSleep?.();
    });
  }

  async stop(drainMs: number): Promise<void> {
    this.draining = true;
    this.wake();
    this.interruptSleep?.();
    if (this.running !== undefined) {
      let timer: NodeJS.Timeout | undefined;
      const drained = await Promise.race([
        this.running.then(() => true),
        new Promise<false>((resolve) => {
          timer = setTimeout(() => resolve(false), drainMs);
        }),
      ]);
      clearTimeout(timer);
      if (!drained) this.logger.warn({ drainMs }, "shipper: drain time is up; the rest ships after restart");
    }
    this.stopping = true;
    this.abort.abort();
    this.wake();
    await this.running;
    for (const waiter of this.waiters) waiter.resolve(false);
  }

  private async run(): Promise<void> {
    const { wal, batch, metrics } = this.options;
    while (!this.stopping) {
      const cursor = wal.getCursor(this.name);
      if (cursor >= wal.lastDurableLsn()) {
        if (this.draining) return;
        await this.idle();
        continue;
      }
      let lastLsn = cursor;
      const started = process.hrtime.bigint();
      try {
        const records = await wal.readFrom(cursor + 1, batch);
        if (records.length === 0) {
          await this.idle();
          continue;
        }
        lastLsn = records.at(-1)!.lsn;
        // The StoredEvents go out exactly as the WAL holds them; a record that is not one
        // is rejected by the sink (INVALID_ARGUMENT) and held like any permanent rejection.
        await this.deliver(records);
        await wal.confirm(this.name, lastLsn);
        metrics.shippedEvents.inc({ sink: this.name }, records.length);
        metrics.shippedBatches.inc({ sink: this.name });
        metrics.lastSuccess.set({ sink: this.name }, Date.now() / 1000);
        metrics.batchSeconds.observe({ sink: this.name }, Number(process.hrtime.bigint() - started) / 1e9);
        metrics.stalled.set({ sink: this.name }, 0);
        if (this.failures > 0) {
          this.logger.info({ failures: this.failures, lsn: lastLsn }, "shipper: sink recovered");
        }
        this.failures = 0;
        this.lastError = undefined;
        this.notifyWaiters(lastLsn);
      } catch (error) {
        if (this.stopping) return;
        this.recordFailure(error, cursor + 1, lastLsn);
        if (this.draining) return;
        await this.sleep(this.retryDelay(isTransient(error)));
      }
    }
  }

  /**
   * Sends one batch. Under a canary route for this sink, the canary cohort's events go to
   * the canary and the others to the stable sink, in parallel; the batch counts as
   * delivered only when both parts were, otherwise both are sent again (the sinks are
   * idempotent on event_id). The route is read afresh each time, so a held batch follows
   * a rollback or promotion and then goes to the stable sink whole.
   */
  private async deliver(records: WalRecord[]): Promise<void> {
    const signal = this.abort.signal;
    const canary = this.options.canary?.targetFor(this.name);
    if (canary === undefined) {
      await this.transport.deliver(encodeEventsRequest(records), signal);
      return;
    }
    const parts = splitByCanaryCohort(records, canary.weightPercent);
    const [stable, cohort] = await Promise.allSettled([
      parts.stable.length === 0
        ? undefined
        : this.transport.deliver(encodeEventsRequest(parts.stable), signal),
      parts.canary.length === 0
        ? undefined
        : canary.transport.deliver(encodeEventsRequest(parts.canary), signal).catch((error: unknown) => {
            throw new CanaryDeliveryError(canary.address, error);
          }),
    ]);
    if (stable.status === "rejected") throw stable.reason;
    if (cohort.status === "rejected") throw cohort.reason;
    this.options.metrics.canaryEvents.inc({ sink: this.name }, parts.canary.length);
  }

  private recordFailure(error: unknown, fromLsn: number, toLsn: number): void {
    const code = codeName(error);
    const permanent = !isTransient(error);
    const message = error instanceof Error ? error.message : String(error);
    this.failures += 1;
    this.lastError = { code, message, permanent };
    this.options.metrics.errors.inc({ sink: this.name, code });
    const context = { err: error, code, fromLsn, toLsn, failures: this.failures };
    if (permanent) {
      // Never skipped: the batch is held (the cursor does not move) and retried slowly,
      // so the fix — a sink upgrade, a corrected key — delivers it; the WAL keeps it meanwhile.
      this.options.metrics.stalled.set({ sink: this.name }, 1);
      this.logger.error(
        context,
        `shipper: ${this.name} REJECTED a batch; it is held in the WAL (not skipped) and retried every ${this.backoff.permanentMs} ms until the sink accepts it`,
      );
    } else if (this.failures === 1 || this.failures % 20 === 0) {
      this.logger.warn(context, `shipper: ${this.name} unavailable; retrying with backoff`);
    }
  }

  /** Exponential backoff with jitter (half fixed, half random) for transient failures. */
  private retryDelay(transient: boolean): number {
    if (!transient) return this.backoff.permanentMs;
    const ceiling = Math.min(this.backoff.maxMs, this.backoff.baseMs * 2 ** Math.min(this.failures - 1, 20));
    return ceiling / 2 + (this.random() * ceiling) / 2;
  }

  private notifyWaiters(confirmed: number): void {
    for (const waiter of this.waiters) if (waiter.lsn <= confirmed) waiter.resolve(true);
  }

  /** Waits for an append (or a stop/drain); returns at once if one happened meanwhile. */
  private async idle(): Promise<void> {
    if (this.woken || this.stopping) {
      this.woken = false;
      return;
    }
    await new Promise<void>((resolve) => {
      this.wakeUp = resolve;
    });
    this.wakeUp = undefined;
    this.woken = false;
  }

  /** Sleeps between retries; a stop, a drain, a waiter or a route change cuts it short, new appends do not. */
  private async sleep(ms: number): Promise<void> {
    if (this.stopping || this.draining) return;
    await new Promise<void>((resolve) => {
      let timer: NodeJS.Timeout | undefined = undefined;
      const done = (): void => {
        clearTimeout(timer);
        this.interruptSleep = undefined;
        resolve();
      };
      timer = setTimeout(done, ms);
      this.interruptSleep = done;
    });
  }
}
