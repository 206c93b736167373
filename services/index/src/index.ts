export { loadIndexConfig, type IndexConfig } from "./config.js";
export { startIndexServer, type IndexServer } from "./server.js";
export { createIndexBackend, type IndexBackendSettings } from "./backend-factory.js";
export type {
  BackendSearchResult,
  BackendSessionHits,
  EraseResult,
  EraseSelector,
  IndexBackend,
  IndexDocument,
  SearchQuery,
} from "./backend.js";
export { documentFromStoredEvent, labelToken, searchableText } from "./document.js";
export { SqliteIndexBackend, type SqliteBackendOptions } from "./sqlite-backend.js";
export { SqliteIndexStore } from "./sqlite-store.js";
export { sqliteIndexFile } from "./sqlite-schema.js";
export { MeilisearchIndexBackend, type MeilisearchBackendOptions } from "./meili-backend.js";
