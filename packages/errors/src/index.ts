/**
 * Domain errors, typed by meaning rather than by transport. Every error SessionTrack
 * raises on purpose is a {@link SessionTrackError}; `packages/runtime` maps its
 * {@link ErrorCode} to a gRPC status in one place, and anything else becomes INTERNAL
 * without its stack on the wire.
 */

/** What went wrong, in gRPC's vocabulary but free of any gRPC dependency. */
export type ErrorCode =
  | "INVALID_ARGUMENT"
  | "NOT_FOUND"
  | "ALREADY_EXISTS"
  | "PERMISSION_DENIED"
  | "UNAUTHENTICATED"
  | "RESOURCE_EXHAUSTED"
  | "FAILED_PRECONDITION"
  | "UNAVAILABLE"
  | "DATA_LOSS"
  | "INTERNAL";

/** Options every SessionTrack error accepts. */
export interface SessionTrackErrorOptions {
  /** The lower-level error that caused this one. */
  cause?: unknown;
}

/** Base class of every deliberate SessionTrack error. */
export abstract class SessionTrackError extends Error {
  /** The meaning of the error; decides the gRPC status. */
  abstract readonly code: ErrorCode;
  /** True when the same request may succeed later without change. */
  readonly retryable: boolean = false;

  constructor(message: string, options: SessionTrackErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
  }
}

/** Where in a batch an invalid event sits, and which of its fields is wrong. */
export interface InvalidEventLocation {
  /** Zero-based index of the event within its batch. */
  eventIndex?: number;
  /** Dotted path of the bad field, for example `message.parts[2].text`. */
  field?: string;
}

/** An event or request that can never be accepted as it is. */
export class InvalidEventError extends SessionTrackError {
  readonly code = "INVALID_ARGUMENT" as const;
  readonly eventIndex: number | undefined;
  readonly field: string | undefined;

  constructor(message: string, location: InvalidEventLocation = {}, options: SessionTrackErrorOptions = {}) {
    const where = [
      location.eventIndex === undefined ? undefined : `events[${location.eventIndex}]`,
      location.field,
    ]
      .filter((part): part is string => part !== undefined && part !== "")
      .join(".");
    super(where === "" ? message : `${where}: ${message}`, options);
    this.eventIndex = location.eventIndex;
    this.field = location.field;
  }
}

/** The caller presented no credential, or one nobody issued. */
export class UnauthenticatedError extends SessionTrackError {
  readonly code = "UNAUTHENTICATED" as const;
}

/** The credential is valid but lacks the role the call needs. */
export class PermissionDeniedError extends SessionTrackError {
  readonly code = "PERMISSION_DENIED" as const;
}

/** The named tenant does not exist. */
export class TenantNotFoundError extends SessionTrackError {
  readonly code = "NOT_FOUND" as const;
}

/** Something asked for does not exist. */
export class NotFoundError extends SessionTrackError {
  readonly code = "NOT_FOUND" as const;
}

/** The disk (or a configured bound on it) is full: nothing was stored; retry later. */
export class StorageFullError extends SessionTrackError {
  readonly code = "RESOURCE_EXHAUSTED" as const;
  override readonly retryable = true;
}

/** Storage failed (I/O error, failed fsync, shutting down): nothing was acknowledged. */
export class StorageUnavailableError extends SessionTrackError {
  readonly code = "UNAVAILABLE" as const;
  override readonly retryable = true;
}

/** Stored data failed its checksum somewhere other than a torn tail. */
export class DataCorruptionError extends SessionTrackError {
  readonly code = "DATA_LOSS" as const;
}

/** A setting is missing or invalid; the message names it. */
export class ConfigError extends SessionTrackError {
  readonly code = "FAILED_PRECONDITION" as const;
}
