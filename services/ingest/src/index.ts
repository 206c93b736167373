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
export { CaptureConfigSource, DEFAULT_CAPTURE_CONFIG, parseCaptureConfig } from "./capture-config.js";
