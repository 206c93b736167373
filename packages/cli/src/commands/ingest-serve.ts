import { loadIngestConfig, startIngestServer } from "@sessiontrack/ingest";
import { createLogger } from "@sessiontrack/runtime";

import { parseCommandArgs } from "../args.js";
import { waitForShutdownSignal } from "../signals.js";

const USAGE = `Usage: sessiontrack ingest serve --data-dir DIR --tenants FILE [options]

  --listen HOST:PORT          gRPC address (default 127.0.0.1:7070)
  --metrics-listen HOST:PORT  /metrics, /healthz, /readyz (default 127.0.0.1:9464)
  --data-dir DIR              where the write-ahead log lives (required)
  --tenants FILE              YAML or JSON: tenants: [{name, keys: [{id, sha256, roles}]}] (required)
  --capture-config FILE       capture configuration served on WatchConfig (default: capture everything)
  --max-batch-events N        largest batch accepted (default 5000)
  --max-batch-bytes N         largest batch accepted in bytes (default 16 MiB)
  --log-level LEVEL           trace|debug|info|warn|error (default info)

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
] as const;

/** `sessiontrack ingest serve` */
export async function runIngestServe(argv: readonly string[]): Promise<number> {
  const options = Object.fromEntries(FLAGS.map((flag) => [flag, { type: "string" as const }]));
  const args = parseCommandArgs(argv, { ...options, help: { type: "boolean", short: "h" } }, USAGE);
  if (args.booleans["help"] === true) {
    console.log(USAGE);
    return 0;
  }
  const config = loadIngestConfig(args.flags);
  const logger = createLogger({ name: "ingest", level: config.logLevel });
  const server = await startIngestServer(config, logger);
  logger.info({ address: server.address, metrics: server.metricsAddress }, "ingest serving");
  const signal = await waitForShutdownSignal();
  logger.info({ signal }, "draining");
  await server.close();
  logger.info("stopped");
  return 0;
}
