/**
 * Test-only helpers that start the real servers SessionTrack's tests run against, from the
 * pinned builds of `make tools`. See README.md.
 */
export { ToolMissingError, toolPath, toolsCacheDir } from "./tools.js";
export type { ToolName } from "./tools.js";
export { freePort, freePorts, runCommand } from "./process.js";
export type { CommandResult, RunCommandOptions } from "./process.js";
export { startMinio } from "./minio.js";
export type { MinioServer, StartMinioOptions } from "./minio.js";
export { startControlPlane } from "./control-plane.js";
export type {
  ControlPlane,
  ControlPlaneUser,
  StartControlPlaneOptions,
  ToolRunOptions,
} from "./control-plane.js";
