import * as grpc from "@grpc/grpc-js";

import { InvalidEventError, SessionTrackError, StorageUnavailableError } from "@sessiontrack/errors";
import type { RedactionHit, StreamResponse, WatchConfigResponse } from "@sessiontrack/proto";
import {
  AppendResponse,
  IngestServiceService,
  type CaptureConfig,
  type WatchConfigRequest,
} from "@sessiontrack/proto";
import { toGrpcError, type Logger, type Principal, type TenantDirectory } from "@sessiontrack/runtime";
import type { WalRecordInput, WriteAheadLog } from "@sessiontrack/wal";

import { captureConfigFor, type CaptureConfigSource } from "./capture-config.js";
import { decodeBatchEnvelope, decodeEvent, type RawBatch } from "./decode.js";
import { encodeStoredEvent } from "./stored-event.js";
import type { IngestMetrics } from "./metrics.js";
import type { RedactorFor } from "./redaction.js";
import { validateEvent } from "./validate.js";

/** Size limits a batch must respect. */
export interface BatchLimits {
  maxEventBytes: number;
  maxBatchEvents: number;
  maxBatchBytes: number;
}

/** What ingest needs to serve IngestService. */
export interface IngestServiceDeps {
  wal: WriteAheadLog;
  tenants: TenantDirectory;
  captureConfig: CaptureConfigSource;
  limits: BatchLimits;
  metrics: IngestMetrics;
  logger: Logger;
  /** The tenant's privacy rules, applied to every event before it is written. */
  redactorFor: RedactorFor;
}

/** A Stream keeps at most this many batches in flight before it stops reading. */
const MAX_STREAM_BATCHES_IN_FLIGHT = 64;

const identity = (bytes: Buffer): Buffer => bytes;

/**
 * IngestService's definition with requests left as bytes: grpc-js would turn a
 * deserialization failure into INTERNAL, and ingest wants INVALID_ARGUMENT naming the
 * bad event, plus each event's original bytes for the log.
 */
export const RawIngestServiceDefinition = {
  append: { ...IngestServiceService.append, requestDeserialize: identity },
  stream: { ...IngestServiceService.stream, requestDeserialize: identity },
  watchConfig: IngestServiceService.watchConfig,
} satisfies grpc.ServiceDefinition;

function codeName(code: grpc.status): string {
  return grpc.status[code] ?? String(code);
}

/**
 * Refusal of a replica that drains before a scale-down: retryable, and not counted as a
 * rejected batch (it says nothing about the health of the version it runs).
 */
export class ReplicaDrainingError extends StorageUnavailableError {}

/** An open call that a drain can end. */
interface OpenCall {
  rpc: "Stream" | "WatchConfig";
  /** Ends the call gracefully (a stream after its in-flight acks). */
  drain(): Promise<void>;
  /** Ends the call with UNAVAILABLE, so the client calls again (and re-resolves). */
  release(reason: string): void;
}

/**
 * The IngestService handlers. Every accepted event is validated, then appended to the
 * write-ahead log; acknowledgements wait for the log's fdatasync.
 */
export class IngestService {
  /** Shutting down (SIGTERM): final. */
  private draining = false;
  /** The operator asked this replica to drain before a scale-down: reversible. */
  private intakeClosed = false;
  /** Streams opened so far; numbers each one's capture overhead reports. */
  private streams = 0;
  private readonly openCalls = new Set<OpenCall>();
  /** Batches accepted and not answered yet (Stream and Append): a drain waits for their acks. */
  private readonly batchesInFlight = new Set<Promise<unknown>>();

  constructor(private readonly deps: IngestServiceDeps) {}

  /** The grpc-js implementation object for {@link RawIngestServiceDefinition}. */
  implementation(): grpc.UntypedServiceImplementation {
    return {
      append: (
        call: grpc.ServerUnaryCall<Buffer, AppendResponse>,
        callback: grpc.sendUnaryData<AppendResponse>,
      ) => this.append(call, callback),
      stream: (call: grpc.ServerDuplexStream<Buffer, StreamResponse>) => this.stream(call),
      watchConfig: (call: grpc.ServerWritableStream<WatchConfigRequest, WatchConfigResponse>) =>
        this.watchConfig(call),
    };
  }

  /** Refuses new batches, finishes the ones in flight, and ends every open call. */
  async drain(): Promise<void> {
    this.draining = true;
    await Promise.all([...this.openCalls].map((call) => call.drain()));
    await this.settled();
  }

  /**
   * Closes intake while the replica drains before a scale-down: new Stream and Append calls
   * are refused with UNAVAILABLE, open streams end once their in-flight batches are acked,
   * and Append batches already accepted are acked. Resolves when nothing is in flight any
   * more. WatchConfig calls stay open until {@link releaseWatchers}; the shipper goes on
   * until the WAL is shipped.
   */
  async closeIntake(): Promise<void> {
    this.intakeClosed = true;
    await Promise.all(
      [...this.openCalls].filter((call) => call.rpc === "Stream").map((call) => call.drain()),
    );
    await this.settled();
  }

  /**
   * Ends every WatchConfig call with UNAVAILABLE: the SDK watches again, and once the
   * connection is closed too (GOAWAY) it re-resolves the Service, which lists ready pods only.
   */
  releaseWatchers(reason: string): number {
    const watchers = [...this.openCalls].filter((call) => call.rpc === "WatchConfig");
    for (const call of watchers) call.release(reason);
    return watchers.length;
  }

  /** Resolves once every batch accepted so far is answered (acked or refused). */
  private async settled(): Promise<void> {
    while (this.batchesInFlight.size > 0) {
      await Promise.allSettled([...this.batchesInFlight]);
    }
  }

  /** Accepts streams and batches again (the drain was withdrawn). */
  openIntake(): void {
    this.intakeClosed = false;
  }

  /** Why a new batch or stream is refused right now, if it is. */
  private refusal(): StorageUnavailableError | undefined {
    if (this.draining)
      return new StorageUnavailableError("ingest is shutting down; retry against another replica");
    if (this.intakeClosed) {
      return new ReplicaDrainingError(
        "this ingest replica is draining before a scale-down and takes no new events; reconnect to reach another replica",
      );
    }
    return undefined;
  }

  /** Validates a batch and stores it; resolves once it is durable. Counted in flight until then. */
  acceptBatch(principal: Principal, batch: RawBatch): Promise<{ accepted: number; duplicates: number }> {
    const refused = this.refusal();
    if (refused !== undefined) return Promise.reject(refused);
    const pending = this.storeBatch(principal, batch);
    const { batchesInFlight } = this.deps.metrics;
    this.batchesInFlight.add(pending);
    batchesInFlight.inc();
    const settle = (): void => {
      this.batchesInFlight.delete(pending);
      batchesInFlight.dec();
    };
    pending.then(settle, settle);
    return pending;
  }

  private async storeBatch(
    principal: Principal,
    batch: RawBatch,
  ): Promise<{ accepted: number; duplicates: number }> {
    const { limits, wal } = this.deps;
    const count = batch.events.length;
    if (count === 0) throw new InvalidEventError("batch is empty: send at least one event");
    if (count > limits.maxBatchEvents) {
      throw new InvalidEventError(
        `batch holds ${count} events; the limit is ${limits.maxBatchEvents} (--max-batch-events)`,
      );
    }
    const totalBytes = batch.events.reduce((sum, event) => sum + event.length, 0);
    if (totalBytes > limits.maxBatchBytes) {
      throw new InvalidEventError(
        `batch holds ${totalBytes} bytes of events; the limit is ${limits.maxBatchBytes} (--max-batch-bytes)`,
      );
    }
    const receivedAt = new Date();
    const now = receivedAt.getTime();
    const redactor = this.deps.redactorFor(principal.tenant);
    const redactionHits: RedactionHit[] = [];
    let redactedEvents = 0;
    const records: WalRecordInput[] = batch.events.map((bytes, index) => {
      if (bytes.length > limits.maxEventBytes) {
        throw new InvalidEventError(`event is ${bytes.length} bytes; the limit is ${limits.maxEventBytes}`, {
          eventIndex: index,
        });
      }
      const event = decodeEvent(bytes, index);
      validateEvent(event, index, now);
      // Privacy rules per tenant, before anything is written: events the byte prefilter
      // clears keep their bytes; the others are redacted and re-encoded.
      const redacted = redactor.redactEncoded(bytes, event);
      if (redacted.redactions.length > 0) {
        redactedEvents += 1;
        redactionHits.push(...redacted.redactions);
      }
      return {
        key: `${principal.tenant}/${event.eventId}`,
        data: encodeStoredEvent(
          {
            tenant: principal.tenant,
            eventId: event.eventId,
            sessionId: event.sessionId,
            seq: event.seq,
            receivedAt,
            redactions: redacted.redactions,
          },
          redacted.event,
        ),
      };
    });
    const results = await wal.append(records);
    const duplicates = results.reduce((sum, result) => sum + (result.duplicate ? 1 : 0), 0);
    if (redactedEvents > 0) {
      this.deps.metrics.redactedEvents.inc(redactedEvents);
      for (const hit of redactionHits) {
        this.deps.metrics.redactions.inc({ rule: hit.rule, action: hit.action }, hit.count);
      }
    }
    this.deps.metrics.events.inc({ result: "accepted" }, count - duplicates);
    if (duplicates > 0) this.deps.metrics.events.inc({ result: "duplicate" }, duplicates);
    return { accepted: count - duplicates, duplicates };
  }

  private authorize(
    call: { metadata: grpc.Metadata },
    roles: Parameters<TenantDirectory["authorize"]>[1],
  ): Principal {
    const values = call.metadata.get("authorization");
    return this.deps.tenants.authorize(values.length > 1 ? null : values[0], roles);
  }

  private fail(error: unknown, rpc: "Append" | "Stream" = "Stream"): grpc.ServiceError {
    const wire = toGrpcError(error, this.deps.logger);
    if (error instanceof ReplicaDrainingError) this.deps.metrics.drainRefusals.inc({ rpc });
    else this.deps.metrics.rejectedBatches.inc({ code: codeName(wire.code) });
    return wire;
  }

  private append(
    call: grpc.ServerUnaryCall<Buffer, AppendResponse>,
    callback: grpc.sendUnaryData<AppendResponse>,
  ): void {
    const started = process.hrtime.bigint();
    this.deps.metrics.batches.inc({ rpc: "Append" });
    let principal: Principal;
    let batch: RawBatch;
    try {
      principal = this.authorize(call, ["ingest", "admin"]);
      batch = decodeBatchEnvelope(call.request, "AppendRequest");
    } catch (error) {
      callback(this.fail(error, "Append"));
      return;
    }
    // One unary call per batch: the connection (client address) is the reporter.
    this.deps.metrics.captureOverhead.report(`append ${call.getPeer()}`, batch.captureOverheadPct);
    this.acceptBatch(principal, batch).then(
      (result) => {
        this.deps.metrics.ackLatency.observe(Number(process.hrtime.bigint() - started) / 1e9);
        callback(null, AppendResponse.fromPartial(result));
      },
      (error: unknown) => callback(this.fail(error, "Append")),
    );
  }

  private stream(call: grpc.ServerDuplexStream<Buffer, StreamResponse>): void {
    let principal: Principal;
    try {
      principal = this.authorize(call, ["ingest", "admin"]);
    } catch (error) {
      call.emit("error", this.fail(error));
      return;
    }
    const refused = this.refusal();
    if (refused !== undefined) {
      call.emit("error", this.fail(refused));
      return;
    }
    const { metrics, logger } = this.deps;
    metrics.openStreams.inc();
    const reporter = `stream ${(this.streams += 1)}`;
    let inFlight = 0;
    let ended = false;
    let closed = false;
    // Acks go out in the order batches arrived, while their appends overlap in the WAL.
    let tail: Promise<void> = Promise.resolve();
    const write = async (response: StreamResponse): Promise<void> => {
      if (closed) return;
      if (!call.write(response)) await new Promise<void>((resolve) => call.once("drain", resolve));
    };
    const finish = (): void => {
      if (closed) return;
      closed = true;
      metrics.openStreams.dec();
      this.openCalls.delete(handle);
    };
    const handle: OpenCall = {
      rpc: "Stream",
      drain: async (): Promise<void> => {
        await tail;
        if (!closed) {
          call.end();
          finish();
        }
      },
      release: (reason: string): void => {
        if (closed) return;
        call.emit("error", { code: grpc.status.UNAVAILABLE, details: reason, metadata: new grpc.Metadata() });
        finish();
      },
    };
    this.openCalls.add(handle);

    call.on("data", (bytes: Buffer) => {
      const started = process.hrtime.bigint();
      metrics.batches.inc({ rpc: "Stream" });
      let batchSeq = 0;
      let outcome: Promise<StreamResponse>;
      try {
        const batch = decodeBatchEnvelope(bytes, "StreamRequest");
        batchSeq = batch.batchSeq;
        metrics.captureOverhead.report(reporter, batch.captureOverheadPct);
        outcome = this.acceptBatch(principal, batch).then((result) => {
          metrics.ackLatency.observe(Number(process.hrtime.bigint() - started) / 1e9);
          return { result: { $case: "ack", value: { batchSeq, ...result } } };
        });
      } catch (error) {
        outcome = Promise.reject(error instanceof Error ? error : new Error(String(error)));
      }
      const response = outcome.catch((error: unknown): StreamResponse => {
        const wire = this.fail(error);
        const retryable = error instanceof SessionTrackError ? error.retryable : false;
        return {
          result: {
            $case: "rejected",
            value: { batchSeq, code: wire.code, message: wire.details, retryable },
          },
        };
      });
      inFlight += 1;
      if (inFlight >= MAX_STREAM_BATCHES_IN_FLIGHT) call.pause();
      tail = tail
        .then(() => response)
        .then(write)
        .then(() => {
          inFlight -= 1;
          if (inFlight < MAX_STREAM_BATCHES_IN_FLIGHT) call.resume();
          if (ended && inFlight === 0 && !closed) {
            call.end();
            finish();
          }
        })
        .catch((error: unknown) => logger.warn({ err: error }, "stream: writing an ack failed"));
    });
    call.on("end", () => {
      ended = true;
      if (inFlight === 0 && !closed) {
        call.end();
        finish();
      }
    });
    call.on("cancelled", finish);
    call.on("error", (error) => {
      logger.debug({ err: error }, "stream: call error");
      finish();
    });
    call.on("close", finish);
  }

  private watchConfig(call: grpc.ServerWritableStream<WatchConfigRequest, WatchConfigResponse>): void {
    let principal: Principal;
    try {
      principal = this.authorize(call, ["ingest", "read", "admin"]);
    } catch (error) {
      call.emit("error", this.fail(error));
      return;
    }
    const { captureConfig, metrics } = this.deps;
    const send = (config: CaptureConfig): void => {
      const view = captureConfigFor(config, captureConfig.tenantRules, principal.tenant, call.request.botId);
      call.write({ config: view });
    };
    let closed = false;
    const unsubscribe = captureConfig.subscribe(send);
    const finish = (): void => {
      if (closed) return;
      closed = true;
      unsubscribe();
      metrics.configWatchers.dec();
      this.openCalls.delete(handle);
    };
    const handle: OpenCall = {
      rpc: "WatchConfig",
      drain: (): Promise<void> => {
        if (!closed) {
          call.end();
          finish();
        }
        return Promise.resolve();
      },
      release: (reason: string): void => {
        if (closed) return;
        call.emit("error", { code: grpc.status.UNAVAILABLE, details: reason, metadata: new grpc.Metadata() });
        finish();
      },
    };
    this.openCalls.add(handle);
    metrics.configWatchers.inc();
    call.on("cancelled", finish);
    call.on("error", finish);
    call.on("close", finish);
    send(captureConfig.config);
  }
}
