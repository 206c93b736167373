/** WalOptions with defaults applied, checked once at open. */
import { dirname, join, relative, resolve, sep } from "node:path";
import { ConfigError } from "@sessiontrack/errors";
import { validateSinkNames } from "./cursors.js";
import { nodeFileSystem, type WalFileSystem } from "./fs.js";
import type { WalLogger, WalOptions } from "./types.js";

const DEFAULT_SEGMENT_BYTES = 64 * 1024 * 1024;
/** Smallest segment that still holds a header and a record with a short key and payload. */
const MIN_SEGMENT_BYTES = 256;

const silentLogger: WalLogger = { info: () => undefined, warn: () => undefined, error: () => undefined };

/** Every option of an open log, defaults filled in. */
export interface ResolvedWalOptions {
  dir: string;
  segmentBytes: number;
  maxRetainedBytes: number;
  sinks: readonly string[];
  logger: WalLogger;
  fs: WalFileSystem;
}

/** Applies defaults and rejects bad settings with a ConfigError naming them. */
export function resolveWalOptions(options: WalOptions): ResolvedWalOptions {
  const segmentBytes = options.segmentBytes ?? DEFAULT_SEGMENT_BYTES;
  const maxRetainedBytes = options.maxRetainedBytes ?? Infinity;
  const sinks = Object.freeze([...(options.sinks ?? [])]);
  if (typeof options.dir !== "string" || options.dir === "") throw new ConfigError("wal dir must be a path");
  if (!Number.isSafeInteger(segmentBytes) || segmentBytes < MIN_SEGMENT_BYTES || segmentBytes > 2 ** 31) {
    throw new ConfigError(
      `wal segmentBytes must be an integer from ${MIN_SEGMENT_BYTES} to 2^31, got ${segmentBytes}`,
    );
  }
  if (!(maxRetainedBytes > 0)) {
    throw new ConfigError(`wal maxRetainedBytes must be positive, got ${maxRetainedBytes}`);
  }
  validateSinkNames(sinks);
  return {
    dir: options.dir,
    segmentBytes,
    maxRetainedBytes,
    sinks,
    logger: options.logger ?? silentLogger,
    fs: options.fs ?? nodeFileSystem,
  };
}

/** Creates `dir` when missing and fsyncs the parents of what was created, so the path survives a machine crash. */
export async function createDirectoryDurably(dir: string, fs: WalFileSystem): Promise<void> {
  const firstCreated = await fs.mkdirp(dir);
  if (firstCreated === undefined) return;
  const target = resolve(dir);
  for (
    let created = resolve(firstCreated);
    ;
    created = join(created, relative(created, target).split(sep)[0]!)
  ) {
    await fs.fsyncDir(dirname(created));
    if (created === target) return;
  }
}
