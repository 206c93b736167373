/**
 * Per-sink delivery cursors: one small JSON file per sink, replaced atomically
 * (write tmp, fsync, rename, fsync the directory) so a crash leaves the old or the new
 * cursor, never a torn one.
 */
import { join } from "node:path";
import { ConfigError, DataCorruptionError } from "@sessiontrack/errors";
import { errorCode, writeFully, type WalFileSystem } from "./fs.js";
import type { WalLogger } from "./types.js";

const SINK_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/;
const CURSOR_FORMAT_VERSION = 1;

/** Path of the cursor file of `sink` in `dir`. */
export function cursorFilePath(dir: string, sink: string): string {
  return join(dir, `cursor-${sink}.json`);
}

/** Checks sink names once at open: they become file names. */
export function validateSinkNames(sinks: readonly string[]): void {
  const seen = new Set<string>();
  for (const sink of sinks) {
    if (!SINK_NAME_PATTERN.test(sink)) {
      throw new ConfigError(
        `wal sinks: "${sink}" is not a valid sink name (letters, digits, '_' and '-', at most 64 characters)`,
      );
    }
    if (seen.has(sink)) throw new ConfigError(`wal sinks: "${sink}" is listed twice`);
    seen.add(sink);
  }
}

/** Reads every sink's cursor (missing = 0), clamping any cursor above `lastLsn`. */
export async function loadCursors(
  dir: string,
  fs: WalFileSystem,
  sinks: readonly string[],
  lastLsn: number,
  logger: WalLogger,
): Promise<Map<string, number>> {
  const cursors = new Map<string, number>();
  for (const sink of sinks) {
    const path = cursorFilePath(dir, sink);
    let text: string;
    try {
      text = (await fs.readFile(path)).toString("utf8");
    } catch (error) {
      if (errorCode(error) !== "ENOENT") throw error;
      cursors.set(sink, 0);
      continue;
    }
    const lsn = parseCursor(text, sink, path);
    if (lsn > lastLsn) {
      logger.warn(
        { sink, cursor: lsn, lastLsn, path },
        `wal: cursor of sink ${sink} (${lsn}) is beyond the last lsn in the log (${lastLsn}); clamped`,
      );
      cursors.set(sink, lastLsn);
    } else {
      cursors.set(sink, lsn);
    }
  }
  return cursors;
}

function parseCursor(text: string, sink: string, path: string): number {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new DataCorruptionError(`wal cursor file ${path} is not valid JSON`, { cause: error });
  }
  const record = parsed as { version?: unknown; sink?: unknown; lsn?: unknown } | null;
  if (
    record === null ||
    typeof record !== "object" ||
    record.version !== CURSOR_FORMAT_VERSION ||
    record.sink !== sink ||
    typeof record.lsn !== "number" ||
    !Number.isSafeInteger(record.lsn) ||
    record.lsn < 0
  ) {
    throw new DataCorruptionError(`wal cursor file ${path} does not hold a cursor of sink ${sink}: ${text}`);
  }
  return record.lsn;
}

/** Durably replaces the cursor file of `sink` with `lsn`. */
export async function persistCursor(
  dir: string,
  fs: WalFileSystem,
  sink: string,
  lsn: number,
): Promise<void> {
  const path = cursorFilePath(dir, sink);
  const tmpPath = `${path}.tmp`;
  const body = Buffer.from(`${JSON.stringify({ version: CURSOR_FORMAT_VERSION, sink, lsn })}\n`, "utf8");
  const handle = await fs.open(tmpPath, "w");
  try {
    await writeFully(handle, body, 0);
    await handle.sync();
  } finally {
    await handle.close();
  }
  await fs.rename(tmpPath, path);
  await fs.fsyncDir(dir);
}
