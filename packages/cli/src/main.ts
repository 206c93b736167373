import { ConfigError, SessionTrackError } from "@sessiontrack/errors";

import { UsageError } from "./args.js";
import { runDev } from "./commands/dev.js";
import { runIngestServe } from "./commands/ingest-serve.js";
import { runKeysGenerate } from "./commands/keys.js";
import { runWalDump } from "./commands/wal-dump.js";

const USAGE = `sessiontrack — session storage for AI bots

Usage:
  sessiontrack dev [--data-dir DIR] [--listen HOST:PORT] [--metrics-listen HOST:PORT] [--exit-after-demo]
      Start the embedded stack on local disk, run a demo bot against it, and keep serving.
  sessiontrack ingest serve --data-dir DIR --tenants FILE [--listen HOST:PORT] [--metrics-listen HOST:PORT]
                            [--capture-config FILE] [--max-batch-events N] [--max-batch-bytes N] [--log-level LEVEL]
      Run the ingest gRPC service.
  sessiontrack wal dump --data-dir DIR
      Print every event stored in an ingest write-ahead log as one NDJSON line.
  sessiontrack keys generate [--tenant NAME] [--roles ingest,read]
      Print a new API key and the tenants-file entry that grants it.

Run any command with --help for its options.`;

type Command = (argv: readonly string[]) => Promise<number> | number;

const COMMANDS: Record<string, Command> = {
  dev: runDev,
  "ingest serve": runIngestServe,
  "wal dump": runWalDump,
  "keys generate": runKeysGenerate,
};

/** Entry point of the `sessiontrack` binary; returns the process exit code. */
export async function main(argv: readonly string[]): Promise<number> {
  const [first, second] = argv;
  if (first === undefined || first === "--help" || first === "-h" || first === "help") {
    console.log(USAGE);
    return first === undefined ? 2 : 0;
  }
  const twoWord = second === undefined ? undefined : `${first} ${second}`;
  const name = twoWord !== undefined && twoWord in COMMANDS ? twoWord : first;
  const command = COMMANDS[name];
  if (command === undefined) {
    console.error(`sessiontrack: unknown command "${argv.slice(0, 2).join(" ")}"\n\n${USAGE}`);
    return 2;
  }
  const rest = argv.slice(name.split(" ").length);
  try {
    return await command(rest);
  } catch (err) {
    return reportFailure(err);
  }
}

function reportFailure(err: unknown): number {
  if (err instanceof UsageError) {
    console.error(`sessiontrack: ${err.message}\n\n${err.usage}`);
    return 2;
  }
  if (err instanceof ConfigError) {
    console.error(`sessiontrack: configuration error: ${err.message}`);
    return 2;
  }
  if (err instanceof SessionTrackError) {
    console.error(`sessiontrack: ${err.code}: ${err.message}`);
    return 1;
  }
  console.error("sessiontrack: unexpected failure:", err);
  return 1;
}
