// Runs one k6 script as a child process and reads back the summary its handleSummary wrote.
import { spawn } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

import { trackChild } from "./children.js";

/** The k6 scripts (loadtest/k6). */
export const K6_SCRIPTS = resolve(dirname(fileURLToPath(import.meta.url)), "../k6");

/** One metric of a k6 JSON summary. */
export interface K6Metric {
  type: string;
  contains?: string;
  values: Record<string, number>;
  thresholds?: Record<string, { ok: boolean }>;
}

/** The parts of the k6 end-of-test summary the runner reads. */
export interface K6Summary {
  metrics: Record<string, K6Metric>;
}

/** Outcome of a k6 run. */
export interface K6Result {
  /** 0 = passed, 99 = a threshold was crossed, anything else = k6 failed. */
  exitCode: number;
  summary: K6Summary | undefined;
  summaryPath: string;
  stdout: string;
}

/** Runs `k6 run <script>` with `env` (plus SUMMARY_PATH), logging to `<outDir>/<name>.k6.log`. */
export async function runK6(options: {
  k6Path: string;
  script: string;
  name: string;
  outDir: string;
  env: Record<string, string>;
}): Promise<K6Result> {
  const summaryPath = join(options.outDir, `${options.name}.k6-summary.json`);
  const logPath = join(options.outDir, `${options.name}.k6.log`);
  const child = trackChild(
    spawn(
      options.k6Path,
      ["run", "--quiet", "--no-usage-report", "--address", "", join(K6_SCRIPTS, options.script)],
      {
        stdio: ["ignore", "pipe", "pipe"],
        env: {
          PATH: process.env["PATH"] ?? "",
          HOME: process.env["HOME"] ?? "",
          K6_NO_USAGE_REPORT: "true",
          ...options.env,
          SUMMARY_PATH: summaryPath,
        },
      },
    ),
  );
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  const exitCode = await new Promise<number>((resolveExit, reject) => {
    child.once("error", reject);
    child.once("exit", (code, signal) => resolveExit(code ?? (signal === null ? 1 : 128)));
  });
  writeFileSync(logPath, `${stdout}\n--- stderr ---\n${stderr}`);
  let summary: K6Summary | undefined;
  try {
    summary = JSON.parse(readFileSync(summaryPath, "utf8")) as K6Summary;
  } catch {
    summary = undefined;
  }
  return { exitCode, summary, summaryPath, stdout: stdout.trim() };
}

/** A value of a metric in a summary, or NaN when absent. */
export function metricValue(summary: K6Summary | undefined, metric: string, stat: string): number {
  return summary?.metrics[metric]?.values[stat] ?? Number.NaN;
}
