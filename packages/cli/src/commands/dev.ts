import { mkdirSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";

import { SessionTrackClient } from "@sessiontrack/client";
import { generateApiKey, loadIngestConfig, startIngestServer, writeTenantsFile } from "@sessiontrack/ingest";
import { StoredEvent } from "@sessiontrack/proto";
import { createLogger } from "@sessiontrack/runtime";
import { scanWal } from "@sessiontrack/wal";

import { parseCommandArgs } from "../args.js";
import { runDemoBot } from "../demo-bot.js";
import { waitForShutdownSignal } from "../signals.js";
import { walDirOf } from "./wal-dump.js";

const USAGE = `Usage: sessiontrack dev [options]

Runs the embedded stack on local disk (ingest with its write-ahead log; no cluster and
no object store needed), creates a demo tenant and prints its API key, plays a demo
bot's sessions through the capture SDK, shows what was stored, and keeps serving
until Ctrl-C.

  --data-dir DIR              state directory (default ./.sessiontrack/dev)
  --listen HOST:PORT          ingest gRPC address (default 127.0.0.1:7070)
  --metrics-listen HOST:PORT  metrics address (default 127.0.0.1:9464)
  --log-level LEVEL           service log level (default warn, to keep the demo readable)
  --exit-after-demo           stop after the demo instead of serving`;

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

/** `sessiontrack dev` */
export async function runDev(argv: readonly string[]): Promise<number> {
  const args = parseCommandArgs(
    argv,
    {
      "data-dir": { type: "string", default: ".sessiontrack/dev" },
      listen: { type: "string", default: "127.0.0.1:7070" },
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

  const { key, sha256 } = generateApiKey();
  const tenantsFile = join(dataDir, "tenants.json");
  writeTenantsFile(tenantsFile, [
    { name: "demo", keys: [{ id: "demo-key", sha256, roles: ["ingest", "read", "admin"] }] },
  ]);
  const captureConfigFile = join(dataDir, "capture.yaml");
  writeFileSync(captureConfigFile, CAPTURE_CONFIG);

  const config = loadIngestConfig({
    "data-dir": join(dataDir, "ingest"),
    tenants: tenantsFile,
    "capture-config": captureConfigFile,
    listen: args.flags["listen"],
    "metrics-listen": args.flags["metrics-listen"],
    "log-level": args.flags["log-level"],
  });
  const logger = createLogger({ name: "sessiontrack-dev", level: config.logLevel });
  const ingest = await startIngestServer(config, logger.child({ component: "ingest" }));
  try {
    console.log(`SessionTrack dev stack
  ingest   grpc://${ingest.address}   (health + reflection: grpcurl -plaintext ${ingest.address} list)
  metrics  http://${ingest.metricsAddress}/metrics
  data     ${dataDir}
  tenant   demo
  api key  ${key}
`);
    const runId = new Date()
      .toISOString()
      .replace(/[-:.TZ]/g, "")
      .slice(0, 14);
    const client = new SessionTrackClient({
      target: ingest.address,
      apiKey: key,
      botId: "demo-support-bot",
      spoolDir: join(dataDir, "spool"),
    });
    const sessionIds = runDemoBot(client, runId);
    await client.close(10_000);
    const stats = client.stats();
    console.log(
      `Demo bot captured ${stats.captured} events in ${sessionIds.length} sessions; ${stats.acked} acknowledged (durable), ${stats.spooled} spooled, ${stats.dropped} dropped.\n`,
    );
    await printStoredSessions(walDirOf(config.dataDir), new Set(sessionIds));
    console.log(`Try:
  npx sessiontrack wal dump --data-dir ${config.dataDir} | head
  curl -s http://${ingest.metricsAddress}/metrics | grep sessiontrack_
  edit ${captureConfigFile} (enabled: false) to flip the capture kill switch
`);
    if (args.booleans["exit-after-demo"] === true) return stats.acked === stats.captured ? 0 : 1;
    console.log("Serving; press Ctrl-C to stop.");
    await waitForShutdownSignal();
    return 0;
  } finally {
    await ingest.close();
  }
}

async function printStoredSessions(walDir: string, demoSessions: ReadonlySet<string>): Promise<void> {
  const perSession = new Map<string, { events: number; tenant: string }>();
  for await (const entry of scanWal(walDir)) {
    if (!entry.checksumOk || entry.data === null) continue;
    const stored = StoredEvent.decode(entry.data);
    if (!demoSessions.has(stored.sessionId)) continue;
    const row = perSession.get(stored.sessionId) ?? { events: 0, tenant: stored.tenant };
    row.events += 1;
    perSession.set(stored.sessionId, row);
  }
  console.log("Stored in the write-ahead log (read back from disk):");
  for (const [sessionId, row] of perSession) {
    console.log(`  ${sessionId}  tenant=${row.tenant}  events=${row.events}`);
  }
  console.log("");
}
