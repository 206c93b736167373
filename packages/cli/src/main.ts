import { ConfigError, SessionTrackError } from "@sessiontrack/errors";

import { UsageError } from "./args.js";
import { RemoteCallError } from "./remote.js";

const USAGE = `sessiontrack — session storage for AI bots

Usage:
  sessiontrack dev [--data-dir DIR] [--exit-after-demo]
      Start the embedded stack (ingest + index + archive on local disk), run a demo bot
      against it, show what was stored and searchable, and keep serving.
  sessiontrack ingest serve --data-dir DIR --tenants FILE [--archive-url ADDR --index-url ADDR --service-key-file FILE]
      Run the ingest gRPC service (and its shipper to archive and index).
  sessiontrack index serve --tenants FILE --data-dir DIR
      Run the index gRPC service (SQLite FTS5, or --backend meilisearch).
  sessiontrack archive serve --tenants FILE --kek-dir DIR --data-dir DIR | --store s3 ...
      Run the archive gRPC service (local directory, or S3/MinIO).
  sessiontrack search "<query>" [--bot ID] [--user ID] [--model NAME] [--since T] [--until T] [--limit N] [--json]
      Search the sessions of your tenant.
  sessiontrack session get <session-id> [--from archive|index] [--json]
      Print a session's transcript.
  sessiontrack erase --user ID | --session ID
      Erase an end user's sessions (or one session) everywhere and print the receipt.
  sessiontrack index rebuild [--tenant NAME]
      Restore the index from the archive.
  sessiontrack wal dump --data-dir DIR
      Print every event stored in an ingest write-ahead log as one NDJSON line.
  sessiontrack keys generate [--tenant NAME] [--roles ingest,read]
      Print a new API key and the tenants-file entry that grants it.

Client commands reach the services at their default ports (ingest 7070, index 7071,
archive 7072) unless --ingest-url/--index-url/--archive-url say otherwise, and present
the API key from --api-key-file or SESSIONTRACK_API_KEY.

Run any command with --help for its options.`;

type Command = (argv: readonly string[]) => Promise<number> | number;

/** Commands load on demand, so a quick command does not pay for the servers' modules. */
const lazy =
  <Name extends string>(load: () => Promise<Record<Name, Command>>, name: Name): Command =>
  async (argv) =>
    (await load())[name](argv);

const COMMANDS: Record<string, Command> = {
  dev: lazy(() => import("./commands/dev.js"), "runDev"),
  "ingest serve": lazy(() => import("./commands/ingest-serve.js"), "runIngestServe"),
  "index serve": lazy(() => import("./commands/index-serve.js"), "runIndexServe"),
  "archive serve": lazy(() => import("./commands/archive-serve.js"), "runArchiveServe"),
  "index rebuild": lazy(() => import("./commands/index-rebuild.js"), "runIndexRebuild"),
  search: lazy(() => import("./commands/search.js"), "runSearch"),
  "session get": lazy(() => import("./commands/session-get.js"), "runSessionGet"),
  erase: lazy(() => import("./commands/erase.js"), "runErase"),
  "wal dump": lazy(() => import("./commands/wal-dump.js"), "runWalDump"),
  "keys generate": lazy(() => import("./commands/keys.js"), "runKeysGenerate"),
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
  if (err instanceof RemoteCallError) {
    console.error(`sessiontrack: ${err.code}: ${err.message}`);
    return 1;
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
