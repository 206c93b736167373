import { createHash } from "node:crypto";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { setImmediate as yieldToEventLoop } from "node:timers/promises";

import Database from "better-sqlite3";

import { StorageUnavailableError } from "@sessiontrack/errors";
import type { Logger } from "@sessiontrack/runtime";

import type {
  BackendSearchResult,
  BackendSessionHits,
  EraseResult,
  EraseSelector,
  IndexBackend,
  IndexDocument,
  SearchQuery,
} from "./backend.js";
import { ftsMatchText } from "./query-text.js";

/** Options for {@link SqliteIndexBackend.open}. */
export interface SqliteBackendOptions {
  dataDir: string;
  logger: Logger;
  /** Documents written per transaction; between transactions the event loop runs. Default 500. */
  transactionDocuments?: number;
}

const SCHEMA_VERSION = 1;

// One row per (tenant, event_id): a replayed event updates its row instead of adding one.
// `facets` holds one hashed token per filter value (tenant, session, bot, user, model,
// provider, role, labels) so FTS5 intersects filters with the text query in its posting
// lists; the SQL WHERE on the real columns stays the authority, tokens only narrow.
const SCHEMA = `
CREATE TABLE IF NOT EXISTS documents (
  id INTEGER PRIMARY KEY,
  tenant TEXT NOT NULL,
  event_id TEXT NOT NULL,
  session_id TEXT NOT NULL,
  seq INTEGER NOT NULL,
  time INTEGER NOT NULL,
  bot_id TEXT NOT NULL,
  user_id TEXT NOT NULL,
  model TEXT NOT NULL,
  provider TEXT NOT NULL,
  role INTEGER NOT NULL,
  labels TEXT NOT NULL,
  facets TEXT NOT NULL,
  text TEXT NOT NULL,
  stored BLOB NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS documents_event ON documents (tenant, event_id);
CREATE INDEX IF NOT EXISTS documents_session ON documents (tenant, session_id, seq);
CREATE INDEX IF NOT EXISTS documents_time ON documents (tenant, time);
CREATE INDEX IF NOT EXISTS documents_user ON documents (tenant, user_id);
CREATE INDEX IF NOT EXISTS documents_bot ON documents (tenant, bot_id, time);
CREATE INDEX IF NOT EXISTS documents_model ON documents (tenant, model);
CREATE VIRTUAL TABLE IF NOT EXISTS documents_fts USING fts5(
  facets, text, content = 'documents', content_rowid = 'id',
  tokenize = 'unicode61 remove_diacritics 2'
);
`;

/** Text shown as the highlight of a hit when the query is empty. */
const PLAIN_SNIPPET_CHARS = 160;
/** Tokens around the matches in an FTS5 snippet. */
const SNIPPET_TOKENS = 24;

type FacetKind = "t" | "s" | "b" | "u" | "m" | "p" | "l";

/**
 * The embedded default: SQLite FTS5 through better-sqlite3, in WAL mode. better-sqlite3
 * is synchronous, so writes go in small transactions with the event loop running in between.
 */
export class SqliteIndexBackend implements IndexBackend {
  readonly kind = "sqlite" as const;
  private readonly statements = new Map<string, Database.Statement>();
  private readonly facetCache = new Map<string, string>();
  private closed = false;

  private constructor(
    private readonly db: Database.Database,
    private readonly logger: Logger,
    private readonly transactionDocuments: number,
  ) {}

  /** Opens (creating if needed) `<dataDir>/index.sqlite`. */
  static open(options: SqliteBackendOptions): SqliteIndexBackend {
    const file = join(options.dataDir, "index.sqlite");
    let db: Database.Database;
    try {
      mkdirSync(options.dataDir, { recursive: true });
      db = new Database(file);
      db.pragma("journal_mode = WAL");
      // WAL + NORMAL survives a process crash; the index is rebuilt from the archive after a
      // machine crash, so it does not pay an fsync per transaction.
      db.pragma("synchronous = NORMAL");
      db.pragma("busy_timeout = 5000");
      db.pragma("cache_size = -65536");
      db.pragma("mmap_size = 268435456");
      db.pragma("temp_store = MEMORY");
      const version = db.pragma("user_version", { simple: true }) as number;
      if (version > SCHEMA_VERSION) {
        throw new Error(`schema version ${version} is newer than this build understands (${SCHEMA_VERSION})`);
      }
      db.exec(SCHEMA);
      db.pragma(`user_version = ${SCHEMA_VERSION}`);
    } catch (error) {
      throw new StorageUnavailableError(`index database ${file}: ${(error as Error).message}`, {
        cause: error,
      });
    }
    options.logger.info({ file }, "sqlite index opened");
    return new SqliteIndexBackend(db, options.logger, options.transactionDocuments ?? 500);
  }

  private statement(sql: string): Database.Statement {
    let statement = this.statements.get(sql);
    if (statement === undefined) {
      statement = this.db.prepare(sql);
      this.statements.set(sql, statement);
    }
    return statement;
  }

  /** A filter value as a single FTS5 token: kind letter + 64 bits of SHA-1. */
  private facet(kind: FacetKind, value: string): string {
    const key = `${kind}\u0000${value}`;
    let token = this.facetCache.get(key);
    if (token === undefined) {
      token = kind + createHash("sha1").update(key).digest("hex").slice(0, 16);
      if (this.facetCache.size >= 100_000) this.facetCache.clear();
      this.facetCache.set(key, token);
    }
    return token;
  }

  private facetsOf(document: IndexDocument): string {
    const tokens = [
      this.facet("t", document.tenant),
      this.facet("s", document.sessionId),
      this.facet("b", document.botId),
      this.facet("u", document.userId),
      this.facet("m", document.model),
      this.facet("p", document.provider),
      `r${document.role}`,
    ];
    for (const label of document.labels) tokens.push(this.facet("l", label));
    return tokens.join(" ");
  }

  private readonly writeChunk = (documents: readonly IndexDocument[]): void => {
    const find = this.statement("SELECT id, facets, text FROM documents WHERE tenant = ? AND event_id = ?");
    const ftsDelete = this.statement(
      "INSERT INTO documents_fts (documents_fts, rowid, facets, text) VALUES ('delete', ?, ?, ?)",
    );
    const ftsInsert = this.statement("INSERT INTO documents_fts (rowid, facets, text) VALUES (?, ?, ?)");
    const update = this.statement(
      `UPDATE documents SET session_id = ?, seq = ?, time = ?, bot_id = ?, user_id = ?, model = ?,
         provider = ?, role = ?, labels = ?, facets = ?, text = ?, stored = ? WHERE id = ?`,
    );
    const insert = this.statement(
      `INSERT INTO documents (tenant, event_id, session_id, seq, time, bot_id, user_id, model,
         provider, role, labels, facets, text, stored) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    );
    for (const document of documents) {
      const facets = this.facetsOf(document);
      const labels = labelsColumn(document.labels);
      const stored = Buffer.from(document.stored.buffer, document.stored.byteOffset, document.stored.length);
      const existing = find.get(document.tenant, document.eventId) as
        { id: number; facets: string; text: string } | undefined;
      let id: number;
      if (existing === undefined) {
        id = Number(
          insert.run(
            document.tenant,
            document.eventId,
            document.sessionId,
            document.seq,
            document.timeMs,
            document.botId,
            document.userId,
            document.model,
            document.provider,
            document.role,
            labels,
            facets,
            document.text,
            stored,
          ).lastInsertRowid,
        );
      } else {
        id = existing.id;
        ftsDelete.run(id, existing.facets, existing.text);
        update.run(
          document.sessionId,
          document.seq,
          document.timeMs,
          document.botId,
          document.userId,
          document.model,
          document.provider,
          document.role,
          labels,
          facets,
          document.text,
          stored,
          id,
        );
      }
      ftsInsert.run(id, facets, document.text);
    }
  };

  async index(documents: readonly IndexDocument[]): Promise<void> {
    this.assertOpen();
    const write = this.db.transaction(this.writeChunk);
    for (let start = 0; start < documents.length; start += this.transactionDocuments) {
      if (start > 0) await yieldToEventLoop();
      this.assertOpen();
      write(documents.slice(start, start + this.transactionDocuments));
    }
  }

  /** Index without yielding: for bulk loads (benchmarks, rebuilds) that own the process. */
  indexSync(documents: readonly IndexDocument[]): void {
    this.assertOpen();
    this.db.transaction(this.writeChunk)(documents);
  }

  /** SQL conditions on `d` (documents) for every filter but the text, with their parameters. */
  private filterSql(query: SearchQuery): { sql: string; params: unknown[] } {
    const parts: string[] = ["d.tenant = ?"];
    const params: unknown[] = [query.tenant];
    const oneOf = (column: string, values: readonly unknown[]): void => {
      if (values.length === 0) return;
      parts.push(`d.${column} IN (${values.map(() => "?").join(", ")})`);
      params.push(...values);
    };
    oneOf("bot_id", query.botIds);
    oneOf("user_id", query.userIds);
    oneOf("model", query.models);
    oneOf("session_id", query.sessionIds);
    oneOf("role", query.roles);
    for (const label of query.labels) {
      parts.push("instr(d.labels, ?) > 0");
      params.push(`\n${label}\n`);
    }
    if (query.sinceMs !== undefined) {
      parts.push("d.time >= ?");
      params.push(query.sinceMs);
    }
    if (query.untilMs !== undefined) {
      parts.push("d.time < ?");
      params.push(query.untilMs);
    }
    return { sql: parts.join(" AND "), params };
  }

  /** The FTS5 MATCH expression: the tenant's token, filter tokens, then the text terms. */
  private matchExpression(query: SearchQuery, text: string, sessionId?: string): string {
    const groups: string[] = [`facets:${this.facet("t", query.tenant)}`];
    const anyOf = (tokens: string[]): void => {
      if (tokens.length > 0) groups.push(`facets:(${tokens.join(" OR ")})`);
    };
    if (sessionId !== undefined) groups.push(`facets:${this.facet("s", sessionId)}`);
    else anyOf(query.sessionIds.map((value) => this.facet("s", value)));
    anyOf(query.botIds.map((value) => this.facet("b", value)));
    anyOf(query.userIds.map((value) => this.facet("u", value)));
    anyOf(query.models.map((value) => this.facet("m", value)));
    anyOf(query.roles.map((role) => `r${role}`));
    for (const label of query.labels) groups.push(`facets:${this.facet("l", label)}`);
    groups.push(`text:(${text})`);
    return groups.join(" AND ");
  }

  search(query: SearchQuery): Promise<BackendSearchResult> {
    this.assertOpen();
    const text = ftsMatchText(query.text);
    return Promise.resolve(text === undefined ? this.browse(query) : this.fullText(query, text));
  }

  private fullText(query: SearchQuery, text: string): BackendSearchResult {
    const filters = this.filterSql(query);
    const from = `FROM documents_fts JOIN documents d ON d.id = documents_fts.rowid
      WHERE documents_fts MATCH ? AND ${filters.sql}`;
    // bm25() cannot sit inside an aggregate, so matches are scored in a materialized CTE first.
    const groups = this.statement(
      `WITH matches AS MATERIALIZED (
         SELECT d.session_id AS session_id, bm25(documents_fts, 0.0, 1.0) AS score, d.time AS time ${from}
       )
       SELECT session_id, n, sum(n) OVER () AS total_hits, count(*) OVER () AS total_sessions FROM (
         SELECT session_id, min(score) AS best, max(time) AS latest, count(*) AS n
         FROM matches GROUP BY session_id
       ) ORDER BY best, latest DESC, session_id LIMIT ? OFFSET ?`,
    ).all(this.matchExpression(query, text), ...filters.params, query.limit, query.offset) as GroupRow[];
    const hits = this.statement(
      `SELECT d.event_id, d.session_id, d.seq, d.time, d.role, d.provider, d.model, d.bot_id, d.user_id,
              snippet(documents_fts, 1, ?, ?, '…', ${SNIPPET_TOKENS}) AS highlight
       ${from} AND d.session_id = ? ORDER BY bm25(documents_fts, 0.0, 1.0), d.time DESC, d.seq LIMIT ?`,
    );
    const sessions = groups.map((group) =>
      sessionHits(
        group,
        hits.all(
          query.preTag,
          query.postTag,
          this.matchExpression(query, text, group.session_id),
          ...filters.params,
          group.session_id,
          query.hitsPerSession,
        ) as HitRow[],
      ),
    );
    if (groups.length === 0 && query.offset > 0) {
      const totals = this.statement(
        `SELECT count(*) AS hits, count(DISTINCT d.session_id) AS sessions ${from}`,
      ).get(this.matchExpression(query, text), ...filters.params) as { hits: number; sessions: number };
      return { sessions, totalHits: totals.hits, totalSessions: totals.sessions };
    }
    return totalsOf(sessions, groups);
  }

  private browse(query: SearchQuery): BackendSearchResult {
    const filters = this.filterSql(query);
    const groups = this.statement(
      `SELECT session_id, n, sum(n) OVER () AS total_hits, count(*) OVER () AS total_sessions FROM (
         SELECT d.session_id AS session_id, max(d.time) AS latest, count(*) AS n
         FROM documents d WHERE ${filters.sql} GROUP BY d.session_id
       ) ORDER BY latest DESC, session_id LIMIT ? OFFSET ?`,
    ).all(...filters.params, query.limit, query.offset) as GroupRow[];
    const hits = this.statement(
      `SELECT d.event_id, d.session_id, d.seq, d.time, d.role, d.provider, d.model, d.bot_id, d.user_id,
              CASE WHEN length(d.text) > ${PLAIN_SNIPPET_CHARS}
                   THEN substr(d.text, 1, ${PLAIN_SNIPPET_CHARS}) || '…' ELSE d.text END AS highlight
       FROM documents d WHERE ${filters.sql} AND d.session_id = ?
       ORDER BY d.time DESC, d.seq DESC LIMIT ?`,
    );
    const sessions = groups.map((group) =>
      sessionHits(group, hits.all(...filters.params, group.session_id, query.hitsPerSession) as HitRow[]),
    );
    if (groups.length === 0 && query.offset > 0) {
      const totals = this.statement(
        `SELECT count(*) AS hits, count(DISTINCT d.session_id) AS sessions FROM documents d WHERE ${filters.sql}`,
      ).get(...filters.params) as { hits: number; sessions: number };
      return { sessions, totalHits: totals.hits, totalSessions: totals.sessions };
    }
    return totalsOf(sessions, groups);
  }

  getSession(tenant: string, sessionId: string): Promise<Uint8Array[]> {
    this.assertOpen();
    const rows = this.statement(
      "SELECT stored FROM documents WHERE tenant = ? AND session_id = ? ORDER BY seq, event_id",
    ).all(tenant, sessionId) as Array<{ stored: Buffer }>;
    return Promise.resolve(rows.map((row) => row.stored));
  }

  erase(tenant: string, selector: EraseSelector): Promise<EraseResult> {
    this.assertOpen();
    const run = this.db.transaction((): EraseResult => {
      const sessions =
        "userId" in selector
          ? (
              this.statement(
                "SELECT DISTINCT session_id FROM documents WHERE tenant = ? AND user_id = ? ORDER BY session_id",
              ).all(tenant, selector.userId) as Array<{ session_id: string }>
            ).map((row) => row.session_id)
          : this.statement("SELECT 1 FROM documents WHERE tenant = ? AND session_id = ? LIMIT 1")
              .all(tenant, selector.sessionId)
              .map(() => selector.sessionId);
      const inSession = this.statement(
        "SELECT id, facets, text FROM documents WHERE tenant = ? AND session_id = ?",
      );
      const byUser = this.statement(
        "SELECT id, facets, text FROM documents WHERE tenant = ? AND user_id = ?",
      );
      const ftsDelete = this.statement(
        "INSERT INTO documents_fts (documents_fts, rowid, facets, text) VALUES ('delete', ?, ?, ?)",
      );
      const remove = this.statement("DELETE FROM documents WHERE id = ?");
      const rows = new Map<number, { id: number; facets: string; text: string }>();
      // A subject's sessions go whole: the bot's replies in them are about the subject too.
      for (const sessionId of sessions) {
        for (const row of inSession.all(tenant, sessionId) as Array<{
          id: number;
          facets: string;
          text: string;
        }>)
          rows.set(row.id, row);
      }
      if ("userId" in selector) {
        for (const row of byUser.all(tenant, selector.userId) as Array<{
          id: number;
          facets: string;
          text: string;
        }>)
          rows.set(row.id, row);
      }
      for (const row of rows.values()) {
        ftsDelete.run(row.id, row.facets, row.text);
        remove.run(row.id);
      }
      return { sessions, documentsRemoved: rows.size };
    });
    return Promise.resolve(run());
  }

  /** Number of documents held (all tenants). */
  count(): number {
    return (this.statement("SELECT count(*) AS n FROM documents").get() as { n: number }).n;
  }

  close(): Promise<void> {
    if (!this.closed) {
      this.closed = true;
      this.db.close();
      this.logger.info("sqlite index closed");
    }
    return Promise.resolve();
  }

  private assertOpen(): void {
    if (this.closed) throw new StorageUnavailableError("the index is closed");
  }
}

interface GroupRow {
  session_id: string;
  n: number;
  total_hits: number;
  total_sessions: number;
}

interface HitRow {
  event_id: string;
  session_id: string;
  seq: number;
  time: number;
  role: number;
  provider: string;
  model: string;
  bot_id: string;
  user_id: string;
  highlight: string | null;
}

/** The labels column: one canonical token per line, so `instr` matches whole tokens only. */
function labelsColumn(labels: readonly string[]): string {
  return labels.length === 0 ? "\n" : `\n${labels.join("\n")}\n`;
}

function sessionHits(group: GroupRow, rows: HitRow[]): BackendSessionHits {
  const first = rows[0];
  return {
    sessionId: group.session_id,
    botId: first?.bot_id ?? "",
    userId: first?.user_id ?? "",
    sessionHits: group.n,
    hits: rows.map((row) => ({
      eventId: row.event_id,
      sessionId: row.session_id,
      seq: row.seq,
      timeMs: row.time,
      role: row.role,
      provider: row.provider,
      model: row.model,
      highlight: row.highlight ?? "",
    })),
  };
}

function totalsOf(sessions: BackendSessionHits[], groups: GroupRow[]): BackendSearchResult {
  const first = groups[0];
  return {
    sessions,
    totalHits: first?.total_hits ?? 0,
    totalSessions: first?.total_sessions ?? 0,
  };
}
