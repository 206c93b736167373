import { mkdirSync } from "node:fs";
import { join } from "node:path";

import Database from "better-sqlite3";

import { StorageUnavailableError } from "@sessiontrack/errors";

/** The database file of an index data directory. */
export function sqliteIndexFile(dataDir: string): string {
  return join(dataDir, "index.sqlite");
}

const SCHEMA_VERSION = 1;

// One row per (tenant, event_id): a replayed event updates its row instead of adding one.
// Row ids are clustered by tenant (tenant number × 2^36 + a per-tenant counter), so a
// tenant's documents are one rowid range: FTS5 seeks straight into it, and a scan of a
// tenant never touches another's rows. `facets` holds hashed tokens for the selective
// filters (session, user) so FTS5 intersects them with the text in its posting lists;
// the SQL WHERE on the real columns (tenant first) stays the authority.
const SCHEMA = `
CREATE TABLE IF NOT EXISTS tenants (
  id INTEGER PRIMARY KEY,
  name TEXT NOT NULL UNIQUE
);
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
  labels TEXT NOT NULL
);
-- The bulky part of a document, apart, so the rows a search joins and filters stay small
-- and dense: FTS5's content (facets, text) and the StoredEvent bytes.
CREATE TABLE IF NOT EXISTS document_bodies (
  id INTEGER PRIMARY KEY,
  facets TEXT NOT NULL,
  text TEXT NOT NULL,
  stored BLOB NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS documents_event ON documents (tenant, event_id);
CREATE INDEX IF NOT EXISTS documents_session ON documents (tenant, session_id, seq);
CREATE INDEX IF NOT EXISTS documents_time ON documents (tenant, time);
CREATE INDEX IF NOT EXISTS documents_user ON documents (tenant, user_id);
CREATE INDEX IF NOT EXISTS documents_bot ON documents (tenant, bot_id, time);
-- One row per session: what browsing a tenant's recent sessions reads instead of grouping
-- every document. Kept exact by the writer (sessions are only ever erased whole).
CREATE TABLE IF NOT EXISTS sessions (
  tenant TEXT NOT NULL,
  session_id TEXT NOT NULL,
  events INTEGER NOT NULL,
  last_time INTEGER NOT NULL,
  PRIMARY KEY (tenant, session_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS sessions_recent ON sessions (tenant, last_time);
CREATE VIRTUAL TABLE IF NOT EXISTS documents_fts USING fts5(
  facets, text, content = 'document_bodies', content_rowid = 'id',
  tokenize = 'unicode61 remove_diacritics 2'
);
`;

/** Row ids per tenant: 2^36 (68 billion documents); tenant numbers up to 2^17 keep ids below 2^53. */
export const TENANT_SPAN = 2 ** 36;
export const MAX_TENANTS = 2 ** 17 - 1;

/**
 * Opens (creating if needed) `<dataDir>/index.sqlite` with the index's pragmas and schema.
 * Throws StorageUnavailableError naming the file.
 */
export function openIndexDatabase(dataDir: string): Database.Database {
  const file = sqliteIndexFile(dataDir);
  let db: Database.Database;
  try {
    mkdirSync(dataDir, { recursive: true });
    db = new Database(file);
    db.pragma("journal_mode = WAL");
    // WAL + NORMAL survives a process crash; the index is rebuilt from the archive after a
    // machine crash, so it does not pay an fsync per transaction.
    db.pragma("synchronous = NORMAL");
    db.pragma("busy_timeout = 5000");
    db.pragma("cache_size = -65536");
    db.pragma("mmap_size = 4294967296");
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
  return db;
}
