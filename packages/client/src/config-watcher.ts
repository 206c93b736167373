import * as grpc from "@grpc/grpc-js";
import { IngestServiceService } from "@sessiontrack/proto";
import type { CaptureConfig, WatchConfigRequest, WatchConfigResponse } from "@sessiontrack/proto";
import { ChannelReadiness } from "./channel-readiness.js";
import { WATCH_CONFIG_PATH } from "./wire.js";

const BACKOFF_BASE_MS = 100;
const BACKOFF_CAP_MS = 2000;

/**
 * Keeps one `IngestService.WatchConfig` call open and hands every configuration it
 * receives to `apply`; re-opens with jittered exponential backoff when the call ends.
 */
export class CaptureConfigWatcher {
  private call: grpc.ClientReadableStream<WatchConfigResponse> | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private failures = 0;
  private stopped = false;
  private outageReported = false;
  /** While ingest is unreachable, the watch reopens when grpc-js's reconnect changes the channel's state. */
  private readonly readiness = new ChannelReadiness(
    () => this.start(),
    (err) => this.onError(err),
  );

  constructor(
    private readonly grpcClient: grpc.Client,
    private readonly metadata: () => grpc.Metadata,
    private readonly request: WatchConfigRequest,
    private readonly apply: (config: CaptureConfig) => void,
    private readonly onError: (err: Error) => void,
  ) {}

  /** Opens the watch; while the channel is in TRANSIENT_FAILURE, once it leaves it (see ChannelReadiness). */
  start(): void {
    if (this.stopped || this.call !== undefined) return;
    if (!this.readiness.callable(this.grpcClient)) return;
    const call = this.grpcClient.makeServerStreamRequest(
      WATCH_CONFIG_PATH,
      IngestServiceService.watchConfig.requestSerialize,
      IngestServiceService.watchConfig.responseDeserialize,
      this.request,
      this.metadata(),
      {},
    );
    this.call = call;
    call.on("data", (response: WatchConfigResponse) => {
      if (this.call !== call || response.config === undefined) return;
      this.failures = 0;
      this.outageReported = false;
      try {
        this.apply(response.config);
      } catch (err) {
        this.onError(err instanceof Error ? err : new Error(String(err)));
      }
    });
    call.on("error", () => undefined);
    call.on("status", (status: grpc.StatusObject) => {
      if (this.call !== call) return;
      this.call = undefined;
      if (!this.outageReported) {
        this.outageReported = true;
        this.onError(new Error(`WatchConfig ended: ${grpc.status[status.code]} ${status.details}; retrying`));
      }
      this.scheduleRetry();
    });
  }

  /** Cancels the watch and any pending retry. */
  stop(): void {
    this.stopped = true;
    if (this.retryTimer !== undefined) clearTimeout(this.retryTimer);
    const call = this.call;
    this.call = undefined;
    call?.cancel();
  }

  private scheduleRetry(): void {
    if (this.stopped) return;
    this.failures++;
    const ceiling = Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** this.failures);
    this.retryTimer = setTimeout(
      () => {
        this.retryTimer = undefined;
        this.start();
      },
      ceiling / 2 + Math.random() * (ceiling / 2),
    );
    this.retryTimer.unref();
  }
}
