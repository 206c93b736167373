// `run.js --perf`: Linux perf samples both bots during each overhead phase, and each sample's
// call stack is put in one of a few buckets, so the report says where the capturing bot's
// extra CPU goes (the SDK's own code, V8's compiler threads, GC, the bot's work, …) instead of
// one percentage. Diagnostic only: the bots run with --perf-basic-prof, which costs both alike.
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, rmSync } from "node:fs";
import { join } from "node:path";

/** Samples per second per bot: low enough to cost little, ~30k samples per bot in a 60 s phase. */
const FREQUENCY_HZ = 499;

/** Where a sample's CPU went, by the first rule its stack (and thread) matches. */
export const PERF_BUCKETS = [
  "V8 compiler threads",
  "garbage collection",
  "SDK and gRPC",
  "bot's own work",
  "HTTP server",
  "other",
] as const;
export type PerfBucket = (typeof PERF_BUCKETS)[number];

/** Samples per bucket for one bot in one phase. */
export type PerfCounts = Record<PerfBucket, number>;

const SDK_FRAME =
  /packages\/client\/dist\/|@grpc\/grpc-js|@sessiontrack\/client|node:internal\/http2|node::http2::|nghttp2/;
const BOT_FRAME = /loadtest\/dist\/bot\//;
const HTTP_FRAME = /node:_http_|llhttp|node::\(anonymous namespace\)::Parser/;
const GC_FRAME =
  /Scaveng|MarkCompact|Heap::CollectGarbage|Heap::PerformGarbageCollection|ConcurrentMarking|Sweeper|MinorMC/;
const COMPILER_FRAME = /compiler::|Compil|Turbofan|Maglev/;

/** The bucket of one sample, from its frames (innermost first) as `perf script` prints them. */
export function bucketOf(frames: readonly string[]): PerfBucket {
  const onWorker = frames.some((frame) => frame.includes("PlatformWorkerThread"));
  if (onWorker && frames.some((frame) => COMPILER_FRAME.test(frame))) return "V8 compiler threads";
  if (frames.some((frame) => GC_FRAME.test(frame))) return "garbage collection";
  if (frames.some((frame) => SDK_FRAME.test(frame))) return "SDK and gRPC";
  if (frames.some((frame) => BOT_FRAME.test(frame))) return "bot's own work";
  if (frames.some((frame) => HTTP_FRAME.test(frame))) return "HTTP server";
  return "other";
}

/** Counts the samples of `perf script -F ip,sym` output (blank-line separated stacks) per bucket. */
export function countPerfScript(text: string): PerfCounts {
  const counts = Object.fromEntries(PERF_BUCKETS.map((bucket) => [bucket, 0])) as PerfCounts;
  for (const block of text.split(/\n\s*\n/)) {
    const frames = block
      .split("\n")
      .map((line) => line.trim())
      .filter((line) => line !== "");
    if (frames.length === 0) continue;
    counts[bucketOf(frames)] += 1;
  }
  return counts;
}

/** Why `--perf` cannot run here, or undefined when `perf` answers. */
export function perfUnavailable(): string | undefined {
  const probe = spawnSync("perf", ["--version"], { encoding: "utf8" });
  if (probe.error !== undefined) return `--perf needs Linux perf on PATH (${probe.error.message})`;
  if (probe.status !== 0)
    return `--perf: \`perf --version\` exited with ${probe.status}: ${probe.stderr.trim()}`;
  return undefined;
}

/** One `perf record` attached to a process until {@link PerfRecording.stop}. */
export class PerfRecording {
  private readonly child: ChildProcess;
  private readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private stderr = "";

  constructor(
    pid: number,
    readonly file: string,
  ) {
    this.child = spawn("perf", ["record", "-F", String(FREQUENCY_HZ), "-g", "-p", String(pid), "-o", file], {
      stdio: ["ignore", "ignore", "pipe"],
    });
    this.child.stderr?.on("data", (chunk: Buffer) => (this.stderr += chunk.toString()));
    this.exited = new Promise((resolveExit) => {
      this.child.once("exit", (code, signal) => resolveExit({ code, signal }));
      this.child.once("error", (err) => {
        this.stderr += err.message;
        resolveExit({ code: null, signal: null });
      });
    });
  }

  /** Stops recording (SIGINT, as Ctrl-C) and counts the samples per bucket. */
  async stop(): Promise<PerfCounts> {
    this.child.kill("SIGINT");
    // perf writes its file and then ends by the signal it was sent.
    const { code, signal } = await this.exited;
    if (code !== 0 && signal !== "SIGINT") {
      throw new Error(
        `perf record ${this.file} exited with ${code ?? signal ?? "an error"}: ${this.stderr.trim()}`,
      );
    }
    const script = spawnSync("perf", ["script", "-i", this.file, "-F", "ip,sym"], {
      encoding: "utf8",
      maxBuffer: 1 << 30,
    });
    if (script.status !== 0)
      throw new Error(`perf script -i ${this.file} exited with ${script.status}: ${script.stderr}`);
    return countPerfScript(script.stdout);
  }
}

/** Starts recording each named process into `<outDir>/perf/<phase>-<name>.data`. */
export function recordPhase(
  outDir: string,
  phase: string,
  pids: Readonly<Record<string, number>>,
): { stop(): Promise<Record<string, PerfCounts>> } {
  const dir = join(outDir, "perf");
  mkdirSync(dir, { recursive: true });
  const recordings = Object.entries(pids).map(
    ([name, pid]) => [name, new PerfRecording(pid, join(dir, `${phase}-${name}.data`))] as const,
  );
  return {
    async stop() {
      const counts = await Promise.all(
        recordings.map(async ([name, rec]) => [name, await rec.stop()] as const),
      );
      return Object.fromEntries(counts);
    },
  };
}

/** Moves each process's `/tmp/perf-<pid>.map` (written by --perf-basic-prof) into `dir`. */
export function keepPerfMaps(
  processes: readonly { child: { pid?: number | undefined } }[],
  dir: string,
): void {
  for (const { child } of processes) {
    const map = `/tmp/perf-${child.pid}.map`;
    if (child.pid === undefined || !existsSync(map)) continue;
    mkdirSync(dir, { recursive: true });
    copyFileSync(map, join(dir, `perf-${child.pid}.map`));
    rmSync(map, { force: true });
  }
}
