import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join, relative, resolve, sep } from "node:path";

import * as grpc from "@grpc/grpc-js";

import { loadArchiveConfig, startArchiveServer } from "@sessiontrack/archive";
import { SessionTrackClient } from "@sessiontrack/client";
import { loadIndexConfig, startIndexServer } from "@sessiontrack/index";
import { generateApiKey, loadIngestConfig, startIngestServer, writeTenantsFile } from "@sessiontrack/ingest";
import {
  ArchiveServiceClient,
  IndexServiceClient,
  SearchRequest,
  type ArchiveServiceGetSessionResponse,
  type SearchResponse,
} from "@sessiontrack/proto";
import { createLogger, parseHostPort } from "@sessiontrack/runtime";

import { parseCommandArgs } from "../args.js";
import { runDemoBot } from "../demo-bot.js";
import { bearer, call, CLIENT_OPTIONS } from "../remote.js";
import { waitForShutdownSignal } from "../signals.js";
import { renderTranscript } from "../transcript.js";
import { printResults } from "./search.js";

const USAGE = `Usage: sessiontrack dev [options]

Runs the embedded stack on local disk — ingest (write-ahead log + shipper), index
(SQLite FTS5) and archive (encrypted objects in a local directory) — with a demo
tenant, plays a demo bot's sessions through the capture SDK, waits until they are
searchable, shows what was stored, and keeps serving until Ctrl-C.

  --data-dir DIR                state directory (default ./.sessiontrack/dev)
  --listen HOST:PORT            ingest gRPC address (default 127.0.0.1:7070)
  --index-listen HOST:PORT      index gRPC address (default 127.0.0.1:7071)
  --archive-listen HOST:PORT    archive gRPC address (default 127.0.0.1:7072)
  --metrics-listen HOST:PORT    ingest metrics address (default 127.0.0.1:9464; index and
                                archive use 9465 and 9466, or port 0 when this port is 0)
  --log-level LEVEL             service log level (default warn, to keep the demo readable)
  --exit-after-demo             stop after the demo instead of serving`;

const CAPTURE_CONFIG = `# Capture configuration served to bots on WatchConfig. Edit and save: connected
# SDKs pick up the change within about a second.
enabled: true      # the kill switch: false stops capture everywhere
sampleRate: 1      # fraction of sessions captured when no cohort matches
stage: full
cohorts: []
optOut:
  userIds: []
  botIds: []
`;

/** The demo tenant's keys, written next to the stack so commands can be pasted as printed. */
interface DevKeys {
  bot: string;
  read: string;
  admin: string;
  service: string;
}

function writeKeys(dataDir: string): DevKeys & { files: Record<keyof DevKeys, string> } {
  const bot = generateApiKey();
  const read = generateApiKey();
  const admin = generateApiKey();
  const service = generateApiKey();
  writeTenantsFile(
    join(dataDir, "tenants.json"),
    [
      {
        name: "demo",
        keys: [
          { id: "demo-bot", sha256: bot.sha256, roles: ["ingest"] },
          { id: "demo-read", sha256: read.sha256, roles: ["read"] },
          { id: "demo-admin", sha256: admin.sha256, roles: ["read", "admin"] },
        ],
      },
    ],
    [{ id: "dev-shipper", sha256: service.sha256 }],
  );
  const files = {
    bot: join(dataDir, "bot.key"),
    read: join(dataDir, "read.key"),
    admin: join(dataDir, "admin.key"),
    service: join(dataDir, "service.key"),
  };
  const keys = { bot: bot.key, read: read.key, admin: admin.key, service: service.key };
  for (const name of Object.keys(files) as Array<keyof DevKeys>) {
    writeFileSync(files[name], `${keys[name]}\n`, { mode: 0o600 });
  }
  return { ...keys, files };
}

/** The demo tenant's key-encryption key: generated once and kept, or earlier archives would not decrypt. */
function ensureKek(kekDir: string): void {
  mkdirSync(kekDir, { recursive: true, mode: 0o700 });
  const path = join(kekDir, "demo");
  if (!existsSync(path)) writeFileSync(path, `${randomBytes(32).toString("base64")}\n`, { mode: 0o600 });
}

/** A path as a newcomer would type it: relative to the working directory when inside it. */
function displayPath(path: string): string {
  const rel = relative(process.cwd(), path);
  return rel !== "" && !rel.startsWith("..") && !rel.startsWith(sep) ? rel : path;
}

/** `sessiontrack dev` */
export async function runDev(argv: readonly string[]): Promise<number> {
  const args = parseCommandArgs(
    argv,
    {
      "data-dir": { type: "string", default: ".sessiontrack/dev" },
      listen: { type: "string", default: "127.0.0.1:7070" },
      "index-listen": { type: "string", default: "127.0.0.1:7071" },
      "archive-listen": { type: "string", default: "127.0.0.1:7072" },
      "metrics-listen": { type: "string", default: "127.0.0.1:9464" },
      "log-level": { type: "string", default: "warn" },
      "exit-after-demo": { type: "boolean", default: false },
      help: { type: "boolean", short: "h" },
    },
    USAGE,
  );
  if (args.booleans["help"] === true) {
    console.log(USAGE);
    return 0;
  }
  const dataDir = resolve(args.flags["data-dir"] ?? ".sessiontrack/dev");
  mkdirSync(dataDir, { recursive: true });
  const keys = writeKeys(dataDir);
  const tenantsFile = join(dataDir, "tenants.json");
  const captureConfigFile = join(dataDir, "capture.yaml");
  if (!existsSync(captureConfigFile)) writeFileSync(captureConfigFile, CAPTURE_CONFIG);
  const kekDir = join(dataDir, "keks");
  ensureKek(kekDir);

  const metricsListen = args.flags["metrics-listen"]!;
  const metrics = parseHostPort(metricsListen, "metrics-listen");
  const sideMetrics = (port: number): string => `${metrics.host}:${metrics.port === 0 ? 0 : port}`;
  const logLevel = args.flags["log-level"];
  const indexConfig = loadIndexConfig({
    tenants: tenantsFile,
    backend: "sqlite",
    "data-dir": join(dataDir, "index"),
    listen: args.flags["index-listen"],
    "metrics-listen": sideMetrics(9465),
    "log-level": logLevel,
  });
  const archiveConfig = loadArchiveConfig({
    tenants: tenantsFile,
    store: "local",
    "data-dir": join(dataDir, "archive"),
    "kek-dir": kekDir,
    listen: args.flags["archive-listen"],
    "metrics-listen": sideMetrics(9466),
    "log-level": logLevel,
  });
  const logger = createLogger({ name: "sessiontrack-dev", level: indexConfig.logLevel });
  const stops: Array<() => Promise<void>> = [];
  try {
    const index = await startIndexServer(indexConfig, logger.child({ component: "index" }));
    stops.unshift(() => index.close());
    const archive = await startArchiveServer(archiveConfig, logger.child({ component: "archive" }));
    stops.unshift(() => archive.close());
    const ingestConfig = loadIngestConfig({
      "data-dir": join(dataDir, "ingest"),
      tenants: tenantsFile,
      "capture-config": captureConfigFile,
      listen: args.flags["listen"],
      "metrics-listen": metricsListen,
      "log-level": logLevel,
      "archive-url": archive.address,
      "index-url": index.address,
      "service-key-file": keys.files.service,
      "shutdown-grace-ms": "5000",
    });
    const ingest = await startIngestServer(ingestConfig, logger.child({ component: "ingest" }));
    stops.unshift(() => ingest.close());

    const readKeyFile = displayPath(keys.files.read);
    const defaultIndex = index.address === "127.0.0.1:7071";
    const indexFlag = defaultIndex ? "" : ` --index-url ${index.address}`;
    const archiveFlag = archive.address === "127.0.0.1:7072" ? "" : ` --archive-url ${archive.address}`;
    console.log(`SessionTrack dev stack
  ingest   grpc://${ingest.address}   (health + reflection: grpcurl -plaintext ${ingest.address} list)
  index    grpc://${index.address}   (SQLite FTS5 in ${displayPath(join(dataDir, "index"))})
  archive  grpc://${archive.address}   (encrypted objects in ${displayPath(join(dataDir, "archive"))})
  metrics  http://${ingest.metricsAddress}/metrics  http://${index.metricsAddress}/metrics  http://${archive.metricsAddress}/metrics
  data     ${dataDir}
  tenant   demo
  api key  ${keys.bot}   (role ingest; also in ${displayPath(keys.files.bot)})
  keys     read: ${readKeyFile}   admin: ${displayPath(keys.files.admin)}   service: ${displayPath(keys.files.service)}
`);
    const runId = new Date()
      .toISOString()
      .replace(/[-:.TZ]/g, "")
      .slice(0, 14);
    const client = new SessionTrackClient({
      target: ingest.address,
      apiKey: keys.bot,
      botId: "demo-support-bot",
      spoolDir: join(dataDir, "spool"),
    });
    const sessionIds = runDemoBot(client, runId);
    await client.close(10_000);
    const stats = client.stats();
    console.log(
      `Demo bot captured ${stats.captured} events in ${sessionIds.length} sessions; ${stats.acked} acknowledged (durable), ${stats.spooled} spooled, ${stats.dropped} dropped.\n`,
    );

    const indexClient = new IndexServiceClient(
      index.address,
      grpc.credentials.createInsecure(),
      CLIENT_OPTIONS,
    );
    const archiveClient = new ArchiveServiceClient(
      archive.address,
      grpc.credentials.createInsecure(),
      CLIENT_OPTIONS,
    );
    let searchable = false;
    try {
      const search = (request: Partial<SearchRequest>): Promise<SearchResponse> =>
        call<SearchResponse>(
          "index",
          index.address,
          (metadata, options, callback) =>
            indexClient.search(SearchRequest.fromPartial(request), metadata, options, callback),
          bearer(keys.read),
        );
      const started = Date.now();
      // Both sinks confirm everything acknowledged (the archive can trail the index by a batch).
      await ingest.shipper?.waitForShipped(ingest.wal.lastDurableLsn(), 15_000);
      let visible = 0;
      while (Date.now() - started < 15_000) {
        visible = (await search({ sessionIds, pageSize: 100 })).totalHits;
        if (visible >= stats.acked) break;
        await new Promise((resolveWait) => setTimeout(resolveWait, 50));
      }
      searchable = visible >= stats.acked;
      console.log(
        searchable
          ? `All ${visible} events are archived and searchable ${Date.now() - started} ms after the last acknowledgement.\n`
          : `Only ${visible} of ${stats.acked} events became searchable within 15 s; see the shipper metrics.\n`,
      );

      console.log("Stored (read back from the archive and the index):");
      const transcripts: string[] = [];
      for (const sessionId of sessionIds) {
        const archived = await call<ArchiveServiceGetSessionResponse>(
          "archive",
          archive.address,
          (metadata, options, callback) =>
            archiveClient.getSession({ sessionId }, metadata, options, callback),
          bearer(keys.read),
        );
        const indexed = await search({ sessionIds: [sessionId], pageSize: 1 });
        console.log(
          `  ${sessionId}  tenant=demo  events=${archived.events.length}  (archive: ${archived.events.length}, index: ${indexed.totalHits})`,
        );
        transcripts.push(renderTranscript(archived.events));
      }
      console.log(
        `\nTranscript of the first session (npx sessiontrack session get ${sessionIds[0]} --api-key-file ${readKeyFile}${archiveFlag}):`,
      );
      console.log(`${transcripts[0]}\n`);

      const query = "refund";
      console.log(`More to try:
  npx sessiontrack search "munich" --model gpt-4o --api-key-file ${readKeyFile}${indexFlag}
  npx sessiontrack erase --user user-3150 --api-key-file ${displayPath(keys.files.admin)}${ingest.address === "127.0.0.1:7070" ? "" : ` --ingest-url ${ingest.address}`}
  npx sessiontrack wal dump --data-dir ${displayPath(ingestConfig.dataDir)} | head
  curl -s http://${ingest.metricsAddress}/metrics | grep sessiontrack_shipper
  edit ${displayPath(captureConfigFile)} (enabled: false) to flip the capture kill switch
`);
      console.log(
        `Search it yourself:\n  npx sessiontrack search "${query}" --api-key-file ${readKeyFile}${indexFlag}\n`,
      );
      // Exactly what the command above prints (earlier runs' sessions included).
      printResults(query, await search({ query, highlightPreTag: "«", highlightPostTag: "»" }));
    } finally {
      indexClient.close();
      archiveClient.close();
    }
    if (args.booleans["exit-after-demo"] === true)
      return stats.acked === stats.captured && searchable ? 0 : 1;
    console.log("Serving; press Ctrl-C to stop.");
    await waitForShutdownSignal();
    return 0;
  } finally {
    for (const stop of stops) await stop();
  }
}
