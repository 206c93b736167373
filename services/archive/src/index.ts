export { loadArchiveConfig, type ArchiveConfig } from "./config.js";
export {
  startArchiveServer,
  openObjectStore,
  type ArchiveServer,
  type ArchiveServerOptions,
} from "./server.js";
export { Archive, type ArchivedEvent, type WriteResult } from "./archive.js";
export { LocalObjectStore, type ObjectInfo, type ObjectStore } from "./object-store.js";
export { S3ObjectStore, type S3StoreOptions, type S3LifecycleRule } from "./s3-store.js";
export { KeyEncryptionKeyDirectory, parseKeyMaterial } from "./keys.js";
export { RetentionPolicies, type RetentionPolicy } from "./policy.js";
export { ArchiveMetrics } from "./metrics.js";
export {
  parseObject,
  openSection,
  type ObjectHeader,
  type SectionHeader,
  type Codec,
} from "./object-format.js";
export { type AuditRecord } from "./erase.js";
export { sweepLocalStore, type SweepResult } from "./tiering.js";
export { compactFragmentedSessions, type CompactionResult } from "./compaction.js";
