import { existsSync } from "node:fs";
import { join } from "node:path";

import { StoredEvent } from "@sessiontrack/proto";
import { scanWal } from "@sessiontrack/wal";

import { parseCommandArgs, UsageError } from "../args.js";

const USAGE = `Usage: sessiontrack wal dump --data-dir DIR

Prints one NDJSON line per record in the ingest write-ahead log under DIR (the
ingest --data-dir, or the WAL directory itself), oldest first:
  {"lsn":..,"event_id":..,"session_id":..,"seq":..,"tenant":..,"received_at":..,
   "redactions":[{"rule":..,"path":..,"action":..,"count":..}],"checksum_ok":true,"segment":..,"offset":..}
A damaged record prints "checksum_ok":false with the reason. Read-only: never changes the log.`;

/** Where ingest keeps its WAL inside a data directory. */
export function walDirOf(dataDir: string): string {
  const nested = join(dataDir, "wal");
  return existsSync(nested) ? nested : dataDir;
}

/** `sessiontrack wal dump` */
export async function runWalDump(argv: readonly string[]): Promise<number> {
  const args = parseCommandArgs(
    argv,
    { "data-dir": { type: "string" }, help: { type: "boolean", short: "h" } },
    USAGE,
  );
  if (args.booleans["help"] === true) {
    console.log(USAGE);
    return 0;
  }
  const dataDir = args.flags["data-dir"];
  if (dataDir === undefined) throw new UsageError("--data-dir is required", USAGE);
  if (!existsSync(dataDir)) throw new UsageError(`--data-dir: ${dataDir} does not exist`, USAGE);

  let bad = 0;
  for await (const entry of scanWal(walDirOf(dataDir))) {
    const line: Record<string, unknown> = { lsn: entry.lsn };
    if (entry.checksumOk && entry.data !== null) {
      const stored = decodeStored(entry.data);
      if (stored instanceof Error) {
        line["checksum_ok"] = true;
        line["error"] = `record is not a StoredEvent: ${stored.message}`;
        bad += 1;
      } else {
        line["event_id"] = stored.eventId;
        line["session_id"] = stored.sessionId;
        line["seq"] = stored.seq;
        line["tenant"] = stored.tenant;
        line["received_at"] = stored.receivedAt?.toISOString() ?? null;
        // What redaction changed (rule, path, action, count), never the original values.
        line["redactions"] = stored.redactions.map(({ rule, path, action, count }) => ({
          rule,
          path,
          action,
          count,
        }));
        line["checksum_ok"] = true;
      }
    } else {
      line["key"] = entry.key;
      line["checksum_ok"] = false;
      line["error"] = entry.error ?? "checksum mismatch";
      bad += 1;
    }
    line["segment"] = entry.segment;
    line["offset"] = entry.offset;
    process.stdout.write(`${JSON.stringify(line)}\n`);
  }
  if (bad > 0) console.error(`sessiontrack wal dump: ${bad} damaged record(s)`);
  return bad > 0 ? 1 : 0;
}

function decodeStored(data: Uint8Array): StoredEvent | Error {
  try {
    return StoredEvent.decode(data);
  } catch (err) {
    return err instanceof Error ? err : new Error(String(err));
  }
}
