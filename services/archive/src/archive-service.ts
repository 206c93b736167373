import type * as grpc from "@grpc/grpc-js";

import { InvalidEventError, SessionTrackError, TenantNotFoundError } from "@sessiontrack/errors";
import {
  ArchiveServiceEraseRequest,
  ArchiveServiceGetSessionRequest,
  ArchiveServiceService,
  BinaryReader,
  BinaryWriter,
  ScanEventsRequest,
  VerifyRequest,
  WireType,
  type ArchiveServiceEraseResponse,
  type VerifyResponse,
  type WriteBatchResponse,
} from "@sessiontrack/proto";
import { toGrpcError, type GrpcError, type Logger, type TenantDirectory } from "@sessiontrack/runtime";

import type { Archive } from "./archive.js";
import { erase } from "./erase.js";
import type { KeyEncryptionKeyDirectory } from "./keys.js";
import type { ArchiveMetrics } from "./metrics.js";
import { verify } from "./verify.js";

const identity = (bytes: Buffer): Buffer => bytes;

/**
 * ArchiveService with requests decoded by the service (malformed bytes become
 * INVALID_ARGUMENT, not INTERNAL), WriteBatch's events kept as the exact bytes received,
 * and GetSession/ScanEvents responses assembled from the stored bytes, so a transcript
 * comes back byte for byte as it was written.
 */
export const RawArchiveServiceDefinition = {
  writeBatch: { ...ArchiveServiceService.writeBatch, requestDeserialize: identity },
  getSession: {
    ...ArchiveServiceService.getSession,
    requestDeserialize: identity,
    responseSerialize: identity,
  },
  scanEvents: {
    ...ArchiveServiceService.scanEvents,
    requestDeserialize: identity,
    responseSerialize: identity,
  },
  erase: { ...ArchiveServiceService.erase, requestDeserialize: identity },
  verify: { ...ArchiveServiceService.verify, requestDeserialize: identity },
} satisfies grpc.ServiceDefinition;

/** Splits an encoded WriteBatchRequest into its StoredEvents' bytes. */
export function splitWriteBatch(bytes: Buffer): Buffer[] {
  const events: Buffer[] = [];
  try {
    const reader = new BinaryReader(bytes);
    while (reader.pos < reader.len) {
      const [field, wireType] = reader.tag();
      if (field === 1 && wireType === WireType.LengthDelimited) {
        const event = reader.bytes();
        events.push(Buffer.from(event.buffer, event.byteOffset, event.byteLength));
      } else if (field === 1) {
        throw new Error(`field 1 has wire type ${wireType}; events must be length-delimited messages`);
      } else {
        reader.skip(wireType, field);
      }
    }
  } catch (error) {
    throw new InvalidEventError(
      `request is not a valid sessiontrack.v1.WriteBatchRequest: ${(error as Error).message}`,
      {},
      { cause: error },
    );
  }
  return events;
}

/** Encodes `repeated StoredEvent events = 1` from stored bytes (GetSession and ScanEvents responses). */
export function encodeEventsMessage(events: readonly Buffer[]): Buffer {
  const writer = new BinaryWriter();
  for (const event of events) writer.uint32((1 << 3) | 2).bytes(event);
  return Buffer.from(writer.finish());
}

function decodeRequest<T>(decode: (bytes: Uint8Array) => T, bytes: Buffer, name: string): T {
  try {
    return decode(bytes);
  } catch (error) {
    throw new InvalidEventError(
      `request is not a valid sessiontrack.v1.${name}: ${(error as Error).message}`,
      {},
      { cause: error },
    );
  }
}

/** What the service handlers need. */
export interface ArchiveServiceDeps {
  archive: Archive;
  tenants: TenantDirectory;
  keks: KeyEncryptionKeyDirectory;
  metrics: ArchiveMetrics;
  logger: Logger;
  clock: () => number;
}

const SCAN_CHUNK_EVENTS = 500;
const SCAN_CHUNK_BYTES = 4 * 1024 * 1024;

/** The ArchiveService handlers: authorization, then the archive. */
export class ArchiveService {
  constructor(private readonly deps: ArchiveServiceDeps) {}

  implementation(): grpc.UntypedServiceImplementation {
    return {
      writeBatch: (
        call: grpc.ServerUnaryCall<Buffer, WriteBatchResponse>,
        callback: grpc.sendUnaryData<WriteBatchResponse>,
      ) =>
        this.unary("WriteBatch", callback, async () => {
          this.deps.tenants.authorizeService(call.metadata.get("authorization")[0]);
          return this.deps.archive.writeBatch(splitWriteBatch(call.request));
        }),
      getSession: (call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) =>
        this.unary("GetSession", callback, async () => {
          const principal = this.deps.tenants.authorize(call.metadata.get("authorization")[0], [
            "read",
            "admin",
          ]);
          const request = decodeRequest(
            (b) => ArchiveServiceGetSessionRequest.decode(b),
            call.request,
            "ArchiveServiceGetSessionRequest",
          );
          if (request.sessionId === "") throw new InvalidEventError("session_id: is required");
          const events = await this.deps.archive.getSession(principal.tenant, request.sessionId);
          return encodeEventsMessage(events.map((event) => event.bytes));
        }),
      scanEvents: (call: grpc.ServerWritableStream<Buffer, Buffer>) => {
        void this.scan(call);
      },
      erase: (
        call: grpc.ServerUnaryCall<Buffer, ArchiveServiceEraseResponse>,
        callback: grpc.sendUnaryData<ArchiveServiceEraseResponse>,
      ) =>
        this.unary("Erase", callback, async () => {
          this.deps.tenants.authorizeService(call.metadata.get("authorization")[0]);
          const request = decodeRequest(
            (b) => ArchiveServiceEraseRequest.decode(b),
            call.request,
            "ArchiveServiceEraseRequest",
          );
          if (request.tenant === "") throw new InvalidEventError("tenant: is required");
          if (!this.deps.tenants.hasTenant(request.tenant)) {
            throw new TenantNotFoundError(`tenant "${request.tenant}" is not in the tenants file`);
          }
          const target = request.target?.target;
          if (target === undefined)
            throw new InvalidEventError("target: set exactly one of user_id or session_id");
          return erase(
            this.deps.archive,
            this.deps.metrics,
            this.deps.logger,
            request.tenant,
            target.$case === "userId"
              ? { kind: "user", userId: target.value }
              : { kind: "session", sessionId: target.value },
            request.receiptId,
            this.deps.clock(),
          );
        }),
      verify: (
        call: grpc.ServerUnaryCall<Buffer, VerifyResponse>,
        callback: grpc.sendUnaryData<VerifyResponse>,
      ) =>
        this.unary("Verify", callback, async () => {
          const principal = this.deps.tenants.authorize(call.metadata.get("authorization")[0], [
            "read",
            "admin",
          ]);
          const request = decodeRequest((b) => VerifyRequest.decode(b), call.request, "VerifyRequest");
          const result = await verify(this.deps.archive, this.deps.keks, principal.tenant, request.sessionId);
          this.deps.metrics.verifyProblems.inc(result.problems.length);
          return result;
        }),
    };
  }

  private unary<T>(rpc: string, callback: grpc.sendUnaryData<T>, work: () => Promise<T>): void {
    work().then(
      (response) => callback(null, response),
      (error: unknown) => callback(this.failure(rpc, error)),
    );
  }

  private failure(rpc: string, error: unknown): GrpcError {
    this.deps.metrics.errors.inc({
      rpc,
      kind: error instanceof SessionTrackError ? error.name : "InternalError",
    });
    return toGrpcError(error, this.deps.logger);
  }

  private async scan(call: grpc.ServerWritableStream<Buffer, Buffer>): Promise<void> {
    try {
      this.deps.tenants.authorizeService(call.metadata.get("authorization")[0]);
      const request = decodeRequest((b) => ScanEventsRequest.decode(b), call.request, "ScanEventsRequest");
      let chunk: Buffer[] = [];
      let chunkBytes = 0;
      const flush = async (): Promise<void> => {
        if (chunk.length === 0) return;
        const message = encodeEventsMessage(chunk);
        chunk = [];
        chunkBytes = 0;
        if (!call.write(message)) await new Promise<void>((resolve) => call.once("drain", resolve));
      };
      for await (const session of this.deps.archive.scan(
        request.tenant === "" ? undefined : request.tenant,
      )) {
        if (call.cancelled) return;
        for (const event of session.events) {
          chunk.push(event.bytes);
          chunkBytes += event.bytes.length;
          if (chunk.length >= SCAN_CHUNK_EVENTS || chunkBytes >= SCAN_CHUNK_BYTES) await flush();
        }
      }
      await flush();
      call.end();
    } catch (error) {
      call.emit("error", this.failure("ScanEvents", error));
    }
  }
}
