/**
 * @sessiontrack/wal — the write-ahead log ingest acknowledges on. See README.md for the
 * on-disk format, the guarantees and the failure behaviour.
 */
export { crc32c } from "./crc32c.js";
export type { WalFileHandle, WalFileSystem } from "./fs.js";
export { nodeFileSystem } from "./fs.js";
export type { ReadLimits } from "./reader.js";
export { scanWal } from "./scan.js";
export type {
  WalAppendResult,
  WalLogger,
  WalOptions,
  WalRecord,
  WalRecordInput,
  WalReplayReport,
  WalScanEntry,
  WalStats,
  WalTruncation,
} from "./types.js";
export { WriteAheadLog } from "./wal.js";
