import * as grpc from "@grpc/grpc-js";
import { IngestServiceService } from "@sessiontrack/proto";
import type {
  BatchRejected,
  CaptureConfig,
  Event,
  IngestServiceServer,
  StreamRequest,
  StreamResponse,
  WatchConfigRequest,
  WatchConfigResponse,
} from "@sessiontrack/proto";

/** Decides whether the fixture rejects a batch; return undefined to accept it. */
export type RejectPolicy = (request: StreamRequest) => Omit<BatchRejected, "batchSeq"> | undefined;

/**
 * A real grpc-js IngestService for tests: records every event id it receives, stores
 * each id once, and can delay acks, reject batches, go down and come back on the same
 * port, and push WatchConfig updates. Test-only; not exported from the package.
 */
export class FakeIngest {
  /** Event ids in arrival order, duplicates included. */
  readonly receivedIds: string[] = [];
  /** Acked events by id, stored once. */
  readonly stored = new Map<string, Event>();
  /** Events received again after they were already stored. */
  duplicatesReceived = 0;
  /** Batches answered, by kind. */
  batchesAcked = 0;
  batchesRejected = 0;
  /** Delay before each ack, in ms. */
  ackDelayMs = 0;
  rejectPolicy: RejectPolicy | undefined;
  /** `capture_overhead_pct` values the SDK reported (0 = none, not recorded). */
  readonly overheadReports: number[] = [];
  /** Bot ids of WatchConfig calls seen. */
  readonly watchers: WatchConfigRequest[] = [];
  private server: grpc.Server | undefined;
  private readonly openWatches = new Set<
    grpc.ServerWritableStream<WatchConfigRequest, WatchConfigResponse>
  >();
  private readonly pendingTimers = new Set<NodeJS.Timeout>();

  private constructor(
    public port: number,
    private readonly apiKey: string,
    public config: CaptureConfig | undefined,
  ) {}

  /** Starts a fixture on 127.0.0.1 and an ephemeral port (or `port`). */
  static async start(
    opts: { apiKey?: string; config?: CaptureConfig; port?: number } = {},
  ): Promise<FakeIngest> {
    const fake = new FakeIngest(opts.port ?? 0, opts.apiKey ?? "test-key", opts.config);
    await fake.listen();
    return fake;
  }

  /** `host:port` to give the client. */
  get target(): string {
    return `127.0.0.1:${this.port}`;
  }

  /** WatchConfig calls open right now. */
  get openWatchCount(): number {
    return this.openWatches.size;
  }

  /** The key clients must present. */
  get key(): string {
    return this.apiKey;
  }

  /** Stops at once, breaking every open call (as a crashed ingest would). */
  stop(): void {
    for (const timer of this.pendingTimers) clearTimeout(timer);
    this.pendingTimers.clear();
    this.openWatches.clear();
    this.server?.forceShutdown();
    this.server = undefined;
  }

  /** Comes back on the same port, keeping everything recorded so far. */
  async restart(): Promise<void> {
    if (this.server === undefined) await this.listen();
  }

  /** Sends `config` to every open WatchConfig call and to later ones. */
  pushConfig(config: CaptureConfig): void {
    this.config = config;
    for (const call of this.openWatches) call.write({ config });
  }

  /** Polls until `predicate` holds; rejects after `timeoutMs`. */
  async waitFor(predicate: () => boolean, timeoutMs: number, what = "condition"): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!predicate()) {
      if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  }

  private async listen(): Promise<void> {
    const server = new grpc.Server();
    const implementation: IngestServiceServer = {
      append: (_call, callback) => callback({ code: grpc.status.UNIMPLEMENTED, details: "use Stream" }),
      stream: (call) => this.handleStream(call),
      watchConfig: (call) => this.handleWatch(call),
    };
    server.addService(IngestServiceService, implementation);
    this.port = await new Promise<number>((resolve, reject) =>
      server.bindAsync(`127.0.0.1:${this.port}`, grpc.ServerCredentials.createInsecure(), (err, port) =>
        err ? reject(err) : resolve(port),
      ),
    );
    this.server = server;
  }

  private authorized(call: { metadata: grpc.Metadata }): boolean {
    return call.metadata.get("authorization")[0] === `Bearer ${this.apiKey}`;
  }

  private handleStream(call: grpc.ServerDuplexStream<StreamRequest, StreamResponse>): void {
    if (!this.authorized(call)) {
      call.emit("error", { code: grpc.status.UNAUTHENTICATED, details: "bad api key" });
      return;
    }
    call.on("error", () => undefined);
    call.on("end", () => call.end());
    call.on("data", (request: StreamRequest) => {
      for (const event of request.events) this.receivedIds.push(event.eventId);
      if (request.captureOverheadPct !== 0) this.overheadReports.push(request.captureOverheadPct);
      const rejection = this.rejectPolicy?.(request);
      if (rejection !== undefined) {
        this.batchesRejected++;
        call.write({ result: { $case: "rejected", value: { batchSeq: request.batchSeq, ...rejection } } });
        return;
      }
      const ack = (): void => {
        let duplicates = 0;
        for (const event of request.events) {
          if (this.stored.has(event.eventId)) duplicates++;
          else this.stored.set(event.eventId, event);
        }
        this.duplicatesReceived += duplicates;
        this.batchesAcked++;
        const accepted = request.events.length - duplicates;
        call.write({ result: { $case: "ack", value: { batchSeq: request.batchSeq, accepted, duplicates } } });
      };
      if (this.ackDelayMs <= 0) {
        ack();
        return;
      }
      const timer = setTimeout(() => {
        this.pendingTimers.delete(timer);
        if (!call.cancelled) ack();
      }, this.ackDelayMs);
      this.pendingTimers.add(timer);
    });
  }

  private handleWatch(call: grpc.ServerWritableStream<WatchConfigRequest, WatchConfigResponse>): void {
    if (!this.authorized(call)) {
      call.emit("error", { code: grpc.status.UNAUTHENTICATED, details: "bad api key" });
      return;
    }
    this.watchers.push(call.request);
    this.openWatches.add(call);
    call.on("cancelled", () => this.openWatches.delete(call));
    call.on("error", () => this.openWatches.delete(call));
    if (this.config !== undefined) call.write({ config: this.config });
  }
}
