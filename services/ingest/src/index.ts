export { loadIngestConfig, type IngestConfig } from "./config.js";
export { startIngestServer, walDirectory, type IngestServer } from "./server.js";
export {
  generateApiKey,
  hashApiKey,
  TenantDirectory,
  writeTenantsFile,
  type Principal,
  type Role,
  type TenantEntry,
} from "@sessiontrack/runtime";
export {
  CaptureConfigSource,
  captureConfigFor,
  DEFAULT_CAPTURE_CONFIG,
  parseCaptureConfig,
  parseCaptureFile,
  type CaptureFile,
  type TenantCaptureRules,
} from "./capture-config.js";
