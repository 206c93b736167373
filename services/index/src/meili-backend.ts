import { createHash } from "node:crypto";

import {
  Meilisearch,
  MeilisearchApiError,
  MeilisearchRequestError,
  MeilisearchTaskTimeOutError,
  type EnqueuedTask,
  type Index,
  type MultiSearchQuery,
  type Settings,
  type Task,
} from "meilisearch";

import { StorageUnavailableError } from "@sessiontrack/errors";
import type { Logger } from "@sessiontrack/runtime";

import type {
  BackendSearchResult,
  EraseResult,
  EraseSelector,
  IndexBackend,
  IndexDocument,
  SearchQuery,
} from "./backend.js";
import type { IndexMetrics } from "./metrics.js";

/** Options for {@link MeilisearchIndexBackend.open}. */
export interface MeilisearchBackendOptions {
  url: string;
  apiKey?: string | undefined;
  /** Index uid, e.g. `sessiontrack_events`. */
  indexUid: string;
  /** Documents per NDJSON addition. */
  batchDocuments: number;
  /** How long to wait for one task to finish. */
  taskTimeoutMs: number;
  /** How often finished tasks are deleted. */
  taskPruneIntervalMs: number;
  /** Finished tasks younger than this are kept. */
  taskRetentionMs: number;
  /** Task polling interval; default 50 ms. */
  taskPollIntervalMs?: number;
  logger: Logger;
  metrics?: IndexMetrics | undefined;
}

/** The document stored per event. Field names are Meilisearch attributes. */
export interface MeiliDocument {
  id: string;
  tenant: string;
  event_id: string;
  session_id: string;
  seq: number;
  /** Unix milliseconds. */
  time: number;
  bot_id: string;
  user_id: string;
  model: string;
  provider: string;
  role: number;
  labels: string[];
  text: string;
  /** The StoredEvent bytes, base64. */
  stored: string;
}

/** The index settings this backend applies at start-up. */
export const MEILI_SETTINGS = {
  searchableAttributes: ["text"],
  filterableAttributes: [
    "tenant",
    "bot_id",
    "user_id",
    "session_id",
    "model",
    "provider",
    "role",
    "time",
    "labels",
  ],
  sortableAttributes: ["time", "seq"],
  pagination: { maxTotalHits: 10_000 },
} satisfies Settings;

// Every search uses matchingStrategy "all": every query word must match, as on SQLite
// (Meilisearch's default, "last", drops words from the end until something matches).

/** Attributes returned with a hit (never the stored bytes). */
const HIT_ATTRIBUTES = [
  "event_id",
  "session_id",
  "seq",
  "time",
  "role",
  "provider",
  "model",
  "bot_id",
  "user_id",
];
/** Words kept around the matches in a highlight. */
const CROP_WORDS = 24;
/** Documents fetched per page when reading a session or an erasure's sessions. */
const FETCH_PAGE = 1000;

/**
 * A Meilisearch primary key for (tenant, event id): ids allow only [A-Za-z0-9_-], so
 * the pair is hashed (SHA-256, hex).
 */
export function meiliDocumentId(tenant: string, eventId: string): string {
  return createHash("sha256").update(tenant).update("\u0000").update(eventId).digest("hex");
}

/** A string literal in a Meilisearch filter expression. */
export function filterString(value: string): string {
  return `"${value.replaceAll("\\", "\\\\").replaceAll('"', '\\"')}"`;
}

function oneOf(attribute: string, values: readonly (string | number)[]): string {
  const literals = values.map((value) => (typeof value === "number" ? String(value) : filterString(value)));
  return values.length === 1 ? `${attribute} = ${literals[0]}` : `${attribute} IN [${literals.join(", ")}]`;
}

/** The filter of a search: the tenant always first, then every filter of the request. */
export function searchFilter(query: SearchQuery): string[] {
  const filter = [`tenant = ${filterString(query.tenant)}`];
  if (query.botIds.length > 0) filter.push(oneOf("bot_id", query.botIds));
  if (query.userIds.length > 0) filter.push(oneOf("user_id", query.userIds));
  if (query.models.length > 0) filter.push(oneOf("model", query.models));
  if (query.sessionIds.length > 0) filter.push(oneOf("session_id", query.sessionIds));
  if (query.roles.length > 0) filter.push(oneOf("role", query.roles));
  for (const label of query.labels) filter.push(`labels = ${filterString(label)}`);
  if (query.sinceMs !== undefined) filter.push(`time >= ${query.sinceMs}`);
  if (query.untilMs !== undefined) filter.push(`time < ${query.untilMs}`);
  return filter;
}

function toMeiliDocument(document: IndexDocument): MeiliDocument {
  return {
    id: meiliDocumentId(document.tenant, document.eventId),
    tenant: document.tenant,
    event_id: document.eventId,
    session_id: document.sessionId,
    seq: document.seq,
    time: document.timeMs,
    bot_id: document.botId,
    user_id: document.userId,
    model: document.model,
    provider: document.provider,
    role: document.role,
    labels: document.labels,
    text: document.text,
    stored: Buffer.from(document.stored.buffer, document.stored.byteOffset, document.stored.length).toString(
      "base64",
    ),
  };
}

/** Turns a client error into a domain error naming Meilisearch's error code. */
function backendError(what: string, error: unknown): StorageUnavailableError {
  if (error instanceof StorageUnavailableError) return error;
  if (error instanceof MeilisearchApiError) {
    const code = error.cause?.code ?? `http_${error.response.status}`;
    return new StorageUnavailableError(
      `meilisearch ${what} failed: ${code} (HTTP ${error.response.status}): ${error.cause?.message ?? error.message}`,
      { cause: error },
    );
  }
  if (error instanceof MeilisearchTaskTimeOutError) {
    return new StorageUnavailableError(
      `meilisearch ${what}: task ${error.cause.taskUid} did not finish within ${error.cause.timeout} ms`,
      { cause: error },
    );
  }
  if (error instanceof MeilisearchRequestError) {
    return new StorageUnavailableError(`meilisearch ${what}: cannot reach Meilisearch (${error.message})`, {
      cause: error,
    });
  }
  return new StorageUnavailableError(`meilisearch ${what} failed: ${(error as Error).message}`, {
    cause: error,
  });
}

/** A failed or canceled task as an error naming Meilisearch's code. */
function taskError(what: string, task: Task): StorageUnavailableError {
  const detail =
    task.error === null ? `task ${task.uid} was ${task.status}` : `${task.error.code}: ${task.error.message}`;
  return new StorageUnavailableError(
    `meilisearch ${what} failed (task ${task.uid}, ${task.type}): ${detail}`,
  );
}

/**
 * Meilisearch through its official client. Writes are NDJSON document additions whose
 * tasks are followed to completion; every read carries the tenant in its filter.
 */
export class MeilisearchIndexBackend implements IndexBackend {
  readonly kind = "meilisearch" as const;
  private readonly meiliIndex: Index<MeiliDocument>;
  private pruneTimer: NodeJS.Timeout | undefined;
  private pending = 0;

  private constructor(
    private readonly client: Meilisearch,
    private readonly options: MeilisearchBackendOptions,
  ) {
    this.meiliIndex = client.index<MeiliDocument>(options.indexUid);
  }

  /** Connects, creates the index if missing, applies {@link MEILI_SETTINGS} and waits for both. */
  static async open(options: MeilisearchBackendOptions): Promise<MeilisearchIndexBackend> {
    const client = new Meilisearch({
      host: options.url,
      ...(options.apiKey === undefined ? {} : { apiKey: options.apiKey }),
    });
    const backend = new MeilisearchIndexBackend(client, options);
    await backend.ensureIndex();
    backend.pruneTimer = setInterval(() => {
      void backend.pruneTasks().catch(() => undefined);
    }, options.taskPruneIntervalMs);
    backend.pruneTimer.unref();
    options.logger.info({ url: options.url, index: options.indexUid }, "meilisearch index ready");
    return backend;
  }

  private async ensureIndex(): Promise<void> {
    const created = await this.waitFor(
      "create index",
      this.client.createIndex(this.options.indexUid, { primaryKey: "id" }),
      true,
    );
    if (created.status === "failed" && created.error?.code !== "index_already_exists") {
      throw taskError(`create index ${this.options.indexUid}`, created);
    }
    await this.waitFor("update settings", this.meiliIndex.updateSettings(MEILI_SETTINGS));
  }

  /**
   * Waits for an enqueued task. A failed or canceled task throws (unless `allowFailure`,
   * for the one expected failure the caller inspects itself).
   */
  private async waitFor(what: string, enqueue: Promise<EnqueuedTask>, allowFailure = false): Promise<Task> {
    let task: Task;
    this.pending += 1;
    this.options.metrics?.meiliPendingTasks.set(this.pending);
    try {
      const enqueued = await enqueue;
      task = await this.client.tasks.waitForTask(enqueued.taskUid, {
        timeout: this.options.taskTimeoutMs,
        interval: this.options.taskPollIntervalMs ?? 50,
      });
    } catch (error) {
      throw this.fail(what, backendError(what, error));
    } finally {
      this.pending -= 1;
      this.options.metrics?.meiliPendingTasks.set(this.pending);
    }
    if (task.status !== "succeeded" && !allowFailure) throw this.fail(what, taskError(what, task));
    return task;
  }

  private fail(what: string, error: StorageUnavailableError): StorageUnavailableError {
    this.options.logger.warn({ err: error }, `meilisearch: ${what} failed`);
    return error;
  }

  private async request<T>(what: string, run: () => Promise<T>): Promise<T> {
    try {
      return await run();
    } catch (error) {
      throw this.fail(what, backendError(what, error));
    }
  }

  async index(documents: readonly IndexDocument[]): Promise<void> {
    const batches: string[] = [];
    for (let start = 0; start < documents.length; start += this.options.batchDocuments) {
      const lines = documents
        .slice(start, start + this.options.batchDocuments)
        .map((document) => JSON.stringify(toMeiliDocument(document)));
      batches.push(`${lines.join("\n")}\n`);
    }
    // Enqueue every batch first (Meilisearch merges consecutive additions), then wait for all.
    const tasks = batches.map((ndjson) =>
      this.waitFor(
        "add documents",
        this.meiliIndex.addDocumentsFromString(ndjson, "application/x-ndjson", { primaryKey: "id" }),
      ),
    );
    const results = await Promise.allSettled(tasks);
    const failed = results.find((result): result is PromiseRejectedResult => result.status === "rejected");
    if (failed !== undefined) throw failed.reason as Error;
  }

  async search(query: SearchQuery): Promise<BackendSearchResult> {
    const filter = searchFilter(query);
    const sort = query.text === "" ? ["time:desc"] : undefined;
    const sessionsPage = await this.request("search", () =>
      this.meiliIndex.search(query.text, {
        filter,
        distinct: "session_id",
        matchingStrategy: "all",
        offset: query.offset,
        limit: query.limit,
        attributesToRetrieve: ["session_id"],
        ...(sort === undefined ? {} : { sort }),
      }),
    );
    const sessionIds = sessionsPage.hits.map((hit) => hit.session_id);
    const perSession: MultiSearchQuery[] = sessionIds.map((sessionId) => ({
      indexUid: this.options.indexUid,
      q: query.text,
      matchingStrategy: "all",
      filter: [...filter, `session_id = ${filterString(sessionId)}`],
      limit: query.hitsPerSession,
      attributesToRetrieve: HIT_ATTRIBUTES,
      attributesToHighlight: ["text"],
      attributesToCrop: ["text"],
      cropLength: CROP_WORDS,
      cropMarker: "…",
      highlightPreTag: query.preTag,
      highlightPostTag: query.postTag,
      ...(sort === undefined ? {} : { sort }),
    }));
    const total: MultiSearchQuery = {
      indexUid: this.options.indexUid,
      q: query.text,
      matchingStrategy: "all",
      filter,
      limit: 0,
    };
    const { results } = await this.request("multi-search", () =>
      this.client.multiSearch<{ queries: MultiSearchQuery[] }, MeiliDocument>({
        queries: [...perSession, total],
      }),
    );
    const sessions = sessionIds.map((sessionId, index) => {
      const result = results[index];
      const hits = (result?.hits ?? []).map((hit) => ({
        eventId: hit.event_id,
        sessionId: hit.session_id,
        seq: hit.seq,
        timeMs: hit.time,
        role: hit.role,
        provider: hit.provider,
        model: hit.model,
        highlight: hit._formatted?.text ?? "",
      }));
      const first = result?.hits[0];
      return {
        sessionId,
        botId: first?.bot_id ?? "",
        userId: first?.user_id ?? "",
        hits,
        sessionHits: result?.estimatedTotalHits ?? hits.length,
      };
    });
    return {
      sessions,
      totalHits: results.at(-1)?.estimatedTotalHits ?? 0,
      totalSessions: sessionsPage.estimatedTotalHits ?? sessionIds.length,
    };
  }

  /** Every document matching `filter`, `fields` only, paging through the documents API. */
  private async fetchAll(filter: string[], fields: Array<keyof MeiliDocument>): Promise<MeiliDocument[]> {
    const out: MeiliDocument[] = [];
    for (let offset = 0; ; offset += FETCH_PAGE) {
      const page = await this.request("fetch documents", () =>
        this.meiliIndex.getDocuments({ filter, fields, limit: FETCH_PAGE, offset }),
      );
      out.push(...page.results);
      if (page.results.length < FETCH_PAGE) return out;
    }
  }

  async getSession(tenant: string, sessionId: string): Promise<Uint8Array[]> {
    const documents = await this.fetchAll(
      [`tenant = ${filterString(tenant)}`, `session_id = ${filterString(sessionId)}`],
      ["tenant", "seq", "event_id", "stored"],
    );
    return documents
      .filter((document) => document.tenant === tenant)
      .sort((a, b) => a.seq - b.seq || (a.event_id < b.event_id ? -1 : a.event_id > b.event_id ? 1 : 0))
      .map((document) => Buffer.from(document.stored, "base64"));
  }

  async erase(tenant: string, selector: EraseSelector): Promise<EraseResult> {
    const scope = `tenant = ${filterString(tenant)}`;
    let sessions: string[];
    let filter: string[];
    if ("userId" in selector) {
      const owned = await this.fetchAll(
        [scope, `user_id = ${filterString(selector.userId)}`],
        ["session_id"],
      );
      sessions = [...new Set(owned.map((document) => document.session_id))].sort();
      // A subject's sessions go whole: the bot's replies in them are about the subject too.
      const user = `user_id = ${filterString(selector.userId)}`;
      filter = [scope, sessions.length === 0 ? user : `${user} OR ${oneOf("session_id", sessions)}`];
    } else {
      const found = await this.request("fetch documents", () =>
        this.meiliIndex.getDocuments({
          filter: [scope, `session_id = ${filterString(selector.sessionId)}`],
          fields: ["session_id"],
          limit: 1,
        }),
      );
      sessions = found.results.length === 0 ? [] : [selector.sessionId];
      filter = [scope, `session_id = ${filterString(selector.sessionId)}`];
    }
    const task = await this.waitFor("delete documents", this.meiliIndex.deleteDocuments({ filter }));
    return { sessions, documentsRemoved: task.details?.deletedDocuments ?? 0 };
  }

  /** Deletes this index's finished tasks older than the retention, so the task queue stays small. */
  async pruneTasks(): Promise<void> {
    const before = new Date(Date.now() - this.options.taskRetentionMs).toISOString();
    try {
      await this.waitFor(
        "delete finished tasks",
        this.client.tasks.deleteTasks({
          statuses: ["succeeded", "failed", "canceled"],
          indexUids: [this.options.indexUid],
          beforeFinishedAt: before,
        }),
      );
    } catch (error) {
      this.options.metrics?.backendErrors.inc({ backend: "meilisearch", operation: "pruneTasks" });
      throw error;
    }
  }

  /** Deletes the whole index (tests and rebuilds), waiting for the task. */
  async deleteIndex(): Promise<void> {
    await this.waitFor("delete index", this.meiliIndex.delete());
  }

  close(): Promise<void> {
    if (this.pruneTimer !== undefined) clearInterval(this.pruneTimer);
    return Promise.resolve();
  }
}
