import type { Logger } from "@sessiontrack/runtime";

import type { IndexBackend } from "./backend.js";
import type { IndexConfig } from "./config.js";
import { MeilisearchIndexBackend } from "./meili-backend.js";
import type { IndexMetrics } from "./metrics.js";
import { SqliteIndexBackend } from "./sqlite-backend.js";

/** The settings a backend is built from: a subset of {@link IndexConfig}. */
export type IndexBackendSettings = Pick<
  IndexConfig,
  | "backend"
  | "dataDir"
  | "meiliUrl"
  | "meiliKey"
  | "meiliIndex"
  | "meiliBatchDocuments"
  | "meiliTaskTimeoutMs"
  | "meiliTaskPruneIntervalMs"
  | "meiliTaskRetentionMs"
>;

/**
 * Opens the configured backend (SQLite: creates the database; Meilisearch: creates the
 * index and applies its settings, waiting for both tasks). A rebuild tool can use it to
 * index directly, without the gRPC service.
 */
export async function createIndexBackend(
  settings: IndexBackendSettings,
  logger: Logger,
  metrics?: IndexMetrics,
): Promise<IndexBackend> {
  if (settings.backend === "sqlite") {
    return SqliteIndexBackend.open({
      dataDir: settings.dataDir!,
      logger: logger.child({ backend: "sqlite" }),
    });
  }
  return MeilisearchIndexBackend.open({
    url: settings.meiliUrl!,
    apiKey: settings.meiliKey,
    indexUid: settings.meiliIndex,
    batchDocuments: settings.meiliBatchDocuments,
    taskTimeoutMs: settings.meiliTaskTimeoutMs,
    taskPruneIntervalMs: settings.meiliTaskPruneIntervalMs,
    taskRetentionMs: settings.meiliTaskRetentionMs,
    logger: logger.child({ backend: "meilisearch" }),
    metrics,
  });
}
