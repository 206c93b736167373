import { accessSync, constants } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";

/** The programs `make tools` builds (see tools/README.md). */
export type ToolName = "minio" | "etcd" | "kube-apiserver" | "kubectl" | "helm" | "k6";

/** A pinned tool the tests need has not been built on this machine. */
export class ToolMissingError extends Error {
  readonly tool: string;
  readonly path: string;

  constructor(tool: string, path: string) {
    super(
      `${tool} is not built: expected an executable at ${path}. Run \`make tools\` ` +
        `(needs Go; builds the pinned ${tool} from tools/${tool}/go.mod).`,
    );
    this.name = "ToolMissingError";
    this.tool = tool;
    this.path = path;
  }
}

/**
 * The cache `make tools` builds into: $SESSIONTRACK_TOOLS_CACHE, else
 * ~/.cache/sessiontrack/tools (the same rule as tools/build.sh).
 */
export function toolsCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  const override = env["SESSIONTRACK_TOOLS_CACHE"];
  return override !== undefined && override !== ""
    ? override
    : join(homedir(), ".cache", "sessiontrack", "tools");
}

/**
 * Path of a tool built by `make tools`. Throws {@link ToolMissingError} when it is not
 * there: a test that needs a real server fails loudly rather than skipping.
 */
export function toolPath(name: ToolName | (string & {}), env: NodeJS.ProcessEnv = process.env): string {
  const path = join(toolsCacheDir(env), "bin", name);
  try {
    accessSync(path, constants.X_OK);
  } catch {
    throw new ToolMissingError(name, path);
  }
  return path;
}
