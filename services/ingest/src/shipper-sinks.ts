// gRPC clients for the shipper's sinks (archive, index) and the calls ingest makes on them.
import * as grpc from "@grpc/grpc-js";

import {
  InvalidEventError,
  NotFoundError,
  SessionTrackError,
  StorageUnavailableError,
} from "@sessiontrack/errors";
import {
  ArchiveServiceClient,
  ArchiveServiceService,
  IndexServiceClient,
  IndexServiceService,
} from "@sessiontrack/proto";

import type { ShippingConfig, SinkEndpoint } from "./config.js";

/** The sinks ingest ships to, in the order the WAL lists them. */
export type SinkName = "archive" | "index";

/** Delivers one batch to a sink; rejects with the call's grpc ServiceError. */
export interface SinkTransport {
  readonly name: SinkName;
  /** `request` is an encoded WriteBatchRequest / IndexEventsRequest ({@link encodeEventsRequest}). */
  deliver(request: Buffer, signal: AbortSignal): Promise<void>;
}

/** Bytes of an unsigned varint. */
function varintLength(value: number): number {
  let length = 1;
  while (value >= 0x80) {
    value = Math.floor(value / 0x80);
    length += 1;
  }
  return length;
}

/**
 * Encodes WAL records (each an encoded StoredEvent) as `repeated StoredEvent events = 1`,
 * the body of both WriteBatchRequest and IndexEventsRequest, by copying their bytes once:
 * decoding and re-encoding every event cost ingest ~6x more CPU per shipped event, and the
 * sinks receive exactly the bytes the WAL holds.
 */
export function encodeEventsRequest(records: readonly { data: Uint8Array }[]): Buffer {
  let size = 0;
  for (const { data } of records) size += 1 + varintLength(data.length) + data.length;
  const out = Buffer.allocUnsafe(size);
  let offset = 0;
  for (const { data } of records) {
    out[offset++] = 0x0a; // field 1, length-delimited
    let length = data.length;
    while (length >= 0x80) {
      out[offset++] = (length & 0x7f) | 0x80;
      length = Math.floor(length / 0x80);
    }
    out[offset++] = length;
    out.set(data, offset);
    offset += data.length;
  }
  return out;
}

/** Clients of the configured sinks, with the service key every call presents. */
export interface SinkClients {
  archive: ArchiveServiceClient | undefined;
  index: IndexServiceClient | undefined;
  /** `authorization: Bearer <service key>` metadata for a call. */
  metadata(): grpc.Metadata;
  /** Per-call deadline, from --ship-timeout-ms. */
  timeoutMs: number;
  close(): void;
}

const CLIENT_OPTIONS: Partial<grpc.ClientOptions> = {
  "grpc.max_send_message_length": 128 * 1024 * 1024,
  "grpc.max_receive_message_length": 128 * 1024 * 1024,
  "grpc.keepalive_time_ms": 30_000,
  // Reconnect quickly after a sink restarts (grpc-js defaults back off up to 120 s).
  "grpc.initial_reconnect_backoff_ms": 200,
  "grpc.max_reconnect_backoff_ms": 2_000,
};

function credentialsFor(endpoint: SinkEndpoint): grpc.ChannelCredentials {
  return endpoint.tls ? grpc.credentials.createSsl() : grpc.credentials.createInsecure();
}

/** Opens clients to the sinks in `shipping`. */
export function createSinkClients(shipping: ShippingConfig, timeoutMs: number): SinkClients {
  const archive =
    shipping.archive === undefined
      ? undefined
      : new ArchiveServiceClient(shipping.archive.address, credentialsFor(shipping.archive), CLIENT_OPTIONS);
  const index =
    shipping.index === undefined
      ? undefined
      : new IndexServiceClient(shipping.index.address, credentialsFor(shipping.index), CLIENT_OPTIONS);
  const authorization = `Bearer ${shipping.serviceKey}`;
  return {
    archive,
    index,
    timeoutMs,
    metadata() {
      const metadata = new grpc.Metadata();
      metadata.set("authorization", authorization);
      return metadata;
    },
    close() {
      archive?.close();
      index?.close();
    },
  };
}

/** Runs a unary call with a deadline, cancelling it when `signal` aborts. */
export function unaryCall<Response>(
  start: (
    metadata: grpc.Metadata,
    options: Partial<grpc.CallOptions>,
    callback: (error: grpc.ServiceError | null, response: Response) => void,
  ) => grpc.ClientUnaryCall,
  metadata: grpc.Metadata,
  timeoutMs: number,
  signal?: AbortSignal,
): Promise<Response> {
  return new Promise((resolve, reject) => {
    const call = start(metadata, { deadline: Date.now() + timeoutMs }, (error, response) => {
      signal?.removeEventListener("abort", cancel);
      if (error === null) resolve(response);
      else reject(error);
    });
    const cancel = (): void => call.cancel();
    if (signal?.aborted === true) call.cancel();
    else signal?.addEventListener("abort", cancel, { once: true });
  });
}

const passThrough = (bytes: Buffer): Buffer => bytes;

/** A sink transport with a client of its own, closed when no longer used (a canary's). */
export interface ClosableSinkTransport extends SinkTransport {
  close(): void;
}

/** Delivers through a generated client's method, the request body passed as already-encoded bytes. */
function transportFor(
  name: SinkName,
  client: grpc.Client,
  clients: Pick<SinkClients, "metadata" | "timeoutMs">,
): SinkTransport {
  const method = name === "archive" ? ArchiveServiceService.writeBatch : IndexServiceService.indexEvents;
  return {
    name,
    async deliver(request: Buffer, signal: AbortSignal): Promise<void> {
      await unaryCall(
        (metadata, options, callback) =>
          client.makeUnaryRequest(
            method.path,
            passThrough,
            method.responseDeserialize,
            request,
            metadata,
            options,
            callback,
          ),
        clients.metadata(),
        clients.timeoutMs,
        signal,
      );
    },
  };
}

/** The transports the shipper drives, one per configured sink. */
export function sinkTransports(clients: SinkClients): SinkTransport[] {
  const transports: SinkTransport[] = [];
  if (clients.archive !== undefined) transports.push(transportFor("archive", clients.archive, clients));
  if (clients.index !== undefined) transports.push(transportFor("index", clients.index, clients));
  return transports;
}

/**
 * A transport to another instance of `sink` at `endpoint` (a canary), presenting the same
 * service key and deadline as the stable sink's.
 */
export function openSinkTransport(
  sink: SinkName,
  endpoint: SinkEndpoint,
  clients: Pick<SinkClients, "metadata" | "timeoutMs">,
): ClosableSinkTransport {
  const Client = sink === "archive" ? ArchiveServiceClient : IndexServiceClient;
  const client = new Client(endpoint.address, credentialsFor(endpoint), CLIENT_OPTIONS);
  return { ...transportFor(sink, client, clients), close: () => client.close() };
}

/** The grpc status of a failed call, or undefined for errors that did not come from gRPC. */
export function grpcCode(error: unknown): grpc.status | undefined {
  if (typeof error === "object" && error !== null && "code" in error) {
    const code = error.code;
    if (typeof code === "number" && grpc.status[code] !== undefined) return code;
  }
  return undefined;
}

/** Name of a gRPC status code ("UNAVAILABLE"); a failure inside ingest by its meaning, else "LOCAL". */
export function codeName(error: unknown): string {
  if (error instanceof SessionTrackError) return error.code;
  const code = grpcCode(error);
  return code === undefined ? "LOCAL" : (grpc.status[code] ?? String(code));
}

/** True for failures that go away by themselves: the sink is down, slow or overloaded. */
export function isTransient(error: unknown): boolean {
  if (error instanceof SessionTrackError) return error.retryable;
  const code = grpcCode(error);
  return (
    code === undefined ||
    code === grpc.status.UNAVAILABLE ||
    code === grpc.status.DEADLINE_EXCEEDED ||
    code === grpc.status.RESOURCE_EXHAUSTED ||
    code === grpc.status.ABORTED ||
    code === grpc.status.CANCELLED
  );
}

/** What a failed call says: a gRPC error's details, else the error's message. */
export function callErrorDetails(error: unknown): string {
  if (typeof error === "object" && error !== null && "details" in error) return String(error.details);
  return error instanceof Error ? error.message : String(error);
}

/** Turns a failed call to a sink into a domain error that names the sink and the call. */
export function sinkCallError(sink: SinkName, call: string, error: unknown): SessionTrackError {
  const message = `${sink} ${call} failed (${codeName(error)}): ${callErrorDetails(error)}`;
  switch (grpcCode(error)) {
    case grpc.status.INVALID_ARGUMENT:
      return new InvalidEventError(message, {}, { cause: error });
    case grpc.status.NOT_FOUND:
      return new NotFoundError(message, { cause: error });
    default:
      return new StorageUnavailableError(message, { cause: error });
  }
}
