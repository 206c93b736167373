import { loadArchiveConfig, startArchiveServer } from "@sessiontrack/archive";

import { runServe } from "./service-serve.js";

const USAGE = `Usage: sessiontrack archive serve --tenants FILE --kek-dir DIR [--data-dir DIR | --store s3 ...] [options]

  --listen HOST:PORT            gRPC address (default 127.0.0.1:7072)
  --metrics-listen HOST:PORT    /metrics, /healthz, /readyz (default 127.0.0.1:9466)
  --tenants FILE                tenants file with tenant keys and the services list (required)
  --kek-dir DIR                 one key-encryption key file per tenant, named after it (required)
  --store local|s3              object store (default local, the embedded default)
  --data-dir DIR                where objects live with --store local
  --s3-endpoint URL             S3/MinIO endpoint (required with s3)
  --s3-bucket NAME              bucket (default sessiontrack)
  --s3-region REGION            region (default us-east-1)
  --s3-access-key KEY           (or SESSIONTRACK_S3_ACCESS_KEY[_FILE])
  --s3-secret-key KEY           (or SESSIONTRACK_S3_SECRET_KEY[_FILE])
  --s3-cold-storage-class NAME  storage class for objects older than --cold-after-days
  --cold-after-days N           move objects to cold storage after N days (0 = never)
  --retention-days N            delete objects after N days (0 = keep)
  --policy-file FILE            per-tenant retention/tiering policy
  --sweep-interval-seconds N    how often retention and tiering run (default 3600)
  --compact-idle-seconds N      rewrite a session idle this long as one section (default 600; 0 = never)
  --log-level LEVEL             trace|debug|info|warn|error (default info)
  --shutdown-grace-ms N         drain time on SIGTERM (default 10000)

Every setting can also come from SESSIONTRACK_<NAME>; a flag wins over the environment.`;

const FLAGS = [
  "listen",
  "metrics-listen",
  "tenants",
  "store",
  "data-dir",
  "s3-endpoint",
  "s3-bucket",
  "s3-region",
  "s3-access-key",
  "s3-secret-key",
  "s3-cold-storage-class",
  "kek-dir",
  "cold-after-days",
  "retention-days",
  "policy-file",
  "sweep-interval-seconds",
  "compact-idle-seconds",
  "log-level",
  "shutdown-grace-ms",
] as const;

/** `sessiontrack archive serve` */
export function runArchiveServe(argv: readonly string[]): Promise<number> {
  return runServe(
    {
      name: "archive",
      usage: USAGE,
      flags: FLAGS,
      load: (flags) => loadArchiveConfig(flags),
      start: startArchiveServer,
    },
    argv,
  );
}
