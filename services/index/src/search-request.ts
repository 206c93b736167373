import { createHash } from "node:crypto";

import { InvalidEventError } from "@sessiontrack/errors";
import { Role, type SearchRequest } from "@sessiontrack/proto";

import type { SearchQuery } from "./backend.js";
import { labelToken } from "./document.js";

export const DEFAULT_PAGE_SIZE = 20;
export const MAX_PAGE_SIZE = 100;
export const DEFAULT_HITS_PER_SESSION = 3;
export const MAX_HITS_PER_SESSION = 50;
const MAX_QUERY_CHARS = 1_000;
const MAX_FILTER_VALUES = 100;
const MAX_TAG_CHARS = 64;
/** A page token may point at most this far in: deep pages are a scan, not a search. */
const MAX_OFFSET = 10_000;

function invalid(field: string, message: string): never {
  throw new InvalidEventError(message, { field });
}

/** A fingerprint of everything that selects and orders results, so a token fits only its query. */
function fingerprint(tenant: string, request: SearchRequest): string {
  const labels = Object.entries(request.labels).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return createHash("sha256")
    .update(
      JSON.stringify([
        tenant,
        request.query,
        [...request.botIds].sort(),
        [...request.userIds].sort(),
        [...request.models].sort(),
        labels,
        [...request.sessionIds].sort(),
        [...request.roles].sort(),
        request.since?.getTime() ?? null,
        request.until?.getTime() ?? null,
      ]),
    )
    .digest("base64url")
    .slice(0, 16);
}

/** An opaque page token: the session offset of the next page, bound to its query. */
export function encodePageToken(tenant: string, request: SearchRequest, offset: number): string {
  return Buffer.from(JSON.stringify({ v: 1, o: offset, q: fingerprint(tenant, request) })).toString(
    "base64url",
  );
}

function decodePageToken(tenant: string, request: SearchRequest): number {
  if (request.pageToken === "") return 0;
  let token: unknown;
  try {
    token = JSON.parse(Buffer.from(request.pageToken, "base64url").toString("utf8"));
  } catch {
    invalid("page_token", "is not a token this service issued (pass next_page_token unchanged)");
  }
  const { v, o, q } = (token ?? {}) as { v?: unknown; o?: unknown; q?: unknown };
  if (v !== 1 || typeof o !== "number" || !Number.isInteger(o) || o < 0 || typeof q !== "string") {
    invalid("page_token", "is not a token this service issued (pass next_page_token unchanged)");
  }
  if (q !== fingerprint(tenant, request)) {
    invalid("page_token", "was issued for a different query or filters; start again without a token");
  }
  return o;
}

function checkValues(field: string, values: readonly string[]): void {
  if (values.length > MAX_FILTER_VALUES)
    invalid(field, `has ${values.length} values; at most ${MAX_FILTER_VALUES}`);
  values.forEach((value, index) => {
    if (value === "") invalid(`${field}[${index}]`, "is empty");
  });
}

/**
 * Validates a SearchRequest and turns it into a backend query scoped to `tenant` (the
 * caller's key's tenant). Throws InvalidEventError naming the bad field.
 */
export function searchQueryFrom(tenant: string, request: SearchRequest): SearchQuery {
  if (request.query.length > MAX_QUERY_CHARS) {
    invalid("query", `is ${request.query.length} characters; at most ${MAX_QUERY_CHARS}`);
  }
  checkValues("bot_ids", request.botIds);
  checkValues("user_ids", request.userIds);
  checkValues("models", request.models);
  checkValues("session_ids", request.sessionIds);
  const labels = Object.entries(request.labels);
  if (labels.length > MAX_FILTER_VALUES)
    invalid("labels", `has ${labels.length} entries; at most ${MAX_FILTER_VALUES}`);
  labels.forEach(([key]) => {
    if (key === "") invalid("labels", "has an empty key");
  });
  request.roles.forEach((role, index) => {
    if (role === Role.ROLE_UNSPECIFIED || Role[role] === undefined || role === Role.UNRECOGNIZED) {
      invalid(`roles[${index}]`, `is ${role}; use ROLE_SYSTEM, ROLE_USER, ROLE_ASSISTANT or ROLE_TOOL`);
    }
  });
  const sinceMs = request.since?.getTime();
  const untilMs = request.until?.getTime();
  if (sinceMs !== undefined && Number.isNaN(sinceMs)) invalid("since", "is not a valid timestamp");
  if (untilMs !== undefined && Number.isNaN(untilMs)) invalid("until", "is not a valid timestamp");
  if (sinceMs !== undefined && untilMs !== undefined && untilMs <= sinceMs) {
    invalid("until", "must be later than since (since is inclusive, until exclusive)");
  }
  if (request.pageSize > MAX_PAGE_SIZE) {
    invalid("page_size", `is ${request.pageSize}; at most ${MAX_PAGE_SIZE} sessions per page`);
  }
  if (request.hitsPerSession > MAX_HITS_PER_SESSION) {
    invalid("hits_per_session", `is ${request.hitsPerSession}; at most ${MAX_HITS_PER_SESSION}`);
  }
  if (request.highlightPreTag.length > MAX_TAG_CHARS) {
    invalid("highlight_pre_tag", `is longer than ${MAX_TAG_CHARS} characters`);
  }
  if (request.highlightPostTag.length > MAX_TAG_CHARS) {
    invalid("highlight_post_tag", `is longer than ${MAX_TAG_CHARS} characters`);
  }
  const offset = decodePageToken(tenant, request);
  if (offset > MAX_OFFSET) invalid("page_token", `points past session ${MAX_OFFSET}; narrow the search`);
  return {
    tenant,
    text: request.query.trim(),
    botIds: request.botIds,
    userIds: request.userIds,
    models: request.models,
    labels: labels.map(([key, value]) => labelToken(key, value)),
    sessionIds: request.sessionIds,
    roles: request.roles,
    sinceMs,
    untilMs,
    offset,
    limit: request.pageSize === 0 ? DEFAULT_PAGE_SIZE : request.pageSize,
    hitsPerSession: request.hitsPerSession === 0 ? DEFAULT_HITS_PER_SESSION : request.hitsPerSession,
    preTag: request.highlightPreTag === "" ? "<mark>" : request.highlightPreTag,
    postTag: request.highlightPostTag === "" ? "</mark>" : request.highlightPostTag,
  };
}
