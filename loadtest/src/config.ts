// The load test's settings: command-line flags and the few environment variables it honours.
// Only this file reads process.env.
import { existsSync } from "node:fs";
import { ToolMissingError, toolPath } from "@sessiontrack/testkit";
import { parseArgs } from "node:util";
import { perfUnavailable } from "./perf-profile.js";
import { isSdkThread, sdkThreadError, type SdkThread } from "./sdk-thread.js";

/** How long and how hard each phase runs. */
export interface LoadProfile {
  name: "short" | "full";
  /** Requests per second sent to EACH bot variant. */
  botRate: number;
  warmupSeconds: number;
  overheadSeconds: number;
  /** Also drive a second capture-off bot in every phase (A/A: the method's noise floor). */
  twin: boolean;
  degradedSeconds: number;
  /** ingest.js: Stream iterations per second (each writes `streamBatches` batches). */
  ingestSeconds: number;
  ingestStreamRate: number;
  ingestAppendRate: number;
  /** Extra ack delay the slow-ingest mode injects, ms. */
  slowAckMs: number;
  /** Events timed from ack to searchable (one at a time), when the index runs. */
  freshnessProbes: number;
}

export const PROFILES: Readonly<Record<"short" | "full", LoadProfile>> = Object.freeze({
  // About 2 minutes on the 2-core machine (2.5 when it is busy), so it runs inside `make test`.
  short: {
    name: "short",
    botRate: 40,
    warmupSeconds: 5,
    overheadSeconds: 40,
    twin: false,
    degradedSeconds: 12,
    ingestSeconds: 8,
    ingestStreamRate: 4,
    ingestAppendRate: 10,
    slowAckMs: 200,
    freshnessProbes: 20,
  },
  full: {
    name: "full",
    botRate: 60,
    warmupSeconds: 15,
    overheadSeconds: 300,
    twin: true,
    degradedSeconds: 60,
    ingestSeconds: 60,
    // ~2500 events/s: a paced load ingest (and k6's own JS, which builds every event) holds
    // on 2 cores with shipping on; 5000/s saturated it (ack p50 0.8 s) in a first full run.
    ingestStreamRate: 4,
    ingestAppendRate: 10,
    slowAckMs: 200,
    freshnessProbes: 100,
  },
});

/** Everything the runner needs, parsed once. */
export interface RunConfig {
  profile: LoadProfile;
  /** Where results go (loadtest/results/<timestamp> unless --out is given). */
  outDir: string | undefined;
  k6Path: string;
  /** SDK options for the capturing bot, as bot flags (default: none, the SDK's defaults). */
  sdkFlags: string[];
  /** `--perf`: sample the bots with Linux perf in each overhead phase (see perf-profile.ts). */
  perf: boolean;
}

/** Where `make tools` put k6 (testkit's toolPath: $SESSIONTRACK_TOOLS_CACHE/bin/k6 or ~/.cache/…), or $K6_BIN. */
export function locateK6(env: NodeJS.ProcessEnv = process.env): string {
  const explicit = env["K6_BIN"];
  if (explicit !== undefined && explicit !== "") {
    if (!existsSync(explicit)) throw new Error(`K6_BIN=${explicit} does not exist`);
    return explicit;
  }
  try {
    return toolPath("k6", env);
  } catch (err) {
    if (err instanceof ToolMissingError) {
      throw new Error(
        `${err.message} (run \`make tools\`: it builds the pinned k6, ~5 minutes cold; or set K6_BIN)`,
        {
          cause: err,
        },
      );
    }
    throw err;
  }
}

/** Whether `make tools` built MinIO (the archive then runs on S3, and MinIO can be taken down). */
export function minioAvailable(env: NodeJS.ProcessEnv = process.env): boolean {
  try {
    toolPath("minio", env);
    return true;
  } catch {
    return false;
  }
}

/** Where the capturing bot's SDK delivers under these bot flags: the bot's default is its own (main) thread. */
export function sdkThreadOf(sdkFlags: readonly string[]): SdkThread {
  const at = sdkFlags.indexOf("--sdk-thread");
  const given = at >= 0 ? sdkFlags[at + 1] : undefined;
  return isSdkThread(given) ? given : "main";
}

/** Parses `[--short|--full] [--out DIR] [--sdk-… SDK settings] [--perf]`; throws naming the bad flag. */
export function loadRunConfig(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): RunConfig {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      short: { type: "boolean", default: false },
      full: { type: "boolean", default: false },
      out: { type: "string" },
      "sdk-flush-interval-ms": { type: "string" },
      "sdk-batch-max-events": { type: "string" },
      "sdk-thread": { type: "string" },
      perf: { type: "boolean", default: false },
    },
    strict: true,
  });
  if (values.short && values.full) throw new Error("--short and --full exclude each other");
  const profile = values.short ? PROFILES.short : PROFILES.full;
  const sdkFlags: string[] = [];
  for (const name of ["flush-interval-ms", "batch-max-events"] as const) {
    const value = values[`sdk-${name}`];
    if (value === undefined) continue;
    if (!/^[1-9][0-9]*$/.test(value))
      throw new Error(`--sdk-${name} must be a positive integer, got "${value}"`);
    sdkFlags.push(`--${name}`, value);
  }
  const thread = values["sdk-thread"];
  if (thread !== undefined) {
    if (!isSdkThread(thread)) throw new Error(sdkThreadError(thread));
    sdkFlags.push("--sdk-thread", thread);
  }
  if (values.perf) {
    const why = perfUnavailable();
    if (why !== undefined) throw new Error(why);
  }
  return { profile, outDir: values.out, k6Path: locateK6(env), sdkFlags, perf: values.perf };
}
