import { loadIndexConfig, startIndexServer } from "@sessiontrack/index";

import { runServe } from "./service-serve.js";

const USAGE = `Usage: sessiontrack index serve --tenants FILE [--data-dir DIR | --backend meilisearch --meili-url URL] [options]

  --listen HOST:PORT            gRPC address (default 127.0.0.1:7071)
  --metrics-listen HOST:PORT    /metrics, /healthz, /readyz (default 127.0.0.1:9465)
  --tenants FILE                tenants file with tenant keys and the services list (required)
  --backend sqlite|meilisearch  search backend (default sqlite, the embedded default)
  --data-dir DIR                where the SQLite index lives (required with sqlite)
  --meili-url URL               Meilisearch address (required with meilisearch)
  --meili-key KEY | --meili-key-file FILE   Meilisearch API key
  --meili-index UID             index uid (default sessiontrack_events)
  --meili-batch-documents N     documents per Meilisearch call (default 5000)
  --meili-task-timeout-ms N     wait for a Meilisearch task (default 60000)
  --max-batch-events N          largest IndexEvents batch (default 20000)
  --log-level LEVEL             trace|debug|info|warn|error (default info)
  --shutdown-grace-ms N         drain time on SIGTERM (default 10000)

Every setting can also come from SESSIONTRACK_<NAME>; a flag wins over the environment.`;

const FLAGS = [
  "listen",
  "metrics-listen",
  "tenants",
  "backend",
  "data-dir",
  "meili-url",
  "meili-key",
  "meili-key-file",
  "meili-index",
  "meili-batch-documents",
  "meili-task-timeout-ms",
  "meili-task-prune-interval-ms",
  "meili-task-retention-ms",
  "max-batch-events",
  "log-level",
  "shutdown-grace-ms",
] as const;

/** `sessiontrack index serve` */
export function runIndexServe(argv: readonly string[]): Promise<number> {
  return runServe(
    {
      name: "index",
      usage: USAGE,
      flags: FLAGS,
      load: (flags) => loadIndexConfig(flags),
      start: startIndexServer,
    },
    argv,
  );
}
