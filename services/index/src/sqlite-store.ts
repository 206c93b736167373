import { createHash } from "node:crypto";

import type Database from "better-sqlite3";

import { StorageUnavailableError } from "@sessiontrack/errors";
import type { Logger } from "@sessiontrack/runtime";

import type {
  BackendSearchResult,
  BackendSessionHits,
  EraseResult,
  EraseSelector,
  IndexDocument,
  SearchQuery,
} from "./backend.js";
import { highlight, queryTokens } from "./highlight.js";
import { MAX_TENANTS, openIndexDatabase, sqliteIndexFile, TENANT_SPAN } from "./sqlite-schema.js";
import { ftsMatchText } from "./query-text.js";

type FacetKind = "s" | "u";

/** A tenant's number and the next free row id in its range. */
interface TenantRange {
  number: number;
  next: number;
}

/**
 * One better-sqlite3 connection to the index database (SQLite FTS5, WAL mode), with a
 * synchronous API. The backend reads through one on the main thread and writes through
 * another in a worker thread; bulk loaders may write through one directly.
 */
export class SqliteIndexStore {
  private readonly statements = new Map<string, Database.Statement>();
  private readonly facetCache = new Map<string, string>();
  private readonly tenantRanges = new Map<string, TenantRange>();
  private closed = false;

  private constructor(
    private readonly db: Database.Database,
    private readonly logger: Logger,
  ) {}

  /** Opens (creating if needed) `<dataDir>/index.sqlite`. */
  static open(dataDir: string, logger: Logger): SqliteIndexStore {
    const file = sqliteIndexFile(dataDir);
    const db = openIndexDatabase(dataDir);
    logger.debug({ file }, "sqlite index connection opened");
    return new SqliteIndexStore(db, logger);
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
    return `${this.facet("s", document.sessionId)} ${this.facet("u", document.userId)}`;
  }

  /** The tenant's number, or undefined when it has no documents yet. */
  private tenantNumber(tenant: string): number | undefined {
    const known = this.tenantRanges.get(tenant);
    if (known !== undefined) return known.number;
    const row = this.statement("SELECT id FROM tenants WHERE name = ?").get(tenant) as
      { id: number } | undefined;
    return row?.id;
  }

  /** Allocates the next row id in the tenant's range (registering the tenant if new). */
  private nextRowId(tenant: string): number {
    let range = this.tenantRanges.get(tenant);
    if (range === undefined) {
      let number = this.tenantNumber(tenant);
      if (number === undefined) {
        number = Number(this.statement("INSERT INTO tenants (name) VALUES (?)").run(tenant).lastInsertRowid);
        if (number > MAX_TENANTS)
          throw new StorageUnavailableError(`the index holds its limit of ${MAX_TENANTS} tenants`);
      }
      const lo = number * TENANT_SPAN;
      const max = (
        this.statement("SELECT max(id) AS id FROM documents WHERE id BETWEEN ? AND ?").get(
          lo,
          lo + TENANT_SPAN - 1,
        ) as {
          id: number | null;
        }
      ).id;
      range = { number, next: max === null ? lo : max + 1 };
      this.tenantRanges.set(tenant, range);
    }
    const id = range.next;
    range.next += 1;
    return id;
  }

  private readonly writeChunk = (documents: readonly IndexDocument[]): void => {
    const find = this.statement(
      `SELECT d.id, d.session_id, b.facets, b.text FROM documents d JOIN document_bodies b ON b.id = d.id
       WHERE d.tenant = ? AND d.event_id = ?`,
    );
    const countSession = this.statement(
      `INSERT INTO sessions (tenant, session_id, events, last_time) VALUES (?, ?, 1, ?)
       ON CONFLICT (tenant, session_id) DO UPDATE
       SET events = events + 1, last_time = max(last_time, excluded.last_time)`,
    );
    const ftsDelete = this.statement(
      "INSERT INTO documents_fts (documents_fts, rowid, facets, text) VALUES ('delete', ?, ?, ?)",
    );
    const ftsInsert = this.statement("INSERT INTO documents_fts (rowid, facets, text) VALUES (?, ?, ?)");
    const update = this.statement(
      `UPDATE documents SET session_id = ?, seq = ?, time = ?, bot_id = ?, user_id = ?, model = ?,
         provider = ?, role = ?, labels = ? WHERE id = ?`,
    );
    const insert = this.statement(
      `INSERT INTO documents (id, tenant, event_id, session_id, seq, time, bot_id, user_id, model,
         provider, role, labels) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    );
    const putBody = this.statement(
      "INSERT OR REPLACE INTO document_bodies (id, facets, text, stored) VALUES (?, ?, ?, ?)",
    );
    for (const document of documents) {
      const facets = this.facetsOf(document);
      const labels = labelsColumn(document.labels);
      const stored = Buffer.from(document.stored.buffer, document.stored.byteOffset, document.stored.length);
      const existing = find.get(document.tenant, document.eventId) as
        { id: number; session_id: string; facets: string; text: string } | undefined;
      let id: number;
      if (existing === undefined) {
        id = this.nextRowId(document.tenant);
        insert.run(
          id,
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
        );
        countSession.run(document.tenant, document.sessionId, document.timeMs);
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
          id,
        );
        // A replay normally changes nothing the summary holds; recount to stay exact if it did.
        this.refreshSession(document.tenant, existing.session_id);
        if (existing.session_id !== document.sessionId)
          this.refreshSession(document.tenant, document.sessionId);
      }
      putBody.run(id, facets, document.text, stored);
      ftsInsert.run(id, facets, document.text);
    }
  };

  /** Recomputes one session's summary row from its documents (removing it when none are left). */
  private refreshSession(tenant: string, sessionId: string): void {
    this.statement("DELETE FROM sessions WHERE tenant = ? AND session_id = ?").run(tenant, sessionId);
    this.statement(
      `INSERT INTO sessions (tenant, session_id, events, last_time)
       SELECT tenant, session_id, count(*), max(time) FROM documents
       WHERE tenant = ? AND session_id = ? GROUP BY tenant, session_id`,
    ).run(tenant, sessionId);
  }

  /** Adds or replaces documents in one transaction. */
  write(documents: readonly IndexDocument[]): void {
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

  /** The FTS5 MATCH expression: selective filter tokens (session, user), then the text terms. */
  private matchExpression(query: SearchQuery, text: string): string {
    const groups: string[] = [];
    const anyOf = (tokens: string[]): void => {
      if (tokens.length > 0) groups.push(`facets:(${tokens.join(" OR ")})`);
    };
    anyOf(query.sessionIds.map((value) => this.facet("s", value)));
    anyOf(query.userIds.map((value) => this.facet("u", value)));
    groups.push(`text:(${text})`);
    return groups.join(" AND ");
  }

  search(query: SearchQuery): BackendSearchResult {
    this.assertOpen();
    const tenantNumber = this.tenantNumber(query.tenant);
    if (tenantNumber === undefined) return { sessions: [], totalHits: 0, totalSessions: 0 };
    const lo = tenantNumber * TENANT_SPAN;
    const hi = lo + TENANT_SPAN - 1;
    const text = ftsMatchText(query.text);
    if (text === undefined && hasNoFilters(query)) return this.recentSessions(query, lo, hi);
    const filters = this.filterSql(query);
    // Every match of the tenant. CROSS JOIN pins the join order: FTS5 drives and each
    // match looks its row up by id; left to itself the planner may scan an index on
    // documents and probe FTS5 per row, which is hundreds of times slower.
    const matches =
      text === undefined
        ? {
            sql: `SELECT d.id AS id, d.session_id AS session_id, d.time AS time, d.seq AS seq
                  FROM documents d WHERE d.id BETWEEN ? AND ? AND ${filters.sql}`,
            params: [lo, hi, ...filters.params],
          }
        : {
            sql: `SELECT d.id AS id, d.session_id AS session_id, d.time AS time, d.seq AS seq
                  FROM documents_fts CROSS JOIN documents d ON d.id = documents_fts.rowid
                  WHERE documents_fts MATCH ? AND documents_fts.rowid BETWEEN ? AND ? AND ${filters.sql}`,
            params: [this.matchExpression(query, text), lo, hi, ...filters.params],
          };
    // One statement, one pass over the matches: sessions (with text, the most matching
    // events first, then the most recent; without, the most recent), the totals, and each
    // page session's newest matching events. Scoring every match with bm25() to rank by
    // relevance instead made common words on the largest tenant several times slower, and
    // per-session FTS5 queries for bm25-ordered hits cost ~10 ms each at 1M documents.
    const rows = this.statement(
      `WITH matches AS MATERIALIZED (${matches.sql}),
       sessions AS (
         SELECT session_id, count(*) AS n, max(time) AS latest,
                sum(count(*)) OVER () AS total_hits, count(*) OVER () AS total_sessions
         FROM matches GROUP BY session_id
         ORDER BY ${text === undefined ? "" : "n DESC, "}latest DESC, session_id LIMIT ? OFFSET ?
       ),
       ranked AS (
         SELECT id, session_id,
                row_number() OVER (PARTITION BY session_id ORDER BY time DESC, seq DESC) AS rank
         FROM matches WHERE session_id IN (SELECT session_id FROM sessions)
       )
       SELECT s.session_id, s.n, s.total_hits, s.total_sessions, r.id AS hit_id
       FROM sessions s JOIN ranked r ON r.session_id = s.session_id AND r.rank <= ?
       ORDER BY ${text === undefined ? "" : "s.n DESC, "}s.latest DESC, s.session_id, r.rank`,
    ).all(...matches.params, query.limit, query.offset, query.hitsPerSession) as PageRow[];
    const sessions = this.pageSessions(query, rows);
    if (rows.length === 0 && query.offset > 0) {
      const totals = this.statement(
        `SELECT count(*) AS hits, count(DISTINCT session_id) AS sessions FROM (${matches.sql})`,
      ).get(...matches.params) as { hits: number; sessions: number };
      return { sessions, totalHits: totals.hits, totalSessions: totals.sessions };
    }
    const first = rows[0];
    return { sessions, totalHits: first?.total_hits ?? 0, totalSessions: first?.total_sessions ?? 0 };
  }

  /** Browsing a tenant without text or filters: its most recent sessions, from the summary table. */
  private recentSessions(query: SearchQuery, lo: number, hi: number): BackendSearchResult {
    const totals = this.statement(
      "SELECT count(*) AS sessions, coalesce(sum(events), 0) AS hits FROM sessions WHERE tenant = ?",
    ).get(query.tenant) as { sessions: number; hits: number };
    const page = this.statement(
      `SELECT session_id, events FROM sessions WHERE tenant = ?
       ORDER BY last_time DESC, session_id LIMIT ? OFFSET ?`,
    ).all(query.tenant, query.limit, query.offset) as Array<{ session_id: string; events: number }>;
    const latest = this.statement(
      `SELECT id FROM documents WHERE id BETWEEN ? AND ? AND tenant = ? AND session_id = ?
       ORDER BY time DESC, seq DESC LIMIT ?`,
    );
    const rows: PageRow[] = [];
    for (const session of page) {
      for (const hit of latest.all(lo, hi, query.tenant, session.session_id, query.hitsPerSession) as Array<{
        id: number;
      }>) {
        rows.push({
          session_id: session.session_id,
          n: session.events,
          total_hits: totals.hits,
          total_sessions: totals.sessions,
          hit_id: hit.id,
        });
      }
    }
    return {
      sessions: this.pageSessions(query, rows),
      totalHits: totals.hits,
      totalSessions: totals.sessions,
    };
  }

  /** Reads the page's hits and builds the grouped result, highlighting in JS. */
  private pageSessions(query: SearchQuery, rows: PageRow[]): BackendSessionHits[] {
    const byId = new Map<number, HitRow>();
    const ids = rows.map((row) => row.hit_id);
    for (let start = 0; start < ids.length; start += 500) {
      const chunk = ids.slice(start, start + 500);
      const hits = this.statement(
        `SELECT d.id, d.event_id, d.session_id, d.seq, d.time, d.role, d.provider, d.model, d.bot_id,
                d.user_id, b.text
         FROM documents d JOIN document_bodies b ON b.id = d.id WHERE d.id IN (${chunk.map(() => "?").join(", ")})`,
      ).all(...chunk) as HitRow[];
      for (const hit of hits) byId.set(hit.id, hit);
    }
    const terms = queryTokens(query.text);
    const tags = { preTag: query.preTag, postTag: query.postTag };
    const sessions: BackendSessionHits[] = [];
    for (const row of rows) {
      const hit = byId.get(row.hit_id);
      if (hit === undefined) continue;
      let session = sessions.at(-1);
      if (session?.sessionId !== row.session_id) {
        session = {
          sessionId: row.session_id,
          botId: hit.bot_id,
          userId: hit.user_id,
          hits: [],
          sessionHits: row.n,
        };
        sessions.push(session);
      }
      session.hits.push({
        eventId: hit.event_id,
        sessionId: hit.session_id,
        seq: hit.seq,
        timeMs: hit.time,
        role: hit.role,
        provider: hit.provider,
        model: hit.model,
        highlight: highlight(hit.text, terms, tags),
      });
    }
    return sessions;
  }

  getSession(tenant: string, sessionId: string): Buffer[] {
    this.assertOpen();
    const rows = this.statement(
      `SELECT b.stored FROM documents d JOIN document_bodies b ON b.id = d.id
       WHERE d.tenant = ? AND d.session_id = ? ORDER BY d.seq, d.event_id`,
    ).all(tenant, sessionId) as Array<{ stored: Buffer }>;
    return rows.map((row) => row.stored);
  }

  erase(tenant: string, selector: EraseSelector): EraseResult {
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
        `SELECT d.id, d.session_id, b.facets, b.text FROM documents d JOIN document_bodies b ON b.id = d.id
         WHERE d.tenant = ? AND d.session_id = ?`,
      );
      const byUser = this.statement(
        `SELECT d.id, d.session_id, b.facets, b.text FROM documents d JOIN document_bodies b ON b.id = d.id
         WHERE d.tenant = ? AND d.user_id = ?`,
      );
      const ftsDelete = this.statement(
        "INSERT INTO documents_fts (documents_fts, rowid, facets, text) VALUES ('delete', ?, ?, ?)",
      );
      const remove = this.statement("DELETE FROM documents WHERE id = ?");
      const removeBody = this.statement("DELETE FROM document_bodies WHERE id = ?");
      const rows = new Map<number, { id: number; session_id: string; facets: string; text: string }>();
      // A subject's sessions go whole: the bot's replies in them are about the subject too.
      for (const sessionId of sessions) {
        for (const row of inSession.all(tenant, sessionId) as Array<{
          id: number;
          session_id: string;
          facets: string;
          text: string;
        }>)
          rows.set(row.id, row);
      }
      if ("userId" in selector) {
        for (const row of byUser.all(tenant, selector.userId) as Array<{
          id: number;
          session_id: string;
          facets: string;
          text: string;
        }>)
          rows.set(row.id, row);
      }
      const touched = new Set<string>();
      for (const row of rows.values()) {
        ftsDelete.run(row.id, row.facets, row.text);
        remove.run(row.id);
        removeBody.run(row.id);
        touched.add(row.session_id);
      }
      for (const sessionId of touched) this.refreshSession(tenant, sessionId);
      return { sessions, documentsRemoved: rows.size };
    });
    return run();
  }

  /** Number of documents held (all tenants). */
  count(): number {
    return (this.statement("SELECT count(*) AS n FROM documents").get() as { n: number }).n;
  }

  close(): void {
    if (!this.closed) {
      this.closed = true;
      this.db.close();
      this.logger.debug("sqlite index connection closed");
    }
  }

  private assertOpen(): void {
    if (this.closed) throw new StorageUnavailableError("the index is closed");
  }
}

interface PageRow {
  session_id: string;
  n: number;
  total_hits: number;
  total_sessions: number;
  hit_id: number;
}

interface HitRow {
  id: number;
  event_id: string;
  session_id: string;
  seq: number;
  time: number;
  role: number;
  provider: string;
  model: string;
  bot_id: string;
  user_id: string;
  text: string;
}

function hasNoFilters(query: SearchQuery): boolean {
  return (
    query.botIds.length === 0 &&
    query.userIds.length === 0 &&
    query.models.length === 0 &&
    query.labels.length === 0 &&
    query.sessionIds.length === 0 &&
    query.roles.length === 0 &&
    query.sinceMs === undefined &&
    query.untilMs === undefined
  );
}

/** The labels column: one canonical token per line, so `instr` matches whole tokens only. */
function labelsColumn(labels: readonly string[]): string {
  return labels.length === 0 ? "\n" : `\n${labels.join("\n")}\n`;
}
