import * as grpc from "@grpc/grpc-js";
import { ConfigError, InvalidEventError } from "@sessiontrack/errors";
import type { CaptureConfig } from "@sessiontrack/proto";
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { callBack } from "./callbacks.js";
import { CaptureConfigWatcher } from "./config-watcher.js";
import { CAPTURE_SAMPLE_EVERY, CostMeter } from "./cost-meter.js";
import { asError, DeliveryPipeline, eventsFillingBatch, newDeliveryCounters } from "./delivery.js";
import type { DeliveryReporter, DeliverySettings } from "./delivery.js";
import { IngestRoutes } from "./ingest-routes.js";
import {
  decideSession,
  newSessionState,
  RecordedKind,
  recordedPayload,
  SessionRecorder,
} from "./session-capture.js";
import type { SessionState } from "./session-capture.js";
import { positive, requiredString, spoolDirOf, transportOf } from "./options.js";
import { TransportWorker } from "./transport-worker.js";
import { DiskSpool } from "./spool.js";
import type {
  CaptureInput,
  ClientStats,
  DropReason,
  FlushResult,
  SessionCapture,
  SessionTrackClientOptions,
} from "./types.js";
import { EventEncoder } from "./event-encoder.js";
import { eventIdOf } from "./wire.js";

function ackReporter(onAck: (eventIds: readonly string[]) => void): (frames: readonly Uint8Array[]) => void {
  return (frames) => callBack(onAck, frames.map(eventIdOf));
}

/** SDK name and version sent with WatchConfig. */
export const CLIENT_VERSION = "@sessiontrack/client/0.1.0";
const MAX_TRACKED_SESSIONS = 100_000;
const DEFAULT_TIMEOUT_MS = 5000;
/** Longest an event waits in memory before it is sent (a full batch goes at once). */
export const DEFAULT_FLUSH_INTERVAL_MS = 1000;
/** A batch this big is sent without waiting for the flush interval. */
export const DEFAULT_BATCH_MAX_BYTES = 256 * 1024;
const EMPTY_BYTES = new Uint8Array(0);
/** Slots of one noted capture call in {@link SessionTrackClient}'s `noted` array. */
const NOTE_SLOTS = 6;
/** Noted calls are taken into the pipeline once the oldest is this share of the flush interval old (as the pipeline sends). */
const TAKE_AFTER_SHARE = 0.75;
/** The canary lane's spool, inside the client's spool directory (the stable spool ignores it). */
const CANARY_SPOOL_SUBDIR = "canary";

/**
 * A captured event as it waits (a moment) to be encoded with its batch: the capture() input
 * as given, or a recorder call (kind and arguments) whose payload is built at encode time.
 */
interface CapturedEvent {
  state: SessionState;
  /** The event given to capture(); undefined for a {@link SessionRecorder} call. */
  input: CaptureInput | undefined;
  kind: RecordedKind;
  a: unknown;
  b: unknown;
  /** The encoded bot_id, user_id and labels fields. */
  tail: Uint8Array;
  capturedAtMs: number;
}

interface FlushWaiter {
  target: number;
  timer: NodeJS.Timeout;
  resolve: (result: FlushResult) => void;
}

/**
 * The capture SDK. `capture()` and the session helpers only stamp ids and push to memory;
 * a background loop batches events over `IngestService.Stream`, spills to a disk spool
 * when ingest is slow or down, and replays the spool in order with the same event ids.
 * Nothing is dropped silently: every drop is counted in {@link stats} and reported to
 * `onDrop`. The constructor throws {@link ConfigError} for invalid options; nothing else
 * ever throws.
 */
export class SessionTrackClient {
  private readonly botId: string;
  private readonly encoder = new EventEncoder();
  private botIdField: Uint8Array = EMPTY_BYTES;
  private readonly onDrop: SessionTrackClientOptions["onDrop"];
  private readonly onError: SessionTrackClientOptions["onError"];
  private readonly grpcClient: grpc.Client;
  /** The worker that owns grpc-js when `transport` is "worker". */
  private readonly transport: TransportWorker | undefined;
  protected readonly meter = new CostMeter();
  private readonly counters = newDeliveryCounters();
  private readonly routes: IngestRoutes;
  private readonly watcher: CaptureConfigWatcher | undefined;
  private readonly sessions = new Map<string, SessionState>();
  private readonly waiters: FlushWaiter[] = [];
  private currentConfig: CaptureConfig | undefined;
  private configGeneration = 0;
  private captureEnabled = true;
  private captureCalls = 0;
  private capturedCount = 0;
  private sampledOut = 0;
  private disabledSkipped = 0;
  private closing = false;
  private closed: Promise<void> | undefined;
  /** Capture calls not taken yet, {@link NOTE_SLOTS} slots each (see {@link note}). */
  private noted: unknown[] = [];
  private notedSinceMs = 0;
  /** Noted slots that make a take due at once: as many calls as would fill a batch. */
  private takeAfterSlots = 0;
  private readonly takeAfterMs: number;
  private readonly settings: DeliverySettings;
  /** Takes the noted calls of a bot gone quiet, `flushIntervalMs` after the first. */
  private takeTimer: NodeJS.Timeout | undefined;
  private takeImmediate: NodeJS.Immediate | undefined;

  constructor(options: SessionTrackClientOptions) {
    const target = requiredString("target", options.target);
    const apiKey = requiredString("apiKey", options.apiKey);
    this.botId = requiredString("botId", options.botId);
    const transport = transportOf(options);
    this.botIdField = this.encoder.fields((e) => e.stringField(5, this.botId));
    this.onDrop = options.onDrop;
    this.onError = options.onError;
    const flushIntervalMs = positive("flushIntervalMs", options.flushIntervalMs, DEFAULT_FLUSH_INTERVAL_MS);
    this.takeAfterMs = flushIntervalMs * TAKE_AFTER_SHARE;
    // Every numeric option is checked here, before the spool or a transport worker is opened.
    const settings: DeliverySettings = (this.settings = {
      target,
      batchMaxEvents: positive("batchMaxEvents", options.batchMaxEvents, 500),
      batchMaxBytes: positive("batchMaxBytes", options.batchMaxBytes, DEFAULT_BATCH_MAX_BYTES),
      maxQueueEvents: positive("maxQueueEvents", options.maxQueueEvents, 10_000),
      maxInFlightBatches: positive("maxInFlightBatches", options.maxInFlightBatches, 8),
      ackTimeoutMs: positive("ackTimeoutMs", options.ackTimeoutMs, 3000),
      flushIntervalMs,
      cpuBudgetPct: positive("cpuBudgetPct", options.cpuBudgetPct, 1),
    });
    const spoolDir = spoolDirOf(options, this.botId);
    const spoolMaxBytes = positive("spoolMaxBytes", options.spoolMaxBytes, 1024 ** 3);
    const spool = new DiskSpool(spoolDir, spoolMaxBytes);
    try {
      spool.open();
    } catch (err) {
      throw new ConfigError(
        `SessionTrackClient spoolDir ${spoolDir} is not usable: ${asError(err).message}`,
        {
          cause: err,
        },
      );
    }
    const credentials = options.credentials ?? grpc.credentials.createInsecure();
    const channelOptions: grpc.ChannelOptions = {
      // grpc-js defaults to 1 s..120 s reconnect backoff; ingest coming back must be noticed in ~2 s.
      "grpc.initial_reconnect_backoff_ms": 100,
      "grpc.max_reconnect_backoff_ms": 2000,
      "grpc.max_send_message_length": -1,
      // The SDK resends from its own spool; grpc-js's retry layer would only buffer a copy of every batch.
      "grpc.enable_retries": 0,
      // Channelz (a server-side admin view) timestamps every call and message; a bot has no use for it.
      "grpc.enable_channelz": 0,
    };
    // Every option was checked above, so a ConfigError leaves no worker behind.
    if (transport === "worker") this.transport = new TransportWorker((err) => this.reportError(err));
    const channel = (to: string): grpc.Client =>
      this.transport !== undefined
        ? this.transport.client(to, channelOptions)
        : new grpc.Client(to, credentials, channelOptions);
    this.grpcClient = channel(target);
    const metadata = (): grpc.Metadata => {
      const md = new grpc.Metadata();
      md.set("authorization", `Bearer ${apiKey}`);
      return md;
    };
    const reporter: DeliveryReporter = {
      drop: (count, reason) => this.reportDrop(count, reason),
      error: (err) => this.reportError(err),
      settled: () => this.resolveWaiters(),
      flushPending: () => this.waiters.length > 0,
      takeNoted: () => this.takeNoted(),
      ...(options.onAck === undefined ? {} : { acked: ackReporter(options.onAck) }),
    };
    const pipeline = (to: grpc.Client, toTarget: string, laneSpool: DiskSpool): DeliveryPipeline =>
      new DeliveryPipeline(
        to,
        metadata,
        laneSpool,
        { ...settings, target: toTarget },
        reporter,
        this.meter,
        (event) => this.encodeCaptured(event as CapturedEvent),
        this.counters,
      );
    const canarySpoolDir = join(spoolDir, CANARY_SPOOL_SUBDIR);
    this.routes = new IngestRoutes(pipeline(this.grpcClient, target, spool), this.grpcClient, {
      channel,
      canaryLane: (to, toTarget) => {
        const laneSpool = new DiskSpool(canarySpoolDir, spoolMaxBytes);
        laneSpool.open();
        return pipeline(to, toTarget, laneSpool);
      },
      canarySpoolHasData: () => existsSync(canarySpoolDir) && readdirSync(canarySpoolDir).length > 0,
      error: (err) => this.reportError(err),
    });
    if (options.watchConfig !== false) {
      this.watcher = new CaptureConfigWatcher(
        this.grpcClient,
        metadata,
        { botId: this.botId, clientVersion: CLIENT_VERSION },
        (config) => this.applyConfig(config),
        (err) => this.reportError(err),
      );
      this.watcher.start();
    }
    this.updateTakeAfter();
    // Replay what an earlier process left in the spool without waiting for new events.
    if (!spool.drained) this.routes.stable.kick();
  }

  /** The capture configuration in force; undefined until WatchConfig delivered one. */
  get config(): CaptureConfig | undefined {
    return this.currentConfig;
  }

  /**
   * Records one event. Returns at once and never throws: it decides sampling (cached per
   * session) and appends to memory; `eventId`, `seq`, `time` (the moment of this call) and
   * `botId` are filled when the event's batch is encoded, within `flushIntervalMs`. The
   * event's objects are read then, so do not change them after the call. Invalid input is
   * counted as rejected and reported through `onError` and `onDrop`.
   */
  capture(event: CaptureInput): void {
    // The kind and its arguments describe recorder calls only; a capture() input carries its payload.
    this.note(undefined, event, RecordedKind.Custom, undefined, undefined);
  }

  /**
   * A helper for one session that fills turn ids, roles and seq. `userId`, `userGroups`
   * and `labels` apply to every event of the session and to its sampling decision.
   */
  session(
    sessionId: string,
    opts: { userId?: string; userGroups?: string[]; labels?: Record<string, string> } = {},
  ): SessionCapture {
    const state = this.openSession(String(sessionId), opts);
    return new SessionRecorder(
      String(sessionId),
      state,
      (s, kind, a, b) => this.note(s, undefined, kind, a, b),
      (s) => this.decide(s),
    );
  }

  /**
   * Resolves once every event captured before the call is acked (or rejected/dropped and
   * reported). On timeout (default 5 s) whatever is unacked is put in the spool first.
   * Never rejects.
   */
  flush(timeoutMs = DEFAULT_TIMEOUT_MS): Promise<FlushResult> {
    this.takeNoted();
    return new Promise<FlushResult>((resolve) => {
      const target = this.capturedCount;
      if (this.counters.settledOwn >= target) {
        resolve({ complete: true, pendingEvents: 0, timedOut: false });
        return;
      }
      const waiter: FlushWaiter = {
        target,
        resolve,
        timer: setTimeout(() => {
          this.waiters.splice(this.waiters.indexOf(waiter), 1);
          for (const pipeline of this.routes.pipelines) {
            try {
              pipeline.spillAll(`flush timed out after ${timeoutMs} ms`);
            } catch (err) {
              this.reportError(asError(err));
            }
          }
          const pendingEvents = Math.max(0, target - this.counters.settledOwn);
          resolve({ complete: pendingEvents === 0, pendingEvents, timedOut: true });
        }, timeoutMs),
      };
      this.waiters.push(waiter);
      setImmediate(() => {
        for (const pipeline of this.routes.pipelines) pipeline.pump(true);
      });
    });
  }

  /**
   * Flush-on-exit: waits up to `timeoutMs` (default 5 s) for acks, then puts anything
   * still unacked in the spool for the next process, and stops timers and streams.
   * Events captured after close() are dropped with reason "closed". Never rejects.
   */
  close(timeoutMs = DEFAULT_TIMEOUT_MS): Promise<void> {
    this.closed ??= this.shutdown(timeoutMs);
    return this.closed;
  }

  /** A snapshot of the client's counters and gauges. */
  stats(): ClientStats {
    const c = this.counters;
    let inFlight = 0;
    let queueDepth = this.noted.length / NOTE_SLOTS;
    let spoolBytes = 0;
    for (const pipeline of this.routes.pipelines) {
      inFlight += pipeline.inFlightEvents;
      queueDepth += pipeline.queuedEvents;
      spoolBytes += pipeline.spoolBytes;
    }
    return {
      captured: this.capturedCount,
      acked: c.acked,
      duplicates: c.duplicates,
      spooled: c.spooled,
      replayed: c.replayed,
      dropped: c.dropped,
      rejected: c.rejected,
      sampledOut: this.sampledOut,
      disabledSkipped: this.disabledSkipped,
      inFlight,
      queueDepth,
      spoolBytes,
      captureCallUsP50: this.meter.captureUs(50),
      captureCallUsP99: this.meter.captureUs(99),
      cpuPct: this.meter.cpuPct,
      configRevision: this.currentConfig?.revision ?? "",
      captureEnabled: this.captureEnabled,
    };
  }

  private async shutdown(timeoutMs: number): Promise<void> {
    this.closing = true;
    await this.flush(timeoutMs);
    try {
      this.watcher?.stop();
      this.routes.stop();
      this.grpcClient.close();
    } catch (err) {
      this.reportError(asError(err));
    }
    await this.transport?.close();
  }

  /**
   * Notes one capture call: a capture() input (`known` undefined) or a recorder call on the
   * session `known` (kind, a, b), with the moment it was made. Everything else waits for
   * {@link takeNoted}, which runs the batch's calls in one loop: a bot's capture calls come
   * between its own work, with the SDK's code and data out of the CPU's caches, and every
   * line of SDK code run there cost many times what it costs in a loop. Never throws.
   */
  private note(
    known: SessionState | undefined,
    input: CaptureInput | undefined,
    kind: RecordedKind,
    a: unknown,
    b: unknown,
  ): void {
    const sampled = ++this.captureCalls % CAPTURE_SAMPLE_EVERY === 0;
    const start = sampled ? process.hrtime.bigint() : 0n;
    if (this.closing) {
      this.counters.dropped++;
      this.reportDrop(1, "closed");
    } else if (!this.captureEnabled) {
      this.disabledSkipped++;
    } else {
      const now = Date.now();
      const noted = this.noted;
      if (noted.length === 0) {
        this.notedSinceMs = now;
        this.takeTimer = setTimeout(this.onTakeTimer, this.settings.flushIntervalMs);
        this.takeTimer.unref();
      } else if (now - this.notedSinceMs >= this.takeAfterMs) {
        this.takeSoon();
      }
      if (noted.push(known, input, kind, a, b, now) >= this.takeAfterSlots) this.takeSoon();
      if (kind === RecordedKind.End && known !== undefined) this.forgetEnded(known);
    }
    if (sampled) this.meter.recordCapture(process.hrtime.bigint() - start);
  }

  private readonly onTakeTimer = (): void => {
    this.takeTimer = undefined;
    this.takeAccounted();
  };

  /** Takes the noted calls in this event-loop turn's check phase (no extra wake-up). */
  private takeSoon(): void {
    if (this.takeImmediate !== undefined) return;
    this.takeImmediate = setImmediate(() => this.takeAccounted());
    this.takeImmediate.unref();
  }

  /** {@link takeNoted} on its own (not in a pump), its time counted against the CPU budget. */
  private takeAccounted(): void {
    const start = process.hrtime.bigint();
    this.takeNoted();
    this.accountBackground(start);
  }

  /** Counts background work that ran from `start` (hrtime) until now against the CPU budget. */
  protected accountBackground(start: bigint): void {
    this.routes.stable.account(start);
  }

  /** Moves every noted capture call into its pipeline, in the order they were made. */
  private takeNoted(): void {
    if (this.takeImmediate !== undefined) {
      clearImmediate(this.takeImmediate);
      this.takeImmediate = undefined;
    }
    const noted = this.noted;
    if (noted.length === 0) return;
    this.noted = [];
    if (this.takeTimer !== undefined) {
      clearTimeout(this.takeTimer);
      this.takeTimer = undefined;
    }
    const now = Date.now();
    for (let i = 0; i < noted.length; i += NOTE_SLOTS) {
      try {
        this.enqueue(
          noted[i] as SessionState | undefined,
          noted[i + 1] as CaptureInput | undefined,
          noted[i + 2] as RecordedKind,
          noted[i + 3],
          noted[i + 4],
          noted[i + 5] as number,
          now,
        );
      } catch (err) {
        // A bad capture() input is counted as rejected and reported; the rest go on.
        this.rejectCapture(err);
      }
    }
    this.updateTakeAfter();
  }

  /** How many capture calls fill a batch (see {@link updateTakeAfter}). */
  protected get callsPerBatch(): number {
    return this.takeAfterSlots / NOTE_SLOTS;
  }

  /** How many noted calls fill a batch, from its limits and the stable lane's average event size. */
  protected updateTakeAfter(): void {
    const { batchMaxEvents, batchMaxBytes } = this.settings;
    this.takeAfterSlots =
      NOTE_SLOTS * eventsFillingBatch(batchMaxEvents, batchMaxBytes, this.routes.stable.averageEventBytes);
  }

  /** Counts and reports a capture call that could not be taken. */
  protected rejectCapture(err: unknown): void {
    this.counters.rejected++;
    this.reportDrop(1, "rejected");
    this.reportError(
      err instanceof InvalidEventError
        ? err
        : new InvalidEventError(
            `capture() got an unusable event: ${asError(err).message}`,
            {},
            { cause: err },
          ),
    );
  }

  /**
   * The session's sampling decision and lane (cached per session) and its constant fields;
   * the payload and seq wait for {@link encodeCaptured}.
   */
  protected enqueue(
    known: SessionState | undefined,
    input: CaptureInput | undefined,
    kind: RecordedKind,
    a: unknown,
    b: unknown,
    capturedAtMs: number,
    now: number,
  ): void {
    let state: SessionState;
    if (known !== undefined) {
      state = known;
    } else {
      state = this.stateFor(input);
      if (input!.payload.$case === "sessionEnd") this.forgetEnded(state);
    }
    if (!this.decide(state)) {
      this.sampledOut++;
      return;
    }
    const sessionId = state.sessionId;
    state.sessionField ??= this.encoder.fields((e) => e.stringField(2, sessionId));
    const captured: CapturedEvent = {
      state,
      input,
      kind,
      a,
      b,
      tail: input === undefined ? this.sessionTail(state) : this.tailOf(state, input),
      capturedAtMs,
    };
    this.capturedCount++;
    if (!state.laneDecided) {
      state.toCanary = this.routes.toCanary(sessionId);
      state.laneDecided = true;
    }
    this.routes.pipeline(state.toCanary).enqueue(captured, capturedAtMs, now);
  }

  /**
   * Forgets an ended session, so its id used again starts a new session (seq from 1);
   * a newer session already under that id is kept.
   */
  protected forgetEnded(state: SessionState): void {
    if (this.sessions.get(state.sessionId) === state) this.sessions.delete(state.sessionId);
  }

  /** The session of a capture() input, which must name one and carry a payload kind. */
  private stateFor(input: CaptureInput | undefined): SessionState {
    if (typeof input !== "object" || input === null) {
      throw new InvalidEventError(
        `capture() needs an event object, got ${input === null ? "null" : typeof input}`,
      );
    }
    const sessionId = input.sessionId;
    if (typeof sessionId !== "string" || sessionId === "") {
      throw new InvalidEventError("capture() needs a non-empty string sessionId", { field: "sessionId" });
    }
    const payload = input.payload;
    if (payload === null || typeof payload !== "object" || typeof payload.$case !== "string") {
      throw new InvalidEventError(`capture() for session ${sessionId} needs a payload with a $case`, {
        field: "payload",
      });
    }
    const state = this.sessionState(sessionId);
    if (state.decidedUnder === -1) {
      if (input.userId !== undefined) state.userId = input.userId;
      if (payload.$case === "sessionStart" && Array.isArray(payload.value.userGroups)) {
        state.userGroups = payload.value.userGroups;
      }
    }
    return state;
  }

  /**
   * Encodes a captured event, in its batch's loop and in capture order: builds a recorder
   * call's payload and fills `seq`. Throws InvalidEventError for a bad event (the pipeline
   * counts and reports it as rejected).
   */
  private encodeCaptured(e: CapturedEvent): Uint8Array {
    const state = e.state;
    const input = e.input;
    if (input === undefined) {
      const seq = ++state.seq;
      const payload = recordedPayload(e.kind, e.a, e.b, e.capturedAtMs);
      return this.encoder.encode(undefined, state.sessionField!, seq, e.capturedAtMs, e.tail, payload);
    }
    const sessionId = state.sessionId;
    const seq = input.seq ?? state.seq + 1;
    if (typeof seq !== "number" || !Number.isSafeInteger(seq) || seq < 0) {
      throw new InvalidEventError(`capture() for session ${sessionId}: seq must be a non-negative integer`, {
        field: "seq",
      });
    }
    const time = input.time;
    let timeMs = e.capturedAtMs;
    if (time !== undefined) {
      if (!(time instanceof Date && Number.isFinite(time.getTime()))) {
        throw new InvalidEventError(`capture() for session ${sessionId}: time must be a valid Date`, {
          field: "time",
        });
      }
      timeMs = time.getTime();
    }
    if (seq > state.seq) state.seq = seq;
    return this.encoder.encode(
      input.eventId,
      state.sessionField!,
      seq,
      timeMs,
      e.tail,
      input.payload,
      e.capturedAtMs,
    );
  }

  /** The encoded bot_id, user_id and labels fields of the session, cached until they change. */
  private sessionTail(state: SessionState): Uint8Array {
    if (state.tail === undefined || state.tailUserId !== state.userId || state.tailLabels !== state.labels) {
      state.tail = this.encodeTail(this.botIdField, state.userId, state.labels);
      state.tailUserId = state.userId;
      state.tailLabels = state.labels;
    }
    return state.tail;
  }

  /** The tail fields of a capture() input: the session's unless the input has its own. */
  private tailOf(state: SessionState, input: CaptureInput): Uint8Array {
    if (input.botId === undefined && input.userId === undefined && input.labels === undefined) {
      return this.sessionTail(state);
    }
    const botField =
      input.botId === undefined || input.botId === this.botId
        ? this.botIdField
        : this.encoder.fields((e) => e.stringField(5, String(input.botId)));
    return this.encodeTail(botField, input.userId ?? state.userId, input.labels ?? state.labels);
  }

  private encodeTail(
    botField: Uint8Array,
    userId: string | undefined,
    labels: Record<string, string> | undefined,
  ): Uint8Array {
    return this.encoder.fields((e) => {
      e.raw(botField);
      if (userId !== undefined && userId !== null) {
        if (typeof userId !== "string") {
          throw new InvalidEventError(`capture(): userId must be a string`, { field: "userId" });
        }
        e.stringField(6, userId);
      }
      e.mapField(7, labels, "labels");
    });
  }

  private decide(state: SessionState): boolean {
    return decideSession(state, this.currentConfig, this.configGeneration, this.botId);
  }

  /** The session's state, with the options given to `session()` (each kept when not given). */
  protected openSession(
    sessionId: string,
    opts: { userId?: string; userGroups?: string[]; labels?: Record<string, string> },
  ): SessionState {
    const state = this.sessionState(sessionId);
    state.userId = opts.userId ?? state.userId;
    state.userGroups = opts.userGroups ?? state.userGroups;
    state.labels = opts.labels ?? state.labels;
    return state;
  }

  protected sessionState(sessionId: string): SessionState {
    let state = this.sessions.get(sessionId);
    if (state !== undefined) return state;
    if (this.sessions.size >= MAX_TRACKED_SESSIONS) this.evictOldestSessions();
    state = newSessionState(sessionId);
    this.sessions.set(sessionId, state);
    return state;
  }

  /** Forgets the oldest tenth of sessions that never sent an end; a late event restarts at seq 1. */
  private evictOldestSessions(): void {
    let toDrop = MAX_TRACKED_SESSIONS / 10;
    for (const key of this.sessions.keys()) {
      if (toDrop-- <= 0) break;
      this.sessions.delete(key);
    }
  }

  protected applyConfig(config: CaptureConfig): void {
    // Calls made under the old config are decided (sampling, lane) under it.
    this.takeNoted();
    this.currentConfig = config;
    this.configGeneration++;
    this.captureEnabled = config.enabled;
    this.routes.apply(config);
  }

  private resolveWaiters(): void {
    if (this.waiters.length === 0) return;
    const settled = this.counters.settledOwn;
    for (let i = this.waiters.length - 1; i >= 0; i--) {
      const waiter = this.waiters[i]!;
      if (settled < waiter.target) continue;
      this.waiters.splice(i, 1);
      clearTimeout(waiter.timer);
      waiter.resolve({ complete: true, pendingEvents: 0, timedOut: false });
    }
  }

  private reportDrop(count: number, reason: DropReason): void {
    callBack(this.onDrop, { count, reason });
  }

  private reportError(err: Error): void {
    callBack(this.onError, err);
  }
}
