import { ConfigError, InvalidEventError } from "@sessiontrack/errors";
import type { CaptureConfig } from "@sessiontrack/proto";
import { Worker } from "node:worker_threads";
import { DEFAULT_BATCH_MAX_BYTES, DEFAULT_FLUSH_INTERVAL_MS } from "./client.js";
import { callBack } from "./callbacks.js";
import { CAPTURE_SAMPLE_EVERY, CostMeter } from "./cost-meter.js";
import { asError, eventsFillingBatch, INITIAL_AVERAGE_EVENT_BYTES } from "./delivery.js";
import { checkOptions, NUMERIC_OPTIONS, positive, spoolDirOf } from "./options.js";
import { decideSession, newSessionState, RecordedKind, SessionRecorder } from "./session-capture.js";
import type { SessionState } from "./session-capture.js";
import { DiskSpool } from "./spool.js";
import type {
  CaptureClient,
  CaptureInput,
  ClientStats,
  DropReason,
  FlushResult,
  SessionCapture,
  SessionTrackClientOptions,
} from "./types.js";
import { CALL_SLOTS, errorFrom, OPEN_SESSION } from "./worker-protocol.js";
import type { FromWorker, ToWorker, WorkerInit, WorkerOptions, WorkerReport } from "./worker-protocol.js";

const DEFAULT_TIMEOUT_MS = 5000;
/** Noted calls are posted once the oldest is this share of the flush interval old (as the client takes them). */
const POST_AFTER_SHARE = 0.75;
/** A flush() or close() whose worker does not answer resolves this long after its own timeout. */
const WORKER_ANSWER_GRACE_MS = 2000;

/** A recorder's state on the bot's thread: the sampling decision, and the ref the worker knows it by. */
interface LocalSession extends SessionState {
  ref: number;
  /** What `session()` was given; posted with the recorder's first noted call. */
  opts: object;
  /** Whether the worker has been told about this recorder (with its first noted call). */
  opened: boolean;
}

interface Waiter {
  timer: NodeJS.Timeout;
  done: (message: FromWorker | undefined) => void;
}

const EMPTY_STATS: ClientStats = {
  captured: 0,
  acked: 0,
  duplicates: 0,
  spooled: 0,
  replayed: 0,
  dropped: 0,
  rejected: 0,
  sampledOut: 0,
  disabledSkipped: 0,
  inFlight: 0,
  queueDepth: 0,
  spoolBytes: 0,
  captureCallUsP50: 0,
  captureCallUsP99: 0,
  cpuPct: 0,
  configRevision: "",
  captureEnabled: true,
};

/**
 * The capture SDK with delivery in a worker thread. The bot's thread only checks the kill
 * switch and notes each capture call with its time, as {@link SessionTrackClient} does,
 * and posts the noted calls to the worker in one message about every
 * `0.75 × flushIntervalMs`. Sampling, encoding, batching, the `Stream` to ingest, the spool
 * and its replay all run in the worker — a {@link SessionTrackClient} there, with the same
 * options and guarantees. What this buys: while ingest is slow or down, reconnects, failed
 * streams and spool writes no longer run on the bot's thread, where they cost the load
 * test's reference bot +10…12% CPU per request (see loadtest/README.md).
 *
 * Differences from {@link SessionTrackClient}: `stats()` is the worker's last report (sent
 * every 0.5 s while something changes, and with every flush() answer) plus what this thread
 * counted itself; `credentials` cannot cross to a worker (only insecure channels); a
 * recorder used after its `end()` starts a new session (seq from 1, without the options
 * given to `session()`); the worker costs a thread and its own V8 heap.
 */
export class WorkerSessionTrackClient implements CaptureClient {
  private readonly botId: string;
  private readonly worker: Worker;
  private readonly onDrop: SessionTrackClientOptions["onDrop"];
  private readonly onAck: SessionTrackClientOptions["onAck"];
  private readonly onError: SessionTrackClientOptions["onError"];
  private readonly postAfterMs: number;
  private readonly flushIntervalMs: number;
  /** Noted slots that make a post due at once: as many calls as fill a batch (the worker reports how many). */
  private postAfterSlots: number;
  private noted: unknown[] = [];
  private notedSinceMs = 0;
  private notedCalls = 0;
  private postTimer: NodeJS.Timeout | undefined;
  private postImmediate: NodeJS.Immediate | undefined;
  private captureNs: number[] = [];
  /** Time spent in postMessage (structured clone) not told to the worker yet, ns. */
  private postNs = 0;
  private captureCalls = 0;
  private nextRef = 1;
  private posted = 0;
  private report: WorkerReport = { stats: EMPTY_STATS, taken: 0, acked: [], callsPerBatch: 1 };
  /** Capture-call durations on this thread, for stats(); the samples also go to the worker's overhead report. */
  private readonly meter = new CostMeter();
  private currentConfig: CaptureConfig | undefined;
  private configGeneration = 0;
  private captureEnabled = true;
  private disabledSkipped = 0;
  /** Capture calls this thread gave up: made after close(), or after the worker failed. */
  private dropped = 0;
  /** Capture calls that could not be posted (a value structured clone refuses). */
  private rejected = 0;
  private closing = false;
  private closed: Promise<void> | undefined;
  /** Why the worker is gone, once it is; capture calls are then dropped and reported. */
  private failure: Error | undefined;
  /** The worker thread has ended (after close(), or on a failure). */
  private exited = false;
  private nextRequest = 1;
  private readonly waiters = new Map<number, Waiter>();

  /** Throws {@link ConfigError} for invalid options, as {@link SessionTrackClient} does. */
  constructor(options: SessionTrackClientOptions) {
    checkOptions(options);
    if (options.credentials !== undefined) {
      throw new ConfigError(
        "SessionTrackClient option credentials cannot be passed to a worker thread: " +
          "WorkerSessionTrackClient supports insecure channels only; use SessionTrackClient for TLS",
      );
    }
    this.botId = options.botId;
    this.onDrop = options.onDrop;
    this.onAck = options.onAck;
    this.onError = options.onError;
    this.flushIntervalMs = positive("flushIntervalMs", options.flushIntervalMs, DEFAULT_FLUSH_INTERVAL_MS);
    this.postAfterMs = this.flushIntervalMs * POST_AFTER_SHARE;
    // Until the worker has measured events, they are taken to be of the pipeline's initial average size.
    this.postAfterSlots =
      CALL_SLOTS *
      eventsFillingBatch(
        positive("batchMaxEvents", options.batchMaxEvents, 500),
        positive("batchMaxBytes", options.batchMaxBytes, DEFAULT_BATCH_MAX_BYTES),
        INITIAL_AVERAGE_EVENT_BYTES,
      );
    const spoolDir = spoolDirOf(options, this.botId);
    try {
      // The worker opens it again; checking here makes a bad directory fail the constructor, as in-process.
      new DiskSpool(spoolDir, 1).open();
    } catch (err) {
      throw new ConfigError(
        `SessionTrackClient spoolDir ${spoolDir} is not usable: ${asError(err).message}`,
        { cause: err },
      );
    }
    // Only the options the worker needs, read here (a getter on a prototype counts; extra fields do not travel).
    const workerOptions: WorkerOptions = {
      target: options.target,
      apiKey: options.apiKey,
      botId: options.botId,
      spoolDir,
      ...(options.watchConfig === undefined ? {} : { watchConfig: options.watchConfig }),
    };
    for (const name of NUMERIC_OPTIONS) {
      const value = options[name];
      if (value !== undefined) workerOptions[name] = value;
    }
    const init: WorkerInit = { options: workerOptions, wantsAcks: options.onAck !== undefined };
    this.worker = new Worker(new URL("./worker-host.js", import.meta.url), {
      workerData: init,
      // The bot's own flags (--input-type, --eval, loaders for its sources) are not the worker's business.
      execArgv: [],
    });
    this.worker.on("message", (message: FromWorker) => this.receive(message));
    this.worker.on("error", (err) =>
      this.fail(new Error(`delivery worker crashed: ${err.message}`, { cause: err })),
    );
    this.worker.on("exit", (code) => {
      this.exited = true;
      if (!this.closing) {
        this.fail(new Error(`delivery worker exited unexpectedly (code ${code})`));
        return;
      }
      // Closing: a flush() still waiting gets the worker's last report (shutdown() counts any loss).
      for (const waiter of [...this.waiters.values()]) waiter.done(undefined);
    });
    // Like the in-process client's timers, the worker does not keep the bot alive; a pending
    // flush() or close() does. (After the listeners: adding one refs the worker again.)
    this.worker.unref();
  }

  /** The capture configuration in force, as the worker last reported it. */
  get config(): CaptureConfig | undefined {
    return this.currentConfig;
  }

  /** Records one event; as {@link SessionTrackClient.capture}. Returns at once and never throws. */
  capture(event: CaptureInput): void {
    this.note(0, event, RecordedKind.Custom, undefined, undefined);
  }

  /** A helper for one session; as {@link SessionTrackClient.session}. */
  session(
    sessionId: string,
    opts: { userId?: string; userGroups?: string[]; labels?: Record<string, string> } = {},
  ): SessionCapture {
    const id = String(sessionId);
    const state: LocalSession = Object.assign(newSessionState(id), {
      ref: this.nextRef++,
      opts,
      opened: false,
    });
    state.userId = opts.userId;
    state.userGroups = opts.userGroups;
    state.labels = opts.labels;
    return new SessionRecorder(
      id,
      state,
      (s, kind, a, b) => this.noteRecorded(s as LocalSession, kind, a, b),
      (s) => decideSession(s, this.currentConfig, this.configGeneration, this.botId),
    );
  }

  /**
   * Resolves once every event captured before the call is acked (or rejected/dropped and
   * reported); on timeout (default 5 s) the worker spools what is unacked. Never rejects.
   */
  flush(timeoutMs = DEFAULT_TIMEOUT_MS): Promise<FlushResult> {
    this.post();
    // No answer from the worker: its last report says what it still held.
    const unknownPending = (): FlushResult => ({
      complete: false,
      pendingEvents: this.heldEvents(),
      timedOut: true,
    });
    if (this.failure !== undefined) return Promise.resolve(unknownPending());
    if (this.exited) {
      // After close(): nothing is captured any more; what the worker held at the end is its last report.
      const pendingEvents = this.heldEvents();
      return Promise.resolve({ complete: pendingEvents === 0, pendingEvents, timedOut: false });
    }
    return this.request({ t: "flush", id: 0, timeoutMs }, timeoutMs).then((message) =>
      message?.t === "flushed" ? message.result : unknownPending(),
    );
  }

  /**
   * Flush-on-exit, as {@link SessionTrackClient.close}; then the worker stops. Events
   * captured after close() are dropped with reason "closed". Never rejects.
   */
  close(timeoutMs = DEFAULT_TIMEOUT_MS): Promise<void> {
    this.closed ??= this.shutdown(timeoutMs);
    return this.closed;
  }

  /** The worker's last counters and gauges, with what this thread counted and holds. */
  stats(): ClientStats {
    const s = this.report.stats;
    const inTransit = Math.max(0, this.posted - this.report.taken);
    return {
      ...s,
      dropped: s.dropped + this.dropped,
      rejected: s.rejected + this.rejected,
      disabledSkipped: this.disabledSkipped,
      queueDepth: s.queueDepth + this.notedCalls + inTransit,
      captureCallUsP50: this.meter.captureUs(50),
      captureCallUsP99: this.meter.captureUs(99),
      configRevision: this.currentConfig?.revision ?? "",
      captureEnabled: this.captureEnabled,
    };
  }

  /** Events not acked or spooled, as far as this thread knows: noted, on their way, queued or in flight. */
  private heldEvents(): number {
    const s = this.stats();
    return s.queueDepth + s.inFlight;
  }

  private async shutdown(timeoutMs: number): Promise<void> {
    this.post();
    this.closing = true;
    if (this.failure === undefined && !this.exited) {
      const answer = await this.request({ t: "close", id: 0, timeoutMs }, timeoutMs);
      if (answer?.t !== "closed") {
        this.fail(
          new Error(`delivery worker did not finish close() within ${timeoutMs + WORKER_ANSWER_GRACE_MS} ms`),
        );
      }
    }
    this.clearPostTimers();
    await this.worker.terminate();
  }

  /** Sends a flush or close to the worker; resolves with its answer, or undefined if none comes in time. */
  private request(
    message: Extract<ToWorker, { id: number }>,
    timeoutMs: number,
  ): Promise<FromWorker | undefined> {
    const id = this.nextRequest++;
    return new Promise((resolve) => {
      const waiter: Waiter = {
        timer: setTimeout(() => waiter.done(undefined), timeoutMs + WORKER_ANSWER_GRACE_MS),
        done: (answer) => {
          clearTimeout(waiter.timer);
          this.waiters.delete(id);
          if (this.waiters.size === 0) this.worker.unref();
          resolve(answer);
        },
      };
      this.waiters.set(id, waiter);
      this.worker.ref();
      this.worker.postMessage({ ...message, id } satisfies ToWorker);
    });
  }

  private receive(message: FromWorker): void {
    switch (message.t) {
      case "report":
        this.takeReport(message);
        break;
      case "config":
        // Calls noted under the old config go first; the worker applies the new one after them.
        this.post();
        this.currentConfig = message.config;
        this.configGeneration++;
        this.captureEnabled = message.config.enabled;
        this.worker.postMessage({ t: "apply", config: message.config } satisfies ToWorker);
        break;
      case "drop":
        this.reportDrop(message.count, message.reason);
        break;
      case "error":
        this.reportError(errorFrom(message.error));
        break;
      case "flushed":
      case "closed":
        this.takeReport(message);
        this.waiters.get(message.id)?.done(message);
        break;
      case "failed":
        this.fail(errorFrom(message.error));
        break;
    }
  }

  private takeReport(report: WorkerReport): void {
    this.report = report;
    this.postAfterSlots = CALL_SLOTS * report.callsPerBatch;
    if (report.acked.length > 0) callBack(this.onAck, report.acked);
  }

  /**
   * The worker is gone: say so, count as dropped what it held in memory by its last report
   * (queued, sent and not acked) and what was on its way to it, drop what waits here, and
   * answer every waiter. (What it had spooled is on disk; the next client replays it.)
   */
  private fail(err: Error): void {
    if (this.failure !== undefined) return;
    this.failure = err;
    // What the worker held, or was sent; the calls still noted here are dropped below.
    const lost = this.heldEvents() - this.notedCalls;
    this.reportError(
      new Error(
        `SessionTrack delivery worker failed; up to ${lost} events it held in memory (by its last report) may be lost and capture calls are dropped from now on: ${err.message}`,
        { cause: err },
      ),
    );
    if (lost > 0) {
      this.dropped += lost;
      this.reportDrop(lost, "closed");
    }
    this.dropNoted("closed");
    for (const waiter of [...this.waiters.values()]) waiter.done(undefined);
  }

  /** Notes a capture call with its time; a capture call's whole cost on the bot's thread. Never throws. */
  private note(ref: number, inputOrSession: unknown, kind: RecordedKind, a: unknown, b: unknown): void {
    const sampled = ++this.captureCalls % CAPTURE_SAMPLE_EVERY === 0;
    const start = sampled ? process.hrtime.bigint() : 0n;
    let noted = false;
    if (this.closing || this.failure !== undefined) {
      this.dropped++;
      this.reportDrop(1, "closed");
    } else if (!this.captureEnabled) {
      this.disabledSkipped++;
    } else {
      this.push(ref, inputOrSession, kind, a, b);
      this.notedCalls++;
      noted = true;
    }
    if (sampled) {
      const ns = process.hrtime.bigint() - start;
      this.meter.recordCapture(ns);
      // The worker's overhead report counts calls it takes (a skipped call's sample would inflate a later window).
      if (noted) this.captureNs.push(Number(ns));
    }
  }

  /** A recorder call; its first one that is noted tells the worker about the recorder and its options. */
  private noteRecorded(state: LocalSession, kind: RecordedKind, a: unknown, b: unknown): void {
    if (!state.opened && this.captureEnabled && !this.closing && this.failure === undefined) {
      state.opened = true;
      this.push(state.ref, state.sessionId, OPEN_SESSION, state.opts, undefined);
    }
    this.note(state.ref, state.sessionId, kind, a, b);
  }

  private push(ref: number, inputOrSession: unknown, kind: number, a: unknown, b: unknown): void {
    const now = Date.now();
    const noted = this.noted;
    if (noted.length === 0) {
      this.notedSinceMs = now;
      this.postTimer = setTimeout(this.onPostTimer, this.flushIntervalMs);
      this.postTimer.unref();
    } else if (now - this.notedSinceMs >= this.postAfterMs) {
      this.postSoon();
    }
    if (noted.push(ref, inputOrSession, kind, a, b, now) >= this.postAfterSlots) this.postSoon();
  }

  private readonly onPostTimer = (): void => {
    this.postTimer = undefined;
    this.post();
  };

  /** Posts the noted calls in this event-loop turn's check phase (no extra wake-up of the bot). */
  private postSoon(): void {
    if (this.postImmediate !== undefined) return;
    this.postImmediate = setImmediate(() => {
      this.postImmediate = undefined;
      this.post();
    });
    this.postImmediate.unref();
  }

  private clearPostTimers(): void {
    if (this.postTimer !== undefined) clearTimeout(this.postTimer);
    if (this.postImmediate !== undefined) clearImmediate(this.postImmediate);
    this.postTimer = undefined;
    this.postImmediate = undefined;
  }

  /** Posts every noted call to the worker in one message. */
  private post(): void {
    this.clearPostTimers();
    if (this.noted.length === 0 || this.failure !== undefined) return;
    const calls = this.noted;
    const count = this.notedCalls;
    const captureNs = this.captureNs;
    this.noted = [];
    this.notedCalls = 0;
    this.captureNs = [];
    const start = process.hrtime.bigint();
    try {
      // The time of this post travels with the next one.
      this.worker.postMessage({ t: "calls", calls, captureNs, postNs: this.postNs } satisfies ToWorker);
      this.posted += count;
      this.postNs = 0;
    } catch {
      // Something structured clone refuses (a function, a symbol): post call by call, reject only those.
      this.postOneByOne(calls, captureNs);
    }
    this.postNs += Number(process.hrtime.bigint() - start);
  }

  private postOneByOne(calls: unknown[], captureNs: number[]): void {
    let timings = captureNs;
    for (let i = 0; i < calls.length; i += CALL_SLOTS) {
      const call = calls.slice(i, i + CALL_SLOTS);
      try {
        this.worker.postMessage({
          t: "calls",
          calls: call,
          captureNs: timings,
          postNs: this.postNs,
        } satisfies ToWorker);
        timings = [];
        this.postNs = 0;
        if (call[2] !== OPEN_SESSION) this.posted++;
      } catch (err) {
        const what = call[2] === OPEN_SESSION ? `session(${String(call[1])}) options` : "capture() event";
        const rejection = new InvalidEventError(
          `${what} cannot be sent to the delivery worker: ${asError(err).message}`,
          {},
          { cause: err },
        );
        if (call[2] === OPEN_SESSION) {
          // Not an event: the session's calls go on, without its options.
          this.reportError(rejection);
          continue;
        }
        this.rejected++;
        this.reportDrop(1, "rejected");
        this.reportError(rejection);
      }
    }
  }

  /** Drops the noted calls (the worker is gone), counting and reporting them. */
  private dropNoted(reason: DropReason): void {
    const count = this.notedCalls;
    this.noted = [];
    this.notedCalls = 0;
    this.clearPostTimers();
    if (count === 0) return;
    this.dropped += count;
    this.reportDrop(count, reason);
  }

  private reportDrop(count: number, reason: DropReason): void {
    callBack(this.onDrop, { count, reason });
  }

  private reportError(err: Error): void {
    callBack(this.onError, err);
  }
}
