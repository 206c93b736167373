import * as errors from "@sessiontrack/errors";
import type { CaptureConfig } from "@sessiontrack/proto";
import type { ClientStats, DropReason, FlushResult, SessionTrackClientOptions } from "./types.js";

/**
 * The messages between {@link WorkerSessionTrackClient} (the bot's thread) and its delivery
 * worker (worker-host.ts). Capture calls travel in the layout of the client's `noted`
 * array, {@link CALL_SLOTS} slots per call:
 *
 * - `capture(input)`: `0, input, RecordedKind.Custom, undefined, undefined, capturedAtMs`;
 * - a recorder call: `ref, sessionId, kind, a, b, capturedAtMs` (`ref` > 0 names the recorder);
 * - `session(id, opts)`: `ref, sessionId, OPEN_SESSION, opts, undefined, capturedAtMs`.
 */
export const CALL_SLOTS = 6;
/** The kind slot of a `session()` call: the worker (re)opens the recorder `ref`. */
export const OPEN_SESSION = -1;

/** The options the worker builds its client from: everything but the callbacks and credentials. */
export type WorkerOptions = Omit<SessionTrackClientOptions, "onAck" | "onDrop" | "onError" | "credentials">;

/** `workerData` of a delivery worker. */
export interface WorkerInit {
  options: WorkerOptions;
  /** Whether the bot gave an onAck callback (the worker then collects acknowledged ids). */
  wantsAcks: boolean;
}

/** The bot's thread to the worker. */
export type ToWorker =
  | {
      t: "calls";
      calls: unknown[];
      /** Sampled capture-call durations (ns) measured on the bot's thread, for the overhead report. */
      captureNs: number[];
      /** Time (ns) the bot's thread spent posting earlier messages (structured clone), for the same report. */
      postNs: number;
    }
  /** A config the worker reported, to apply now: every call noted before the bot's thread saw it was posted first. */
  | { t: "apply"; config: CaptureConfig }
  | { t: "flush"; id: number; timeoutMs: number }
  | { t: "close"; id: number; timeoutMs: number };

/** What the worker's client has done: its stats, and how many capture calls it took. */
export interface WorkerReport {
  stats: ClientStats;
  /** Capture calls (not `session()` calls) taken so far. */
  taken: number;
  /** Ids of events acknowledged since the last report (only when the bot has an onAck callback). */
  acked: string[];
  /** How many capture calls fill a batch, by the events' average encoded size: the bot's thread posts that many at once. */
  callsPerBatch: number;
}

/** An error as it crosses the thread boundary. */
export interface ErrorShape {
  name: string;
  message: string;
  /** The error's own primitive fields (an InvalidEventError's `field`, a gRPC code). */
  fields: Record<string, string | number | boolean>;
}

/** The worker to the bot's thread. */
export type FromWorker =
  | ({ t: "report" } & WorkerReport)
  /** WatchConfig delivered a config; the worker applies it when the bot's thread answers "apply". */
  | { t: "config"; config: CaptureConfig }
  | { t: "drop"; count: number; reason: DropReason }
  | { t: "error"; error: ErrorShape }
  | ({ t: "flushed"; id: number; result: FlushResult } & WorkerReport)
  | ({ t: "closed"; id: number } & WorkerReport)
  | { t: "failed"; error: ErrorShape };

/** An error as plain data (structured clone keeps neither its class nor its extra fields). */
export function errorShape(err: unknown): ErrorShape {
  const error = err instanceof Error ? err : new Error(String(err));
  const fields: Record<string, string | number | boolean> = {};
  for (const [key, value] of Object.entries(error)) {
    if (typeof value === "string" || typeof value === "number" || typeof value === "boolean")
      fields[key] = value;
  }
  return { name: error.name, message: error.message, fields };
}

/** The SessionTrack error classes the SDK reports, by name, so `instanceof` works across the boundary. */
const ERROR_CLASSES = new Map<string, new (message: string) => Error>(
  Object.values(errors).flatMap((value) =>
    typeof value === "function" && value.prototype instanceof errors.SessionTrackError
      ? [[value.name, value as new (message: string) => Error] as const]
      : [],
  ),
);

/** An Error rebuilt from {@link errorShape}: same class (for SessionTrack's own), name, message and fields. */
export function errorFrom(shape: ErrorShape): Error {
  const Class = ERROR_CLASSES.get(shape.name) ?? Error;
  const error = new Class(shape.message);
  Object.assign(error, shape.fields);
  error.name = shape.name;
  return error;
}
