import * as grpc from "@grpc/grpc-js";

import { InvalidEventError, NotFoundError } from "@sessiontrack/errors";
import {
  BinaryReader,
  GetSessionRequest,
  type IndexEventsResponse,
  IndexServiceEraseRequest,
  type IndexServiceEraseResponse,
  IndexServiceService,
  SearchRequest,
  type SearchResponse,
} from "@sessiontrack/proto";
import { toGrpcError, type Logger, type TenantDirectory } from "@sessiontrack/runtime";

import type { EraseSelector, IndexBackend } from "./backend.js";
import { documentFromStoredEvent, encodeGetSessionResponse, splitIndexEventsRequest } from "./document.js";
import type { IndexMetrics } from "./metrics.js";
import { encodePageToken, searchQueryFrom } from "./search-request.js";

/** What the index service needs to serve IndexService. */
export interface IndexServiceDeps {
  backend: IndexBackend;
  tenants: TenantDirectory;
  metrics: IndexMetrics;
  logger: Logger;
  maxBatchEvents: number;
}

const identity = (bytes: Buffer): Buffer => bytes;

/**
 * IndexService with requests left as bytes (a malformed request becomes INVALID_ARGUMENT
 * naming the problem, not grpc-js's INTERNAL) and GetSession's response written from the
 * stored bytes, so events come back exactly as IndexEvents received them.
 */
export const RawIndexServiceDefinition = {
  indexEvents: { ...IndexServiceService.indexEvents, requestDeserialize: identity },
  search: { ...IndexServiceService.search, requestDeserialize: identity },
  getSession: {
    ...IndexServiceService.getSession,
    requestDeserialize: identity,
    responseSerialize: identity,
  },
  erase: { ...IndexServiceService.erase, requestDeserialize: identity },
} satisfies grpc.ServiceDefinition;

const strictUtf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/** Decodes a request strictly; failures name the message type. */
function decodeRequest<T>(bytes: Buffer, type: { decode(reader: BinaryReader): T }, name: string): T {
  try {
    return type.decode(new BinaryReader(bytes, (raw) => strictUtf8.decode(raw)));
  } catch (error) {
    const why = error instanceof TypeError ? "a string field is not valid UTF-8" : (error as Error).message;
    throw new InvalidEventError(
      `request is not a valid sessiontrack.v1.${name}: ${why}`,
      {},
      { cause: error },
    );
  }
}

type Handler<Response> = (call: grpc.ServerUnaryCall<Buffer, Response>) => Promise<Response>;

/** The IndexService handlers. */
export class IndexService {
  private readonly inFlight = new Set<Promise<unknown>>();

  constructor(private readonly deps: IndexServiceDeps) {}

  /** The grpc-js implementation object for {@link RawIndexServiceDefinition}. */
  implementation(): grpc.UntypedServiceImplementation {
    return {
      indexEvents: this.unary("IndexEvents", (call) => this.indexEvents(call)),
      search: this.unary("Search", (call) => this.search(call)),
      getSession: this.unary("GetSession", (call) => this.getSession(call)),
      erase: this.unary("Erase", (call) => this.erase(call)),
    };
  }

  /** Resolves when every call in flight has been answered. */
  async drain(): Promise<void> {
    await Promise.allSettled([...this.inFlight]);
  }

  private unary<Response>(
    rpc: string,
    handler: Handler<Response>,
  ): (call: grpc.ServerUnaryCall<Buffer, Response>, callback: grpc.sendUnaryData<Response>) => void {
    return (call, callback) => {
      const done = handler(call).then(
        (response) => {
          this.deps.metrics.requests.inc({ rpc, code: "OK" });
          callback(null, response);
        },
        (error: unknown) => {
          const wire = toGrpcError(error, this.deps.logger);
          this.deps.metrics.requests.inc({ rpc, code: grpc.status[wire.code] ?? String(wire.code) });
          callback(wire);
        },
      );
      this.inFlight.add(done);
      void done.finally(() => this.inFlight.delete(done));
    };
  }

  private authorization(call: { metadata: grpc.Metadata }): unknown {
    const values = call.metadata.get("authorization");
    return values.length > 1 ? null : values[0];
  }

  /** Runs a backend operation, counting its failures. */
  private async backend<T>(operation: string, run: () => Promise<T>): Promise<T> {
    try {
      return await run();
    } catch (error) {
      this.deps.metrics.backendErrors.inc({ backend: this.deps.backend.kind, operation });
      throw error;
    }
  }

  private async indexEvents(call: grpc.ServerUnaryCall<Buffer, unknown>): Promise<IndexEventsResponse> {
    this.deps.tenants.authorizeService(this.authorization(call));
    const events = splitIndexEventsRequest(call.request);
    if (events.length > this.deps.maxBatchEvents) {
      throw new InvalidEventError(
        `request holds ${events.length} events; the limit is ${this.deps.maxBatchEvents} (--max-batch-events)`,
      );
    }
    // Every event is checked before any is written: a bad batch changes nothing.
    const documents = events.map((bytes, index) => documentFromStoredEvent(bytes, index));
    if (documents.length > 0) await this.backend("index", () => this.deps.backend.index(documents));
    this.deps.metrics.documentsIndexed.inc(documents.length);
    return { indexed: documents.length };
  }

  private async search(call: grpc.ServerUnaryCall<Buffer, unknown>): Promise<SearchResponse> {
    const started = process.hrtime.bigint();
    const principal = this.deps.tenants.authorize(this.authorization(call), ["read", "admin"]);
    const request = decodeRequest(call.request, SearchRequest, "SearchRequest");
    const query = searchQueryFrom(principal.tenant, request);
    const result = await this.backend("search", () => this.deps.backend.search(query));
    const nextOffset = query.offset + query.limit;
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    this.deps.metrics.searchLatency.observe(seconds);
    return {
      sessions: result.sessions.map((session) => ({
        ...session,
        hits: session.hits.map((hit) => ({ ...hit, time: new Date(hit.timeMs) })),
      })),
      totalHits: result.totalHits,
      nextPageToken:
        result.sessions.length === query.limit && nextOffset < result.totalSessions
          ? encodePageToken(principal.tenant, request, nextOffset)
          : "",
      tookMs: Math.round(seconds * 1000),
    };
  }

  private async getSession(call: grpc.ServerUnaryCall<Buffer, unknown>): Promise<Buffer> {
    const principal = this.deps.tenants.authorize(this.authorization(call), ["read", "admin"]);
    const request = decodeRequest(call.request, GetSessionRequest, "GetSessionRequest");
    if (request.sessionId === "") throw new InvalidEventError("is required", { field: "session_id" });
    const events = await this.backend("getSession", () =>
      this.deps.backend.getSession(principal.tenant, request.sessionId),
    );
    if (events.length === 0) {
      throw new NotFoundError(`session "${request.sessionId}" not found in tenant "${principal.tenant}"`);
    }
    return encodeGetSessionResponse(events);
  }

  private async erase(call: grpc.ServerUnaryCall<Buffer, unknown>): Promise<IndexServiceEraseResponse> {
    const service = this.deps.tenants.authorizeService(this.authorization(call));
    const request = decodeRequest(call.request, IndexServiceEraseRequest, "IndexServiceEraseRequest");
    if (request.tenant === "") throw new InvalidEventError("is required", { field: "tenant" });
    const target = request.target?.target;
    if (target === undefined) {
      throw new InvalidEventError("must name a user_id or a session_id", { field: "target" });
    }
    if (target.value === "") {
      throw new InvalidEventError("is empty", {
        field: target.$case === "userId" ? "target.user_id" : "target.session_id",
      });
    }
    const selector: EraseSelector =
      target.$case === "userId" ? { userId: target.value } : { sessionId: target.value };
    const result = await this.backend("erase", () => this.deps.backend.erase(request.tenant, selector));
    this.deps.metrics.documentsErased.inc(result.documentsRemoved);
    this.deps.logger.info(
      { service: service.service, tenant: request.tenant, target: target.$case, ...result },
      "erased from the index",
    );
    return { sessions: result.sessions, documentsRemoved: result.documentsRemoved };
  }
}
