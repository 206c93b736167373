/**
 * The delivery worker of {@link WorkerSessionTrackClient}: a {@link SessionTrackClient} in a
 * worker thread that takes the capture calls the bot's thread noted and posted, and sends
 * back what it did. Started by worker-client.ts; not an entry point of its own.
 */
import type { CaptureConfig } from "@sessiontrack/proto";
import { parentPort, workerData } from "node:worker_threads";
import type { MessagePort } from "node:worker_threads";
import { SessionTrackClient } from "./client.js";
import { RecordedKind } from "./session-capture.js";
import type { SessionState, Turn } from "./session-capture.js";
import type { CaptureInput } from "./types.js";
import { CALL_SLOTS, errorShape, OPEN_SESSION } from "./worker-protocol.js";
import type { FromWorker, ToWorker, WorkerInit, WorkerReport } from "./worker-protocol.js";

/**
 * The worker reports its stats (and acknowledged ids) when they changed, at most this often:
 * each report wakes the bot's thread, so they are gathered, not sent per ack.
 */
const REPORT_EVERY_MS = 500;
/** Open recorders the worker follows; past it the least recently used tenth is forgotten. */
const MAX_RECORDERS = 100_000;

/** A recorder of the bot's thread, as the worker follows it. */
interface RemoteRecorder {
  state: SessionState;
  /** The recorder's open turn: one object per turn, so its id, made at encode, is shared by its events. */
  turn: Turn | undefined;
}

/** A client that takes capture calls made on another thread and tells that thread what it does. */
class HostedClient extends SessionTrackClient {
  private readonly recorders = new Map<number, RemoteRecorder>();
  private taken = 0;
  private acked: string[] = [];
  private reportTimer: NodeJS.Timeout | undefined;
  /** The stats of the last report, to tell whether there is anything new to report. */
  private reported = "";

  constructor(
    init: WorkerInit,
    private readonly port: MessagePort,
  ) {
    super({
      ...init.options,
      onDrop: ({ count, reason }) => this.post({ t: "drop", count, reason }),
      onError: (err) => this.post({ t: "error", error: errorShape(err) }),
      ...(init.wantsAcks
        ? {
            onAck: (ids) => {
              for (const id of ids) this.acked.push(id);
            },
          }
        : {}),
    });
  }

  /** Takes posted capture calls into the pipelines, in the order they were made. */
  take(calls: readonly unknown[], captureNs: readonly number[], postNs: number): void {
    const start = process.hrtime.bigint();
    for (const ns of captureNs) this.meter.recordCapture(BigInt(ns));
    this.meter.recordForeignWork(postNs);
    const now = Date.now();
    for (let i = 0; i < calls.length; i += CALL_SLOTS) {
      const ref = calls[i] as number;
      const kind = calls[i + 2] as RecordedKind | typeof OPEN_SESSION;
      const at = calls[i + 5] as number;
      if (kind === OPEN_SESSION) {
        this.open(ref, calls[i + 1] as string, calls[i + 3] as SessionOptions);
        continue;
      }
      this.taken++;
      try {
        if (ref === 0) {
          this.enqueue(undefined, calls[i + 1] as CaptureInput, kind, undefined, undefined, at, now);
          continue;
        }
        const recorder = this.recorder(ref, calls[i + 1] as string);
        let b = calls[i + 4];
        if (
          kind === RecordedKind.UserMessage ||
          kind === RecordedKind.AssistantMessage ||
          kind === RecordedKind.ToolResult
        ) {
          b = this.turnOf(recorder, b as Turn);
        }
        try {
          this.enqueue(recorder.state, undefined, kind, calls[i + 3], b, at, now);
        } finally {
          if (kind === RecordedKind.End) {
            this.forgetEnded(recorder.state);
            this.recorders.delete(ref);
          }
        }
      } catch (err) {
        this.rejectCapture(err);
      }
    }
    this.updateTakeAfter();
    this.accountBackground(start);
  }

  /** What the bot's thread needs to merge into its stats, and the ids acknowledged since the last report. */
  report(): WorkerReport {
    const acked = this.acked;
    this.acked = [];
    const stats = this.stats();
    this.reported = JSON.stringify(stats);
    return { stats, taken: this.taken, acked, callsPerBatch: this.callsPerBatch };
  }

  /** Reports every {@link REPORT_EVERY_MS} while something changed, until the client closes. */
  startReporting(): void {
    this.reportTimer = setInterval(() => {
      if (this.acked.length === 0 && JSON.stringify(this.stats()) === this.reported) return;
      this.post({ t: "report", ...this.report() });
    }, REPORT_EVERY_MS);
  }

  stopReporting(): void {
    clearInterval(this.reportTimer);
  }

  /**
   * A config from WatchConfig is not applied here at once: the bot's thread first posts
   * what it noted under the old one, then answers with {@link applyNow}. So each capture
   * call is sampled and routed under the config in force when it was made, as in-process.
   */
  protected override applyConfig(config: CaptureConfig): void {
    this.post({ t: "config", config });
  }

  /** Applies a config the bot's thread has mirrored (see {@link applyConfig}). */
  applyNow(config: CaptureConfig): void {
    super.applyConfig(config);
  }

  /** A message to the bot's thread; a closed port (the bot is gone) is nothing to report. */
  post(message: FromWorker): void {
    try {
      this.port.postMessage(message);
    } catch {
      // The bot's thread has terminated this worker; there is no one left to tell.
    }
  }

  /** `session(sessionId, opts)` on the bot's thread: the session's shared state, as the client keeps it. */
  private open(ref: number, sessionId: string, opts: SessionOptions): void {
    const state = this.openSession(sessionId, opts);
    if (this.recorders.size >= MAX_RECORDERS) this.forgetOldestRecorders();
    this.recorders.set(ref, { state, turn: undefined });
  }

  /**
   * The recorder `ref`, moved to the back of the eviction order (the least recently used go
   * first); one forgotten (ended, or evicted) is opened again without options.
   */
  private recorder(ref: number, sessionId: string): RemoteRecorder {
    const recorder = this.recorders.get(ref);
    if (recorder === undefined) {
      this.open(ref, sessionId, {});
      return this.recorders.get(ref)!;
    }
    this.recorders.delete(ref);
    this.recorders.set(ref, recorder);
    return recorder;
  }

  /** The worker's one object for the turn a cloned {@link Turn} stands for. */
  private turnOf(recorder: RemoteRecorder, turn: Turn): Turn {
    if (recorder.turn?.index !== turn.index) recorder.turn = { id: turn.id, index: turn.index };
    return recorder.turn;
  }

  private forgetOldestRecorders(): void {
    let toDrop = MAX_RECORDERS / 10;
    for (const ref of this.recorders.keys()) {
      if (toDrop-- <= 0) break;
      this.recorders.delete(ref);
    }
  }
}

interface SessionOptions {
  userId?: string;
  userGroups?: string[];
  labels?: Record<string, string>;
}

function serve(port: MessagePort, init: WorkerInit): void {
  let client: HostedClient;
  try {
    client = new HostedClient(init, port);
  } catch (err) {
    port.postMessage({ t: "failed", error: errorShape(err) } satisfies FromWorker);
    port.close();
    return;
  }
  client.startReporting();
  port.on("message", (message: ToWorker) => {
    switch (message.t) {
      case "calls":
        client.take(message.calls, message.captureNs, message.postNs);
        break;
      case "apply":
        client.applyNow(message.config);
        break;
      case "flush":
        void client.flush(message.timeoutMs).then((result) => {
          client.post({ t: "flushed", id: message.id, result, ...client.report() });
        });
        break;
      case "close":
        void client.close(message.timeoutMs).then(() => {
          client.stopReporting();
          client.post({ t: "closed", id: message.id, ...client.report() });
          port.close();
        });
        break;
    }
  });
}

if (parentPort === null) {
  throw new Error("worker-host.js runs inside WorkerSessionTrackClient's worker thread, not on its own");
}
serve(parentPort, workerData as WorkerInit);
