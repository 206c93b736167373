import { loadIngestConfig, startIngestServer } from "@sessiontrack/ingest";

import { runServe } from "./service-serve.js";

const USAGE = `Usage: sessiontrack ingest serve --data-dir DIR --tenants FILE [options]

  --listen HOST:PORT          gRPC address (default 127.0.0.1:7070)
  --metrics-listen HOST:PORT  /metrics, /healthz, /readyz (default 127.0.0.1:9464)
  --data-dir DIR              where the write-ahead log lives (required)
  --tenants FILE              YAML or JSON: tenants: [{name, keys: [{id, sha256, roles}]}] (required)
  --capture-config FILE       capture configuration served on WatchConfig (default: capture everything)
  --max-batch-events N        largest batch accepted (default 5000)
  --max-batch-bytes N         largest batch accepted in bytes (default 16 MiB)
  --log-level LEVEL           trace|debug|info|warn|error (default info)
  --wal-segment-bytes N       WAL segment size (default 64 MiB)
  --wal-max-retained-bytes N  WAL size bound; beyond it ingest refuses events (RESOURCE_EXHAUSTED)
  --shutdown-grace-ms N       drain time on SIGTERM (default 10000)
  --drain-file FILE           pod annotations file (downward API); sessiontrack.io/drain="true"
                              drains this replica before a scale-down (set by the operator)

Shipping (off unless a sink address is set):
  --archive-url ADDR          archive service, host:port or grpc[s]://host:port
  --index-url ADDR            index service, host:port or grpc[s]://host:port
  --service-key-file FILE     the internal service key presented to the sinks (required with a sink)
  --ship-batch-events N       events per delivery (default 1000)
  --ship-batch-bytes N        bytes per delivery (default 4 MiB)
  --ship-timeout-ms N         deadline of one delivery (default 30000)
  --erase-wait-ms N           how long an erasure waits for the sinks to catch up (default 15000)

Every setting can also come from SESSIONTRACK_<NAME> (for example SESSIONTRACK_DATA_DIR);
a flag wins over the environment. SIGTERM drains in-flight requests, then exits.`;

const FLAGS = [
  "listen",
  "metrics-listen",
  "data-dir",
  "tenants",
  "capture-config",
  "max-batch-events",
  "max-batch-bytes",
  "log-level",
  "wal-segment-bytes",
  "wal-max-retained-bytes",
  "shutdown-grace-ms",
  "drain-file",
  "archive-url",
  "index-url",
  "service-key-file",
  "ship-batch-events",
  "ship-batch-bytes",
  "ship-timeout-ms",
  "erase-wait-ms",
] as const;

/** `sessiontrack ingest serve` */
export function runIngestServe(argv: readonly string[]): Promise<number> {
  return runServe(
    {
      name: "ingest",
      usage: USAGE,
      flags: FLAGS,
      load: (flags) => loadIngestConfig(flags),
      start: startIngestServer,
    },
    argv,
  );
}
