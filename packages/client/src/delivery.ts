import * as grpc from "@grpc/grpc-js";
import { InvalidEventError, StorageUnavailableError } from "@sessiontrack/errors";
import type { StreamResponse } from "@sessiontrack/proto";
import { ChannelReadiness } from "./channel-readiness.js";
import type { CostMeter } from "./cost-meter.js";
import type { DiskSpool, SpoolSegment } from "./spool.js";
import type { DropReason } from "./types.js";
import { deserializeStreamResponse, serializeEncodedBatch, STREAM_PATH } from "./wire.js";
import type { EncodedBatch } from "./wire.js";

/** Tuning of a {@link DeliveryPipeline}, already defaulted by the client. */
export interface DeliverySettings {
  target: string;
  batchMaxEvents: number;
  batchMaxBytes: number;
  maxQueueEvents: number;
  maxInFlightBatches: number;
  ackTimeoutMs: number;
  flushIntervalMs: number;
  cpuBudgetPct: number;
}

/** How the pipeline tells the client about losses and trouble. */
export interface DeliveryReporter {
  drop(count: number, reason: DropReason): void;
  error(err: Error): void;
  /** Something settled (acked, rejected, dropped): flush() waiters may be done. */
  settled(): void;
  /** True while a flush() waits: everything queued should go out now. */
  flushPending(): boolean;
  /** Moves the capture calls the client noted into the pipelines, so a pump sends them in this batch. */
  takeNoted(): void;
  /** A batch was acknowledged; set only when the client has an onAck callback. */
  acked?: (frames: readonly Uint8Array[]) => void;
}

/**
 * Counters the pipeline keeps; `settledOwn` counts this client's events acked, rejected or
 * dropped. The client's pipelines (stable and canary) share one object.
 */
export interface DeliveryCounters {
  acked: number;
  duplicates: number;
  spooled: number;
  replayed: number;
  dropped: number;
  rejected: number;
  settledOwn: number;
}

interface InFlightBatch {
  batchSeq: number;
  frames: Uint8Array[];
  sentAtMs: number;
  /** The spool segment the frames came from; undefined when they were sent from memory. */
  segment: SpoolSegment | undefined;
  indexes: number[];
}

/** What an encoded event is assumed to weigh until events have been measured. */
export const INITIAL_AVERAGE_EVENT_BYTES = 1024;

/** How many events of `averageEventBytes` fill a batch under its two limits (at least one). */
export function eventsFillingBatch(
  batchMaxEvents: number,
  batchMaxBytes: number,
  averageEventBytes: number,
): number {
  return Math.max(1, Math.min(batchMaxEvents, Math.floor(batchMaxBytes / averageEventBytes)));
}
/** Keeps every StreamRequest under gRPC's default 4 MiB message limit. */
export const MAX_BATCH_BYTES = 3 * 1024 * 1024;
const BACKOFF_BASE_MS = 50;
const BACKOFF_CAP_MS = 2000;
const MAX_DEFER_FACTOR = 32;
/**
 * Events in the one batch sent on a stream that has not acked anything yet. While ingest is
 * down every retry opens a stream that fails; sending the whole spool backlog on each (up to
 * `maxInFlightBatches` batches of `batchMaxEvents`) cost the bot megabytes of serialization
 * per retry for nothing. One small probe batch finds out whether ingest is back.
 */
const PROBE_BATCH_EVENTS = 64;
/** A capture sends a partial batch once it is this share of the flush interval old. */
const EARLY_SEND = 0.75;
/** A timer due within this many ms of the wanted moment is left alone. */
const TIMER_SLACK_MS = 5;

/**
 * Moves captured events to ingest: memory queue → numbered batches on one long-lived
 * `Stream`, acks matched by batch_seq, and the disk spool whenever ingest is down, slow
 * or behind. Ordering rule: while the spool holds unsent events, new events go to the
 * spool behind them, so every session's events reach ingest in capture order.
 */
export class DeliveryPipeline {
  /** Captured events not encoded yet; {@link encodePending} turns them into {@link queue} frames. */
  private pending: unknown[] = [];
  /** Encoded events waiting to be sent. */
  queue: Uint8Array[] = [];
  /** Running average size of an encoded event, to tell a byte-full batch before encoding it. */
  private averageFrameBytes = INITIAL_AVERAGE_EVENT_BYTES;
  /** Bytes of the frames in {@link queue}. */
  private queueBytes = 0;
  private readonly inFlight = new Map<number, InFlightBatch>();
  private inFlightEventCount = 0;
  private readonly replaying: SpoolSegment[] = [];
  private nextBatchSeq = 1;
  private call: grpc.ClientDuplexStream<EncodedBatch, StreamResponse> | undefined;
  /**
   * No retry pending before this time. Starts as a double (not the small integer 0) because
   * the first outage stores a jittered time here: had the field to widen then, V8 would drop
   * the optimized code of every function that touches this object in the middle of the fault.
   */
  private retryAtMs = Number.NEGATIVE_INFINITY;
  private consecutiveFailures = 0;
  /**
   * True at start and from any failure until a stream acks something: meanwhile only one
   * small probe batch goes out. (A healthy stream that ingest closed while idle reopens
   * without probing.)
   */
  private probing = true;
  private downReported = false;
  private deferFactor = 1;
  /** When the oldest queued event was captured. */
  private queueSinceMs = 0;
  private timer: NodeJS.Timeout | undefined;
  private timerAtMs = 0;
  private immediate: NodeJS.Immediate | undefined;
  private stopped = false;
  private pumping = false;
  /** While ingest is unreachable, a pump runs when grpc-js's reconnect changes the channel's state. */
  private readonly readiness = new ChannelReadiness(
    () => this.kick(),
    (err) => this.reporter.error(err),
  );

  constructor(
    private grpcClient: grpc.Client,
    private readonly metadata: () => grpc.Metadata,
    private readonly spool: DiskSpool,
    private settings: DeliverySettings,
    private readonly reporter: DeliveryReporter,
    private readonly meter: CostMeter,
    /** Encodes one captured event; throws (InvalidEventError) for a bad one. */
    private readonly encodeEvent: (event: unknown) => Uint8Array,
    readonly counters: DeliveryCounters = newDeliveryCounters(),
  ) {}

  /** The `host:port` this pipeline delivers to. */
  get target(): string {
    return this.settings.target;
  }

  /**
   * Delivers to another ingest from now on (an ingest canary route appeared, moved or was
   * withdrawn). Unacked batches on the old stream go to the spool and are replayed to the
   * new target with the same event ids, so nothing is lost and ingest collapses repeats.
   */
  retarget(grpcClient: grpc.Client, target: string): void {
    if (this.stopped || target === this.settings.target) return;
    this.grpcClient = grpcClient;
    this.settings = { ...this.settings, target };
    this.retryAtMs = Number.NEGATIVE_INFINITY;
    this.consecutiveFailures = 0;
    this.downReported = false;
    if (this.call !== undefined || this.inFlight.size > 0)
      this.fail(new Error(`route moved to ${target}`), false);
    this.kick();
  }

  /** Running average size of an encoded event, bytes. */
  get averageEventBytes(): number {
    return this.averageFrameBytes;
  }

  /** Events sent and not yet acked. */
  get inFlightEvents(): number {
    return this.inFlightEventCount;
  }

  /** Bytes in the disk spool. */
  get spoolBytes(): number {
    return this.spool.totalBytes;
  }

  /**
   * Appends one event captured at `capturedAtMs` (it is encoded with its batch). A full
   * batch (`batchMaxEvents` or `batchMaxBytes`) is sent at once. A partial batch is sent by
   * the first event that finds it, at `nowMs`, three quarters of `flushIntervalMs` old, so
   * a busy bot's own event-loop turns carry the sends; a timer sends it at
   * `flushIntervalMs` when the bot goes quiet.
   */
  enqueue(event: unknown, capturedAtMs: number, nowMs = capturedAtMs): void {
    const waiting = this.pending.length + this.queue.length;
    if (waiting === 0) this.queueSinceMs = capturedAtMs;
    this.pending.push(event);
    if (
      waiting + 1 >= this.settings.batchMaxEvents ||
      this.queueBytes + this.pending.length * this.averageFrameBytes >= this.settings.batchMaxBytes ||
      nowMs - this.queueSinceMs >= this.settings.flushIntervalMs * this.deferFactor * EARLY_SEND
    ) {
      this.kick();
    }
    // Unless a pump is on its way (it sets the timer), the first queued event sets it: a kick
    // refused while sends are deferred must not leave the event waiting for the next capture.
    if (waiting === 0 && this.immediate === undefined && !this.pumping) this.schedule(nowMs);
  }

  /** Events waiting in memory (captured, not yet sent or spooled). */
  get queuedEvents(): number {
    return this.pending.length + this.queue.length;
  }

  /**
   * Encodes captured events in one tight loop (cheaper than one at a time between the
   * bot's own work: the encoder's code and buffer stay hot). A bad event is rejected and
   * reported; the rest go on.
   */
  private encodePending(): void {
    const pending = this.pending;
    if (pending.length === 0) return;
    this.pending = [];
    for (let i = 0; i < pending.length; i++) {
      let frame: Uint8Array;
      try {
        frame = this.encodeEvent(pending[i]);
      } catch (err) {
        this.rejectOwn(
          err instanceof InvalidEventError
            ? err
            : new InvalidEventError(
                `event could not be encoded: ${asError(err).message}`,
                {},
                { cause: err },
              ),
        );
        continue;
      }
      this.queue.push(frame);
      this.queueBytes += frame.length;
      this.averageFrameBytes += (frame.length - this.averageFrameBytes) / 16;
    }
  }

  /** Counts and reports one of this client's events as rejected. */
  private rejectOwn(err: Error): void {
    this.counters.rejected++;
    this.counters.settledOwn++;
    this.reporter.drop(1, "rejected");
    this.reporter.error(err);
    this.reporter.settled();
  }

  /** Runs a pump in this event-loop turn's check phase (no extra wake-up), unless work is being deferred. */
  kick(): void {
    if (this.immediate !== undefined || this.stopped || this.pumping || this.deferFactor > 1) return;
    this.immediate = setImmediate(() => {
      this.immediate = undefined;
      this.pump(this.reporter.flushPending());
    });
    this.immediate.unref();
  }

  /**
   * One round of background work: ack timeout check, then send or spool. Queued events go
   * out as full batches, or all of them once the oldest is due (or `force`: flush and
   * close); acks arriving do not turn a partial batch into many tiny ones. Then the one
   * timer is set for the next thing that needs time to pass, or cleared when nothing does.
   */
  pump(force: boolean): void {
    if (this.stopped) return;
    const start = process.hrtime.bigint();
    const now = Date.now();
    this.pumping = true;
    try {
      this.reporter.takeNoted();
      this.checkAckTimeout(now);
      this.encodePending();
      const { batchMaxEvents, batchMaxBytes, maxQueueEvents, flushIntervalMs } = this.settings;
      const queued = this.queue.length;
      // Deferral (CPU budget) may make batches bigger and rarer, but never pushes events to disk by itself.
      const due =
        force ||
        queued >= maxQueueEvents / 2 ||
        (queued > 0 && now - this.queueSinceMs >= flushIntervalMs * this.deferFactor * EARLY_SEND);
      const full = queued >= batchMaxEvents || this.queueBytes >= batchMaxBytes;
      this.moveEvents(now, due || full, !due);
    } catch (err) {
      this.reporter.error(asError(err));
    } finally {
      this.pumping = false;
      this.schedule(now);
      this.account(start);
    }
  }

  /**
   * Sets the timer to the earliest moment something needs doing: the oldest queued event's
   * flush deadline, an ack timeout, a retry after backoff, spool replay or a waiting
   * flush. A healthy, busy client thus has no timer wake-ups of its own.
   */
  private schedule(now: number): void {
    if (this.stopped) return;
    const { flushIntervalMs, ackTimeoutMs } = this.settings;
    let at = Infinity;
    if (this.queue.length > 0 || this.pending.length > 0) {
      at = this.queueSinceMs + flushIntervalMs * this.deferFactor;
    }
    const oldest = this.inFlight.values().next();
    if (oldest.done !== true) at = Math.min(at, oldest.value.sentAtMs + ackTimeoutMs + 1);
    if (this.spoolHasUnsent() || this.reporter.flushPending()) {
      at = Math.min(at, now < this.retryAtMs ? this.retryAtMs : now + flushIntervalMs);
    }
    if (at === Infinity) {
      if (this.timer !== undefined) {
        clearTimeout(this.timer);
        this.timer = undefined;
      }
      return;
    }
    if (this.timer !== undefined) {
      if (Math.abs(this.timerAtMs - at) < TIMER_SLACK_MS) return;
      clearTimeout(this.timer);
    }
    this.timerAtMs = at;
    this.timer = setTimeout(this.onTimer, Math.max(0, at - now));
    this.timer.unref();
  }

  private readonly onTimer = (): void => {
    this.timer = undefined;
    this.pump(this.reporter.flushPending());
  };

  /** Puts everything not acked (in flight and queued) into the spool, e.g. on a flush timeout. */
  spillAll(reason: string): void {
    if (this.inFlight.size > 0 || this.call !== undefined) this.fail(new Error(reason), false);
    this.spillQueue();
  }

  /** Spills what is left, cancels the stream and closes the spool; the pipeline stays stopped. */
  stop(): void {
    if (this.stopped) return;
    this.spillAll("client closed");
    this.stopped = true;
    if (this.immediate !== undefined) clearImmediate(this.immediate);
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.spool.close();
  }

  private moveEvents(now: number, sendQueued: boolean, fullOnly: boolean): void {
    let canSend = now >= this.retryAtMs;
    const spoolBacklog = this.spoolHasUnsent();
    if (canSend && this.call === undefined && ((sendQueued && this.queue.length > 0) || spoolBacklog)) {
      // A channel in TRANSIENT_FAILURE would fail the call at once: spool and wait for it instead.
      if (this.readiness.callable(this.grpcClient)) this.openStream();
      else canSend = false;
    }
    if (!canSend || spoolBacklog) {
      this.spillQueue();
      if (canSend) this.replaySpool();
      return;
    }
    if (sendQueued) this.sendQueue(fullOnly);
    if (this.queue.length > this.settings.maxQueueEvents) this.spillQueue();
  }

  /** Batches in flight at most: one while the stream is unproven, else `maxInFlightBatches`. */
  private inFlightLimit(): number {
    return this.probing ? 1 : this.settings.maxInFlightBatches;
  }

  /** Events per batch at most: a small probe while the stream is unproven, else `batchMaxEvents`. */
  private batchLimit(): number {
    return this.probing
      ? Math.min(PROBE_BATCH_EVENTS, this.settings.batchMaxEvents)
      : this.settings.batchMaxEvents;
  }

  private spoolHasUnsent(): boolean {
    if (!this.spool.drained) return true;
    for (const segment of this.replaying) if (segment.hasPending) return true;
    return false;
  }

  /**
   * Sends queued events in batches of up to `batchMaxEvents` events, closed once they reach
   * `batchMaxBytes` (and never above the 3 MiB message cap). `fullOnly` leaves a partial
   * last batch in the queue for the next tick.
   */
  private sendQueue(fullOnly: boolean): void {
    const { batchMaxBytes } = this.settings;
    const batchMaxEvents = this.batchLimit();
    while (this.inFlight.size < this.inFlightLimit() && this.queue.length > 0 && this.call !== undefined) {
      const queue = this.queue;
      let n = 0;
      let bytes = 0;
      let capped = false;
      while (n < queue.length && n < batchMaxEvents && bytes < batchMaxBytes) {
        const size = queue[n]!.length;
        if (n > 0 && bytes + size > MAX_BATCH_BYTES) {
          capped = true;
          break;
        }
        bytes += size;
        n++;
      }
      if (fullOnly && !capped && n < batchMaxEvents && bytes < batchMaxBytes) return;
      const batch = n === queue.length ? queue : queue.slice(0, n);
      this.queue = n === queue.length ? [] : queue.slice(n);
      this.queueBytes -= bytes;
      this.send(batch, undefined, []);
    }
  }

  private replaySpool(): void {
    while (this.inFlight.size < this.inFlightLimit() && this.call !== undefined) {
      let segment = this.replaying.find((s) => s.hasPending);
      if (segment === undefined) {
        segment = this.spool.loadNext((path, bytes) =>
          this.reporter.error(
            new Error(`spool file ${path}: ignored a torn or corrupt tail of ${bytes} bytes`),
          ),
        );
        if (segment === undefined) return;
        this.replaying.push(segment);
      }
      const { indexes, frames } = segment.takePending(this.batchLimit(), MAX_BATCH_BYTES);
      if (frames.length === 0) return;
      this.send(frames, segment, indexes);
    }
  }

  private spillQueue(): void {
    this.encodePending();
    if (this.queue.length === 0) return;
    const frames = this.queue;
    this.queue = [];
    this.queueBytes = 0;
    this.writeToSpool(frames);
  }

  private writeToSpool(frames: Uint8Array[]): void {
    if (frames.length === 0) return;
    const result = this.spool.append(frames);
    this.counters.spooled += result.written;
    const lost = frames.length - result.written;
    if (result.error !== undefined) this.reporter.error(result.error);
    if (lost > 0) {
      this.counters.dropped += lost;
      this.counters.settledOwn += lost;
      this.reporter.drop(lost, "spool_full");
      this.reporter.settled();
    }
  }

  private openStream(): void {
    const call = this.grpcClient.makeBidiStreamRequest(
      STREAM_PATH,
      serializeEncodedBatch,
      deserializeStreamResponse,
      this.metadata(),
      {},
    );
    this.call = call;
    call.on("data", (response: StreamResponse) => {
      if (this.call !== call) return;
      const start = process.hrtime.bigint();
      try {
        this.onResponse(response);
      } catch (err) {
        this.reporter.error(asError(err));
      } finally {
        this.account(start);
      }
    });
    // 'status' always ends a call; 'error' needs a listener so grpc-js does not throw it.
    call.on("error", () => undefined);
    call.on("status", (status: grpc.StatusObject) => {
      if (this.call !== call) return;
      if (this.inFlight.size === 0 && status.code === grpc.status.OK) {
        // Ingest closed an idle stream (e.g. connection age limit): reopen on demand, no outage.
        this.call = undefined;
        return;
      }
      this.fail(
        new Error(`stream to ${this.settings.target} ended: ${grpc.status[status.code]} ${status.details}`),
      );
    });
  }

  private send(frames: Uint8Array[], segment: SpoolSegment | undefined, indexes: number[]): void {
    const batchSeq = this.nextBatchSeq++;
    this.inFlight.set(batchSeq, { batchSeq, frames, sentAtMs: Date.now(), segment, indexes });
    this.inFlightEventCount += frames.length;
    const overheadPct = this.meter.takeOverheadReport();
    this.call!.write(overheadPct === undefined ? { batchSeq, frames } : { batchSeq, frames, overheadPct });
  }

  private onResponse(response: StreamResponse): void {
    const result = response.result;
    if (result === undefined) return;
    const batch = this.inFlight.get(result.value.batchSeq);
    if (batch === undefined) return;
    if (result.$case === "rejected" && result.value.retryable) {
      const { code, message } = result.value;
      this.fail(
        new StorageUnavailableError(
          `ingest refused batch ${batch.batchSeq} for now (code ${code}): ${message}`,
        ),
      );
      return;
    }
    this.inFlight.delete(batch.batchSeq);
    this.inFlightEventCount -= batch.frames.length;
    if (result.$case === "ack") {
      this.settleAcked(batch, result.value.duplicates);
    } else if (batch.frames.length > 1) {
      // One bad event rejects its whole batch: resend one by one so only the bad ones are lost.
      batch.frames.forEach((frame, i) =>
        this.send([frame], batch.segment, batch.segment ? [batch.indexes[i]!] : []),
      );
    } else {
      this.settleRejected(
        batch,
        `ingest rejected event (code ${result.value.code}): ${result.value.message}`,
      );
    }
    // A pump only when there is something to send; otherwise the ack just re-aims the timer.
    if (this.queuedEvents > 0 || this.spoolHasUnsent() || this.reporter.flushPending()) this.kick();
    else this.schedule(Date.now());
  }

  private settleAcked(batch: InFlightBatch, duplicates: number): void {
    const n = batch.frames.length;
    this.counters.acked += n;
    this.counters.duplicates += duplicates;
    this.consecutiveFailures = 0;
    this.downReported = false;
    this.probing = false;
    this.reporter.acked?.(batch.frames);
    if (batch.segment === undefined) {
      this.counters.settledOwn += n;
    } else {
      this.counters.replayed += n;
      if (!batch.segment.adopted) this.counters.settledOwn += n;
      this.finishSpoolFrames(batch);
    }
    this.reporter.settled();
  }

  private settleRejected(batch: InFlightBatch, message: string): void {
    this.counters.rejected += batch.frames.length;
    if (batch.segment === undefined || !batch.segment.adopted)
      this.counters.settledOwn += batch.frames.length;
    if (batch.segment !== undefined) this.finishSpoolFrames(batch);
    this.reporter.drop(batch.frames.length, "rejected");
    this.reporter.error(new InvalidEventError(message));
    this.reporter.settled();
  }

  private finishSpoolFrames(batch: InFlightBatch): void {
    const segment = batch.segment!;
    segment.markDone(batch.indexes);
    if (!segment.finished) return;
    this.spool.release(segment);
    this.replaying.splice(this.replaying.indexOf(segment), 1);
  }

  private checkAckTimeout(now: number): void {
    const oldest = this.inFlight.values().next();
    if (oldest.done === true) return;
    if (now - oldest.value.sentAtMs > this.settings.ackTimeoutMs) {
      this.fail(
        new StorageUnavailableError(
          `ingest at ${this.settings.target} sent no ack for batch ${oldest.value.batchSeq} within ${this.settings.ackTimeoutMs} ms; spooling`,
        ),
      );
    }
  }

  /**
   * Ingest is down or slow: drop the stream, put unacked memory batches and the queue in
   * the spool (same event ids), rewind spool replay, and retry after a jittered backoff.
   */
  private fail(err: Error, backoff = true): void {
    const call = this.call;
    this.call = undefined;
    this.probing = true;
    try {
      call?.cancel();
    } catch {
      // Already closed.
    }
    const frames: Uint8Array[] = [];
    for (const batch of this.inFlight.values()) {
      if (batch.segment === undefined) frames.push(...batch.frames);
    }
    for (const segment of this.replaying) segment.resetInFlight();
    this.inFlight.clear();
    this.inFlightEventCount = 0;
    this.writeToSpool(frames);
    this.spillQueue();
    // Called from stream events too: make sure a pump runs to replay (after the backoff).
    queueMicrotask(() => this.schedule(Date.now()));
    if (!backoff) return;
    this.consecutiveFailures++;
    const ceiling = Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** this.consecutiveFailures);
    this.retryAtMs = Date.now() + ceiling / 2 + Math.random() * (ceiling / 2);
    if (!this.downReported) {
      this.downReported = true;
      this.reporter.error(err);
    }
  }

  /**
   * Counts background work that ran from `start` until now (the client's too) against the
   * CPU budget; at the end of each window, defers sends more or less.
   */
  account(start: bigint): void {
    const windowClosed = this.meter.recordBackground(start);
    if (!windowClosed) return;
    const pct = this.meter.cpuPct;
    if (pct > this.settings.cpuBudgetPct) this.deferFactor = Math.min(MAX_DEFER_FACTOR, this.deferFactor * 2);
    else if (pct < this.settings.cpuBudgetPct / 2) this.deferFactor = Math.max(1, this.deferFactor / 2);
  }
}

/** Fresh zeroed {@link DeliveryCounters}. */
export function newDeliveryCounters(): DeliveryCounters {
  return { acked: 0, duplicates: 0, spooled: 0, replayed: 0, dropped: 0, rejected: 0, settledOwn: 0 };
}

/** Any thrown value as an Error. */
export function asError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}
