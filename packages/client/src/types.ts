import type * as grpc from "@grpc/grpc-js";
import type { CaptureConfig, EndReason, Event } from "@sessiontrack/proto";

/** Why events were given up; every drop is counted in {@link ClientStats} and reported. */
export type DropReason = "spool_full" | "rejected" | "closed";

/** A report of events given up, passed to {@link SessionTrackClientOptions.onDrop}. */
export interface DropNotice {
  count: number;
  reason: DropReason;
}

/** Options of {@link SessionTrackClient}. */
export interface SessionTrackClientOptions {
  /** `host:port` of the ingest service. */
  target: string;
  /** API key with the `ingest` role; sent as `authorization: Bearer <apiKey>` on every call. */
  apiKey: string;
  /** The bot's id, stamped on every event and used for cohort rules and opt-outs. */
  botId: string;
  /** Where events spill when ingest is slow or down. Default `<os.tmpdir()>/sessiontrack-spool/<botId>`. */
  spoolDir?: string;
  /** In-memory queue bound (default 10 000); overflow spills to the spool, capture never blocks. */
  maxQueueEvents?: number;
  /** Most events in one StreamRequest (default 500); a batch this full is sent at once. */
  batchMaxEvents?: number;
  /** A batch of this many encoded bytes is sent at once (default 256 KiB). */
  batchMaxBytes?: number;
  /**
   * Longest an event waits in memory before it is sent, in ms (default 1000); a full batch
   * (`batchMaxEvents` or `batchMaxBytes`) goes at once. Until acked (or spooled) an event
   * lives only in this process's memory.
   */
  flushIntervalMs?: number;
  /** Batches sent and not yet acked, at most (default 8). */
  maxInFlightBatches?: number;
  /** No ack within this many ms means ingest is slow: spool instead of waiting (default 3000). */
  ackTimeoutMs?: number;
  /** Hard cap on spool bytes (default 1 GiB); events beyond it are dropped, counted and reported. */
  spoolMaxBytes?: number;
  /** Background work budget, % of wall time (default 1); above it work is deferred into bigger, rarer batches. */
  cpuBudgetPct?: number;
  /** Follow `IngestService.WatchConfig` (default true). */
  watchConfig?: boolean;
  /** Called for every drop, with how many events and why. Never let it throw; if it does, it is ignored. */
  onDrop?: (drop: DropNotice) => void;
  /**
   * Called with the event ids of every acknowledged batch (durable at ingest). Costs a
   * small parse per event, only when set. Never let it throw; if it does, it is ignored.
   */
  onAck?: (eventIds: readonly string[]) => void;
  /** Diagnostics (ingest down, rejected batch, torn spool tail…). Never thrown into the bot. */
  onError?: (err: Error) => void;
  /** Channel credentials (default insecure). */
  credentials?: grpc.ChannelCredentials;
  /**
   * Where grpc-js and its sockets run (default "inline": on the bot's thread). "worker" runs
   * them in a worker thread of their own, while capture, encoding and the spool stay on the
   * bot's thread: encoded batches cross as bytes, so a dying connection never touches the
   * bot's V8 isolate. Insecure channels only for now (no `credentials`).
   */
  transport?: "inline" | "worker";
}

/** Makes every field optional, all the way down, keeping `$case` unions intact. */
export type DeepPartial<T> = T extends Date | Uint8Array
  ? T
  : T extends readonly (infer U)[]
    ? DeepPartial<U>[]
    : T extends { $case: string; value: unknown }
      ? { $case: T["$case"]; value: DeepPartial<T["value"]> }
      : T extends object
        ? { [K in keyof T]?: DeepPartial<T[K]> }
        : T;

/**
 * An event as the bot hands it to {@link SessionTrackClient.capture}. `sessionId` and
 * `payload` are required; the SDK fills `eventId` (UUIDv7), `seq` (per session from 1),
 * `time` (now) and `botId` (from the options) when they are absent, and proto3 defaults
 * for any missing field inside `payload`.
 */
export interface CaptureInput {
  sessionId: string;
  payload: DeepPartial<NonNullable<Event["payload"]>>;
  userId?: string;
  labels?: Record<string, string>;
  eventId?: string;
  seq?: number;
  time?: Date;
  botId?: string;
}

/** Outcome of {@link SessionTrackClient.flush}. */
export interface FlushResult {
  /** True when every event captured before the call was acked, or rejected/dropped and reported. */
  complete: boolean;
  /** Events captured before the call that are not acked yet; they are in the spool. */
  pendingEvents: number;
  /** True when the timeout ran out first. */
  timedOut: boolean;
}

/** Counters and gauges of one client; counters only grow. */
export interface ClientStats {
  /**
   * Events accepted into the pipeline (after sampling and the kill switch). A capture call
   * counts here once it is taken into a batch (see `queueDepth`), within `flushIntervalMs`.
   */
  captured: number;
  /** Events ingest acknowledged as durable, including replays of earlier processes' spools. */
  acked: number;
  /** Of the acked, how many ingest already had (a resend after an outage; stored once). */
  duplicates: number;
  /** Events written to the disk spool. */
  spooled: number;
  /** Events acked after being replayed from the spool. */
  replayed: number;
  /** Events given up because the spool was full or the client closed (reported via onDrop). */
  dropped: number;
  /** Events ingest or the SDK refused as invalid (reported via onDrop and onError). */
  rejected: number;
  /** capture() calls skipped because the session is not in the sampled cohort. */
  sampledOut: number;
  /** capture() calls skipped because capture is disabled by WatchConfig. */
  disabledSkipped: number;
  /** Events sent and not yet acked. */
  inFlight: number;
  /** Events waiting in memory: capture calls not yet taken into a batch, and queued events. */
  queueDepth: number;
  /** Bytes in the disk spool. */
  spoolBytes: number;
  /** Median duration of a capture() call on the caller's thread, µs (sampled 1 in 64). */
  captureCallUsP50: number;
  /** 99th percentile duration of a capture() call, µs. */
  captureCallUsP99: number;
  /** Background SDK work (encode, send, spool) as % of wall time over the last second. */
  cpuPct: number;
  /** Revision of the capture config in force ("" before the first one arrives). */
  configRevision: string;
  /** False while WatchConfig has capture disabled. */
  captureEnabled: boolean;
}

/**
 * Convenience API over one session: fills turn ids, seq and roles. A call only notes what
 * was recorded (and when); the event is built and encoded with its batch, within
 * `flushIntervalMs`, so do not change the objects you pass after the call.
 */
export interface SessionCapture {
  /** The session id. */
  readonly sessionId: string;
  /** This session's sampling decision under the config in force. */
  readonly captured: boolean;
  /** Records the session start (with the user groups given to `session()`). */
  start(opts?: { channel?: string; locale?: string }): void;
  /** Records the user's message; it opens a new turn. */
  userMessage(text: string, opts?: { turnId?: string }): void;
  /** Records the model's answer in the current turn. */
  assistantMessage(m: AssistantMessageInput): void;
  /** Records a tool's result in the current turn. */
  toolResult(r: { callId: string; name: string; content: string; isError?: boolean }): void;
  /** Records feedback on the session (or on `targetEventId`). */
  feedback(f: { score: number; kind?: string; comment?: string; targetEventId?: string }): void;
  /** Records a custom event with structured data. */
  custom(name: string, data: Record<string, unknown>): void;
  /** Records the session end (default reason COMPLETED) with the number of turns. */
  end(reason?: EndReason): void;
}

/** What {@link SessionCapture.assistantMessage} takes. */
export interface AssistantMessageInput {
  text?: string;
  provider: string;
  model: string;
  toolCalls?: { callId: string; name: string; argumentsJson: string }[];
  usage?: { inputTokens: number; outputTokens: number };
  latencyMs?: number;
  finishReason?: string;
}

/**
 * What a bot uses of a capture client; both {@link SessionTrackClient} (delivery on the
 * bot's thread) and {@link WorkerSessionTrackClient} (delivery in a worker thread) offer it.
 */
export interface CaptureClient {
  /** The capture configuration in force; undefined until WatchConfig delivered one. */
  readonly config: CaptureConfig | undefined;
  capture(event: CaptureInput): void;
  session(
    sessionId: string,
    opts?: { userId?: string; userGroups?: string[]; labels?: Record<string, string> },
  ): SessionCapture;
  flush(timeoutMs?: number): Promise<FlushResult>;
  close(timeoutMs?: number): Promise<void>;
  stats(): ClientStats;
}
