// Entry point of the reference bot process:
//   node loadtest/dist/bot/main.js --capture on|off [--target HOST:PORT --api-key-file FILE]
//        [--listen 127.0.0.1:0] [--bot-id NAME] [--spool-dir DIR] [--record-dir DIR] [--sdk-thread main|worker|transport]
// --record-dir: where a capturing bot writes the acknowledged event ids and captured session
// ids it serves on GET /acked-ids and /sessions (default: a temporary directory, removed on exit).
// --sdk-thread: where the SDK delivers: "main" (SessionTrackClient, on the bot's own thread; the
// default), "worker" (WorkerSessionTrackClient) or "transport" (SessionTrackClient with
// transport "worker": only grpc-js in a worker); see loadtest/README.md for what each costs.
// Prints one JSON line {"msg":"bot serving","address":…} once it listens.
import { SessionTrackClient, WorkerSessionTrackClient } from "@sessiontrack/client";
import type { CaptureClient } from "@sessiontrack/client";
import { parseHostPort } from "@sessiontrack/runtime";
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { AddressInfo } from "node:net";
import { parseArgs } from "node:util";

import { ChatBot } from "./chat-bot.js";
import { IdLog } from "./id-log.js";
import { isSdkThread, sdkThreadError } from "../sdk-thread.js";

function fail(message: string): never {
  console.error(`bot: ${message}`);
  process.exit(2);
}

const { values } = parseArgs({
  options: {
    capture: { type: "string" },
    target: { type: "string" },
    "api-key-file": { type: "string" },
    listen: { type: "string", default: "127.0.0.1:0" },
    "bot-id": { type: "string", default: "reference-bot" },
    "spool-dir": { type: "string" },
    "record-dir": { type: "string" },
    "sdk-thread": { type: "string", default: "main" },
    // SDK settings, to study what capture costs under each (defaults: the SDK's own).
    "flush-interval-ms": { type: "string" },
    "batch-max-events": { type: "string" },
    "max-in-flight-batches": { type: "string" },
  },
  strict: true,
});

/** An optional numeric SDK option from its flag. */
function sdkNumber(flag: keyof typeof values, option: string): Record<string, number> {
  const raw = values[flag];
  if (raw === undefined) return {};
  const value = Number(raw);
  if (typeof raw !== "string" || !Number.isFinite(value) || value <= 0)
    fail(`--${flag} must be a positive number`);
  return { [option]: value };
}

if (values.capture !== "on" && values.capture !== "off") fail("--capture must be on or off");
const sdkThread = values["sdk-thread"];
if (!isSdkThread(sdkThread)) fail(sdkThreadError(sdkThread));
let client: CaptureClient | undefined;
// onAck fires only after the first batch is acked, long after the bot below exists.
const ackSink: { bot?: ChatBot } = {};
if (values.capture === "on") {
  if (values.target === undefined) fail("--target HOST:PORT of ingest is required with --capture on");
  if (values["api-key-file"] === undefined) fail("--api-key-file is required with --capture on");
  let apiKey: string;
  try {
    apiKey = readFileSync(values["api-key-file"], "utf8").trim();
  } catch (err) {
    fail(`--api-key-file ${values["api-key-file"]}: ${err instanceof Error ? err.message : String(err)}`);
  }
  const Client = sdkThread === "worker" ? WorkerSessionTrackClient : SessionTrackClient;
  client = new Client({
    ...(sdkThread === "transport" ? { transport: "worker" as const } : {}),
    target: values.target,
    apiKey,
    botId: values["bot-id"],
    ...(values["spool-dir"] === undefined ? {} : { spoolDir: values["spool-dir"] }),
    ...sdkNumber("flush-interval-ms", "flushIntervalMs"),
    ...sdkNumber("batch-max-events", "batchMaxEvents"),
    ...sdkNumber("max-in-flight-batches", "maxInFlightBatches"),
    onAck: (ids) => ackSink.bot?.recordAcked(ids),
    onDrop: ({ count, reason }) => console.error(JSON.stringify({ msg: "capture drop", count, reason })),
  });
}
let records: { acked: IdLog; sessions: IdLog } | undefined;
let ownRecordDir: string | undefined;
if (client !== undefined) {
  const given = values["record-dir"];
  const recordDir = given ?? (ownRecordDir = mkdtempSync(join(tmpdir(), "sessiontrack-bot-records-")));
  try {
    mkdirSync(recordDir, { recursive: true });
    records = {
      acked: new IdLog(join(recordDir, "acked-ids.txt")),
      sessions: new IdLog(join(recordDir, "sessions.txt")),
    };
  } catch (err) {
    fail(`--record-dir ${recordDir}: ${err instanceof Error ? err.message : String(err)}`);
  }
}
const bot = new ChatBot(client, records);
ackSink.bot = bot;

let listen: { host: string; port: number };
try {
  listen = parseHostPort(values.listen, "--listen");
} catch (err) {
  fail(err instanceof Error ? err.message : String(err));
}
const server = bot.createServer();
server.keepAliveTimeout = 60_000;
server.listen(listen.port, listen.host, () => {
  const address = server.address() as AddressInfo;
  console.log(JSON.stringify({ msg: "bot serving", address: `${address.address}:${address.port}` }));
});

let stopping = false;
const stop = (): void => {
  if (stopping) return;
  stopping = true;
  server.close();
  server.closeAllConnections();
  void (client?.close(10_000) ?? Promise.resolve()).then(() => {
    records?.acked.close();
    records?.sessions.close();
    if (ownRecordDir !== undefined) rmSync(ownRecordDir, { recursive: true, force: true });
    process.exit(0);
  });
};
process.once("SIGTERM", stop);
process.once("SIGINT", stop);
