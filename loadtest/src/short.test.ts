// `make test` runs the SHORT load test (about 100 s on 2 cores) against the real stack and
// real k6, and asserts zero failed requests, 100% capture accuracy, every fault's backlog
// delivered, and the p95 latency half of the under-5% budget. The CPU half is NOT met today
// (capture adds ~10–15% CPU per request to this lean bot; see loadtest/README.md): `make
// loadtest` still enforces 5% and fails on it, while this test holds CPU to a regression
// guard so the SDK cannot get worse unnoticed. The figures are in loadtest/results/<timestamp>/.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

const RUN = join(dirname(fileURLToPath(import.meta.url)), "run.js");

/**
 * Not the budget (5%, which `make loadtest` enforces): the bound CPU overhead must stay under
 * in `make test` until the SDK meets the budget. It was 45–48% before the SDK's batching and
 * encoding work, 17–23% with 200 ms batches, and is ~10–15% with 1 s batches (40 s windows
 * vary by ±4 points), so a return to an earlier cost fails here.
 */
const CPU_REGRESSION_GUARD_PCT = 25;

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
  "short load test: no failed request, no lost event, p95 within 5%, CPU overhead under its regression guard",
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
    t.diagnostic(
      `steady load: p95 ${summary.overhead.p95_pct}%, CPU/request ${summary.overhead.cpu_pct}% (budget 5%); ` +
        `runner exit ${String(code)}; violations: ${summary.violations.join("; ") || "none"}`,
    );
    assert.equal(summary.errors, 0, `failed requests\n${context}`);
    assert.equal(summary.capture_accuracy.of_acked, 1, `acknowledged events missing\n${context}`);
    assert.ok(summary.capture_accuracy.of_attempted >= 0.999, `attempted events missing\n${context}`);
    for (const mode of summary.degraded.filter((d) => d.measured)) {
      assert.equal(mode.drain_complete, true, `${mode.mode}: backlog not delivered\n${context}`);
    }
    assert.ok(summary.overhead.p95_pct <= 5, `p95 overhead ${summary.overhead.p95_pct}%\n${context}`);
    assert.ok(
      summary.overhead.cpu_pct <= CPU_REGRESSION_GUARD_PCT,
      `CPU/request overhead ${summary.overhead.cpu_pct}% is past the ${CPU_REGRESSION_GUARD_PCT}% regression guard\n${context}`,
    );
    // Whatever the runner says beyond the budget itself (a crash, a missing k6) still fails.
    const unexplained = summary.violations.filter(
      (v) => !/capture adds [\d.]+% to (CPU per request|p95 latency)/.test(v),
    );
    assert.deepEqual(unexplained, [], context);
  },
);
