/**
 * @sessiontrack/client — the capture SDK bots embed. See README.md for the guarantees.
 * @packageDocumentation
 */
export { SessionTrackClient, CLIENT_VERSION } from "./client.js";
export { WorkerSessionTrackClient } from "./worker-client.js";
export { cohortHash, decideCapture, inCohort } from "./sampling.js";
export type { CaptureContext } from "./sampling.js";
export { uuidv7 } from "./uuidv7.js";
export type {
  AssistantMessageInput,
  CaptureClient,
  CaptureInput,
  ClientStats,
  DeepPartial,
  DropNotice,
  DropReason,
  FlushResult,
  SessionCapture,
  SessionTrackClientOptions,
} from "./types.js";
export { EndReason, type CaptureConfig } from "@sessiontrack/proto";
