import { readdirSync } from "node:fs";
import { fileURLToPath } from "node:url";

/**
 * The repository's `protos/` directory, resolved from this file (dist/protos.js lives
 * at packages/runtime/dist/), for server reflection, which needs the .proto sources.
 */
export const PROTO_DIR = fileURLToPath(new URL("../../../protos/", import.meta.url));

/** The sessiontrack.v1 .proto files, relative to {@link PROTO_DIR}. */
export function sessionTrackProtoFiles(): string[] {
  return readdirSync(new URL("../../../protos/sessiontrack/v1/", import.meta.url))
    .filter((name) => name.endsWith(".proto"))
    .sort()
    .map((name) => `sessiontrack/v1/${name}`);
}
