import { randomBytes } from "node:crypto";

import * as grpc from "@grpc/grpc-js";

import { SessionTrackError, type ErrorCode } from "@sessiontrack/errors";

import type { Logger } from "./logger.js";

const STATUS_BY_CODE: Record<ErrorCode, grpc.status> = {
  INVALID_ARGUMENT: grpc.status.INVALID_ARGUMENT,
  NOT_FOUND: grpc.status.NOT_FOUND,
  ALREADY_EXISTS: grpc.status.ALREADY_EXISTS,
  PERMISSION_DENIED: grpc.status.PERMISSION_DENIED,
  UNAUTHENTICATED: grpc.status.UNAUTHENTICATED,
  RESOURCE_EXHAUSTED: grpc.status.RESOURCE_EXHAUSTED,
  FAILED_PRECONDITION: grpc.status.FAILED_PRECONDITION,
  UNAVAILABLE: grpc.status.UNAVAILABLE,
  DATA_LOSS: grpc.status.DATA_LOSS,
  INTERNAL: grpc.status.INTERNAL,
};

/** The gRPC status a domain {@link ErrorCode} maps to. */
export function statusForCode(code: ErrorCode): grpc.status {
  return STATUS_BY_CODE[code];
}

/** An error shaped for grpc-js: pass it to a unary callback or `call.destroy()`. */
export interface GrpcError extends Error {
  code: grpc.status;
  details: string;
  metadata: grpc.Metadata;
}

/**
 * The one place a thrown error becomes a gRPC status. A {@link SessionTrackError}
 * keeps its message; anything else is INTERNAL with a reference id, and its stack goes
 * to the log, never onto the wire.
 */
export function toGrpcError(error: unknown, logger: Logger): GrpcError {
  let code: grpc.status;
  let details: string;
  if (error instanceof SessionTrackError) {
    code = statusForCode(error.code);
    details = error.message;
    if (code === grpc.status.INTERNAL || code === grpc.status.DATA_LOSS)
      logger.error({ err: error }, details);
  } else {
    const ref = randomBytes(6).toString("hex");
    code = grpc.status.INTERNAL;
    details = `internal error (ref ${ref})`;
    logger.error({ err: error, ref }, "unexpected error while handling a call");
  }
  const wire = new Error(details) as GrpcError;
  wire.code = code;
  wire.details = details;
  wire.metadata = new grpc.Metadata();
  return wire;
}
