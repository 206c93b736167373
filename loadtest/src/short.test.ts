// `make test` runs the SHORT load test (about 100 s on 2 cores) against the real stack and
// real k6, and asserts the under-5% overhead budget, zero failed requests and 100% capture
// accuracy. The figures are in loadtest/results/<timestamp>/ (the run prints where).
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

const RUN = join(dirname(fileURLToPath(import.meta.url)), "run.js");

interface Summary {
  passed: boolean;
  violations: string[];
  target_misses: string[];
  errors: number;
  overhead: { p95_pct: number; cpu_pct: number };
  capture_accuracy: { of_acked: number; of_attempted: number };
  degraded: {
    mode: string;
    measured: boolean;
    p95_pct?: number;
    cpu_pct?: number;
    drain_complete?: boolean;
  }[];
}

test(
  "short load test: capture stays within the 5% overhead budget and loses nothing",
  { timeout: 180_000 },
  async (t) => {
    // Results go to loadtest/results/<timestamp>/ like any run (and `latest` points there).
    const child = spawn(process.execPath, [RUN, "--short"], { stdio: ["ignore", "pipe", "pipe"] });
    // On a timeout the runner gets SIGTERM and takes its stack down.
    t.after(() => {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
    });
    let output = "";
    child.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => (output += chunk.toString()));
    const code = await new Promise<number | null>((resolve) => child.once("exit", resolve));
    const outDir = /results in (\S+)/.exec(output)?.[1] ?? "(no results dir printed)";
    let summary: Summary;
    try {
      summary = JSON.parse(readFileSync(join(outDir, "summary.json"), "utf8")) as Summary;
    } catch {
      assert.fail(`the load test wrote no summary.json (exit ${String(code)}):\n${output}`);
    }
    const context = `${output}\nresults: ${outDir}`;
    assert.equal(summary.errors, 0, `failed requests\n${context}`);
    assert.equal(summary.capture_accuracy.of_acked, 1, `acknowledged events missing\n${context}`);
    assert.ok(summary.capture_accuracy.of_attempted >= 0.999, `attempted events missing\n${context}`);
    for (const mode of summary.degraded.filter((d) => d.measured)) {
      assert.equal(mode.drain_complete, true, `${mode.mode}: backlog not delivered\n${context}`);
    }
    assert.ok(summary.overhead.p95_pct <= 5, `p95 overhead ${summary.overhead.p95_pct}%\n${context}`);
    assert.ok(summary.overhead.cpu_pct <= 5, `CPU/request overhead ${summary.overhead.cpu_pct}%\n${context}`);
    assert.deepEqual(summary.violations, [], context);
    assert.equal(summary.passed, true);
    assert.equal(code, 0, context);
  },
);
