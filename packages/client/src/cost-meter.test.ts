import assert from "node:assert/strict";
import { test } from "node:test";
import { CAPTURE_SAMPLE_EVERY, CostMeter } from "./cost-meter.js";

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Spends `ms` of this process's CPU time (not wall time: the machine may be busy). */
function burnCpu(ms: number): void {
  const start = process.cpuUsage();
  for (;;) {
    const used = process.cpuUsage(start);
    if (used.user + used.system >= ms * 1000) return;
  }
}

test("a window in which the process barely used CPU yields no overhead report", async () => {
  const meter = new CostMeter();
  for (let i = 0; i < 10; i++) meter.recordCapture(20_000n);
  await sleep(1050);
  assert.equal(meter.recordBackground(process.hrtime.bigint()), true, "the window closed");
  assert.equal(meter.takeOverheadReport(), undefined);
});

test("a busy window reports capture time over the rest of the process's CPU, once, capped at 100%", async () => {
  const meter = new CostMeter();
  burnCpu(150);
  // 10 timed captures of 100 µs stand for 10 × 64 captures: 64 ms of capture.
  for (let i = 0; i < 10; i++) meter.recordCapture(100_000n);
  await sleep(1000);
  assert.equal(meter.recordBackground(process.hrtime.bigint()), true, "the window closed");
  const report = meter.takeOverheadReport();
  assert.ok(report !== undefined, "a report is due");
  const captureMs = (10 * 100_000 * CAPTURE_SAMPLE_EVERY) / 1e6;
  // The process used ≥ 150 ms, so capture's 64 ms is at most 64 / (150 - 64) of the rest.
  assert.ok(report > 0 && report <= (captureMs / (150 - captureMs)) * 100 + 1e-9, `report ${report}`);
  assert.equal(meter.takeOverheadReport(), undefined, "each window is reported once");

  const heavy = new CostMeter();
  burnCpu(60);
  for (let i = 0; i < 10; i++) heavy.recordCapture(1_000_000n); // 640 ms "of capture" > the process's CPU
  await sleep(1000);
  heavy.recordBackground(process.hrtime.bigint());
  assert.equal(heavy.takeOverheadReport(), 100);
});

test("work measured on another thread (a worker client posting) counts in the overhead report", async () => {
  const measure = async (foreignNs: number): Promise<number> => {
    const meter = new CostMeter();
    burnCpu(150);
    for (let i = 0; i < 10; i++) meter.recordCapture(10_000n);
    meter.recordForeignWork(foreignNs);
    await sleep(1000);
    assert.equal(meter.recordBackground(process.hrtime.bigint()), true, "the window closed");
    return meter.takeOverheadReport() ?? Number.NaN;
  };
  const without = await measure(0);
  const withPosting = await measure(40_000_000); // 40 ms of posting
  assert.ok(withPosting > without + 10, `with 40 ms of posting ${withPosting}%, without ${without}%`);
});
