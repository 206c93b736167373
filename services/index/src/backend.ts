import type { Role } from "@sessiontrack/proto";

/** One indexed event: the filterable fields, the searchable text and the StoredEvent bytes. */
export interface IndexDocument {
  tenant: string;
  eventId: string;
  sessionId: string;
  seq: number;
  /** Event.time as Unix milliseconds. */
  timeMs: number;
  botId: string;
  userId: string;
  model: string;
  provider: string;
  role: Role;
  /** Canonical label tokens (see `labelToken`). */
  labels: string[];
  /** Searchable text: message text parts, tool calls and results, feedback comments, custom strings. */
  text: string;
  /** The StoredEvent exactly as IndexEvents received it. */
  stored: Uint8Array;
}

/** A validated search, already scoped to one tenant. */
export interface SearchQuery {
  /** The caller's tenant (from the API key, never from the request). */
  tenant: string;
  /** Full-text query; empty matches every event that passes the filters. */
  text: string;
  botIds: readonly string[];
  userIds: readonly string[];
  models: readonly string[];
  /** Label tokens that must all be present. */
  labels: readonly string[];
  sessionIds: readonly string[];
  roles: readonly Role[];
  /** Inclusive lower bound on the event time (Unix ms). */
  sinceMs: number | undefined;
  /** Exclusive upper bound on the event time (Unix ms). */
  untilMs: number | undefined;
  /** Sessions to skip (from the page token). */
  offset: number;
  /** Sessions to return. */
  limit: number;
  hitsPerSession: number;
  preTag: string;
  postTag: string;
}

/** One matching event. */
export interface BackendHit {
  eventId: string;
  sessionId: string;
  seq: number;
  timeMs: number;
  role: Role;
  provider: string;
  model: string;
  highlight: string;
}

/** The hits of one session, best first. */
export interface BackendSessionHits {
  sessionId: string;
  botId: string;
  userId: string;
  hits: BackendHit[];
  /** Matching events in the session. */
  sessionHits: number;
}

/** One page of grouped results. */
export interface BackendSearchResult {
  sessions: BackendSessionHits[];
  /** Matching events across every page (an estimate on Meilisearch). */
  totalHits: number;
  /** Matching sessions across every page (an estimate on Meilisearch). */
  totalSessions: number;
}

/** What to erase within one tenant. */
export type EraseSelector = { userId: string } | { sessionId: string };

/** What an erasure removed. */
export interface EraseResult {
  sessions: string[];
  documentsRemoved: number;
}

/**
 * A search backend. Every read takes the tenant and scopes the backend's own query to it
 * (SQL `WHERE tenant = ?`, Meilisearch filter `tenant = "…"`).
 */
export interface IndexBackend {
  /** Which backend this is, for logs and metrics. */
  readonly kind: "sqlite" | "meilisearch";
  /** Adds or replaces documents, keyed by (tenant, event id); resolves once searchable. */
  index(documents: readonly IndexDocument[]): Promise<void>;
  search(query: SearchQuery): Promise<BackendSearchResult>;
  /** The StoredEvent bytes of a session of `tenant`, ordered by seq; empty when unknown. */
  getSession(tenant: string, sessionId: string): Promise<Uint8Array[]>;
  erase(tenant: string, selector: EraseSelector): Promise<EraseResult>;
  close(): Promise<void>;
}
