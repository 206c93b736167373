// `node loadtest/dist/run.js [--short|--full] [--out DIR]`: runs the load test against the
// real stack, writes loadtest/results/<timestamp>/ (and the `latest` link), and exits
// non-zero when capture broke the overhead budget or lost an event.
import { mkdirSync, rmSync, symlinkSync } from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

import { killTrackedChildren } from "./children.js";
import { loadRunConfig } from "./config.js";
import { runLoadTest } from "./load-test.js";
import { writeReport } from "./report.js";

const RESULTS = resolve(dirname(fileURLToPath(import.meta.url)), "../results");

async function main(): Promise<number> {
  let config;
  try {
    config = loadRunConfig(process.argv.slice(2));
  } catch (err) {
    console.error(`loadtest: ${err instanceof Error ? err.message : String(err)}`);
    console.error(
      "usage: node loadtest/dist/run.js [--short|--full] [--out DIR] [--sdk-flush-interval-ms N] [--sdk-batch-max-events N] [--sdk-thread main|worker|transport] [--perf]",
    );
    return 2;
  }
  const stamp = new Date().toISOString().replace(/[:.]/g, "-");
  const outDir = config.outDir ?? join(RESULTS, stamp);
  mkdirSync(outDir, { recursive: true });
  console.log(`loadtest: ${config.profile.name} run, results in ${outDir}`);
  const outcome = await runLoadTest({
    profile: config.profile,
    k6Path: config.k6Path,
    outDir,
    sdkFlags: config.sdkFlags,
    perf: config.perf,
  });
  writeReport(outDir, outcome);
  if (config.outDir === undefined) {
    const latest = join(RESULTS, "latest");
    rmSync(latest, { force: true });
    symlinkSync(basename(outDir), latest);
  }
  console.log(
    `loadtest: ${outcome.passed ? "PASSED" : "FAILED"}: p95 +${outcome.overhead.p95Pct.toFixed(2)}%, ` +
      `CPU/request +${outcome.overhead.cpuPct.toFixed(2)}%, capture accuracy ` +
      `${(outcome.accuracy.ofAcked * 100).toFixed(3)}% of acked, ${(outcome.accuracy.ofAttempted * 100).toFixed(3)}% of attempted; report ${join(outDir, "report.md")}`,
  );
  for (const violation of outcome.violations) console.log(`loadtest: violation: ${violation}`);
  for (const miss of outcome.targetMisses) console.log(`loadtest: threshold missed: ${miss}`);
  return outcome.passed && outcome.targetMisses.length === 0 ? 0 : 1;
}

// Interrupted (Ctrl-C, a test's timeout): take every child down with us. testkit stops MinIO
// on these signals by itself.
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => {
    console.error(`loadtest: ${signal}: stopping the stack`);
    killTrackedChildren();
    process.exit(130);
  });
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(`loadtest: failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    process.exit(1);
  },
);
