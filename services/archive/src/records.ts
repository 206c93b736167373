// The small JSON records next to the data objects: session catalogs, wrapped data keys,
// subject indexes and audit records, and where each lives in the store.
import { createHash, randomBytes } from "node:crypto";

import { DataCorruptionError } from "@sessiontrack/errors";

import type { WrappedDataKey } from "./keys.js";
import type { ObjectStore } from "./object-store.js";

/** One section of a data object that holds events of a session. */
export interface CatalogEntry {
  object: string;
  section: string;
  keyId: string;
  /** When the object was written (ms since the epoch): retention counts from here. */
  createdAt: number;
  /** [event_id, seq] of every event in the section. */
  events: Array<[string, number]>;
}

/** Everything the archive knows about one session, found by its reference. */
export interface SessionCatalog {
  v: 1;
  sessionId: string;
  /** References of the users (Event.user_id) seen in the session. */
  users: string[];
  entries: CatalogEntry[];
}

/** The sessions of one user (subject), for erasure by user. */
export interface SubjectIndex {
  v: 1;
  sessions: string[];
}

/** A wrapped data key and the session it belongs to. */
export interface KeyRecord extends WrappedDataKey {
  session: string;
}

export const tenantPrefix = (tenant: string): string => `tenants/${tenant}/`;
export const objectsPrefix = (tenant: string): string => `tenants/${tenant}/objects/`;
export const sessionsPrefix = (tenant: string): string => `tenants/${tenant}/sessions/`;
export const keysPrefix = (tenant: string): string => `tenants/${tenant}/keys/`;
export const catalogKey = (tenant: string, sessionRef: string): string =>
  `tenants/${tenant}/sessions/${sessionRef}.json`;
export const keyRecordKey = (tenant: string, sessionRef: string): string =>
  `tenants/${tenant}/keys/${sessionRef}.json`;
export const subjectKey = (tenant: string, userRef: string): string =>
  `tenants/${tenant}/subjects/${userRef}.json`;

/** A new data object's key: date folders keep listings and lifecycle scans cheap. */
export function newObjectKey(tenant: string, now: number): string {
  const iso = new Date(now).toISOString();
  const stamp = now.toString(36).padStart(9, "0");
  return `tenants/${tenant}/objects/${iso.slice(0, 4)}/${iso.slice(5, 7)}/${iso.slice(8, 10)}/${stamp}-${randomBytes(5).toString("hex")}.sta`;
}

/** An audit record's key; the receipt id is kept readable but safe as a path element. */
export function auditKey(tenant: string, now: number, receiptId: string): string {
  const safe = receiptId.replace(/[^A-Za-z0-9._-]/g, "_").slice(0, 100);
  return `tenants/${tenant}/audit/${new Date(now).toISOString().replace(/[:.]/g, "-")}-${safe}.json`;
}

/** A record as stored: JSON sealed with the SHA-256 of its body. */
export function encodeRecord(body: unknown): Buffer {
  const text = JSON.stringify(body);
  const sha256 = createHash("sha256").update(text, "utf8").digest("hex");
  return Buffer.from(`{"sha256":"${sha256}","body":${text}}\n`, "utf8");
}

/** Writes a sealed record. */
export async function putRecord(store: ObjectStore, key: string, body: unknown): Promise<void> {
  await store.put(key, encodeRecord(body));
}

/** Reads a sealed record; undefined when absent, DataCorruptionError when it fails its checksum. */
export async function getRecord<T>(store: ObjectStore, key: string): Promise<T | undefined> {
  const bytes = await store.get(key);
  if (bytes === undefined) return undefined;
  const text = bytes.toString("utf8");
  const match = /^\{"sha256":"([0-9a-f]{64})","body":([\s\S]*)\}\n?$/.exec(text);
  if (match === null) throw new DataCorruptionError(`${key}: not a sealed archive record`);
  const body = match[2]!;
  if (createHash("sha256").update(body, "utf8").digest("hex") !== match[1]) {
    throw new DataCorruptionError(`${key}: checksum mismatch`);
  }
  return JSON.parse(body) as T;
}
