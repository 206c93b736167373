import assert from "node:assert/strict";
import { test } from "node:test";

import { Registry } from "prom-client";

import { AppendResponse, StreamResponse } from "@sessiontrack/proto";

import { CaptureOverheadReports } from "./capture-overhead.js";
import {
  appendRaw,
  auth,
  encodeBatch,
  encodeEvent,
  openStream,
  startHarness,
  validEvent,
  withExtraField,
} from "./test-harness.js";

/** The value of an unlabelled sample, or of `name{labels}`, in a Prometheus exposition. */
function sample(text: string, name: string): number | undefined {
  const line = text.split("\n").find((entry) => entry.startsWith(`${name} `));
  return line === undefined ? undefined : Number(line.slice(name.length + 1));
}

test("the gauge is the highest live report; 0 is no measurement; reports expire after 60 s; impossible ones are counted", async () => {
  let now = 1_000_000;
  const registry = new Registry();
  const reports = new CaptureOverheadReports(registry, () => now);
  const scrape = () => registry.metrics();

  assert.equal(sample(await scrape(), "sessiontrack_bot_capture_overhead_pct"), 0);
  reports.report("stream 1", 2.5);
  reports.report("stream 2", 7);
  reports.report("stream 3", 0);
  let text = await scrape();
  assert.equal(sample(text, "sessiontrack_bot_capture_overhead_pct"), 7);
  assert.equal(sample(text, "sessiontrack_bot_capture_overhead_reporters"), 2);

  reports.report("stream 2", 1); // its latest replaces its earlier report
  assert.equal(sample(await scrape(), "sessiontrack_bot_capture_overhead_pct"), 2.5);

  now += 40_000;
  reports.report("stream 2", 1.5);
  now += 25_000; // stream 1 is 65 s old, stream 2 25 s
  text = await scrape();
  assert.equal(sample(text, "sessiontrack_bot_capture_overhead_pct"), 1.5);
  assert.equal(sample(text, "sessiontrack_bot_capture_overhead_reporters"), 1);
  now += 60_001;
  text = await scrape();
  assert.equal(sample(text, "sessiontrack_bot_capture_overhead_pct"), 0);
  assert.equal(sample(text, "sessiontrack_bot_capture_overhead_reporters"), 0);

  for (const pct of [Number.NaN, -0.5, Number.NEGATIVE_INFINITY, 1000.5, Number.POSITIVE_INFINITY]) {
    reports.report("stream 9", pct);
  }
  reports.report("stream 9", 1000); // the largest plausible value is kept
  text = await scrape();
  assert.equal(sample(text, 'sessiontrack_bot_capture_overhead_refused_total{reason="not_a_number"}'), 1);
  assert.equal(sample(text, 'sessiontrack_bot_capture_overhead_refused_total{reason="negative"}'), 2);
  assert.equal(sample(text, 'sessiontrack_bot_capture_overhead_refused_total{reason="above_1000"}'), 2);
  assert.equal(sample(text, "sessiontrack_bot_capture_overhead_pct"), 1000);
  assert.equal(sample(text, "sessiontrack_bot_capture_overhead_reported_pct_count"), 5);
});

test("ingest exports the worst bot's overhead from real Stream and Append batches, and never fails a batch over it", async (t) => {
  const h = await startHarness(t);
  const key = auth(`Bearer ${h.ingestKey}`);
  const metrics = async (): Promise<string> =>
    (await fetch(`http://${h.server.metricsAddress}/metrics`)).text();
  const withOverhead = (batch: Buffer, field: number, pct: number): Buffer =>
    withExtraField(batch, (writer) => writer.uint32((field << 3) | 1).double(pct));
  const append = async (body: Buffer): Promise<AppendResponse> => {
    const { error, response } = await appendRaw(h.client, body, key);
    assert.equal(error, null);
    return AppendResponse.decode(response!);
  };
  const event = (): Buffer => encodeEvent(validEvent());

  // A Stream reports 3.5 on its first batch; its next batch carries no measurement.
  const stream = openStream(h.client, key);
  const acks: StreamResponse[] = [];
  const ended = new Promise<void>((resolve) => stream.on("status", () => resolve()));
  stream.on("data", (bytes: Buffer) => acks.push(StreamResponse.decode(bytes)));
  stream.on("error", () => undefined);
  stream.write(withOverhead(encodeBatch([event()], 1), 3, 3.5));
  stream.write(encodeBatch([event()], 2));
  stream.end();
  await ended;
  assert.deepEqual(
    acks.map((ack) => ack.result?.$case),
    ["ack", "ack"],
  );
  let text = await metrics();
  assert.equal(sample(text, "sessiontrack_bot_capture_overhead_pct"), 3.5);
  assert.equal(sample(text, "sessiontrack_bot_capture_overhead_reporters"), 1);

  // An Append connection reporting more becomes the maximum.
  assert.equal((await append(withOverhead(encodeBatch([event()]), 2, 12.25))).accepted, 1);
  text = await metrics();
  assert.equal(sample(text, "sessiontrack_bot_capture_overhead_pct"), 12.25);
  assert.equal(sample(text, "sessiontrack_bot_capture_overhead_reporters"), 2);

  // Impossible reports are refused and counted; their batches are stored all the same.
  for (const pct of [Number.NaN, -1, 5000]) {
    assert.equal((await append(withOverhead(encodeBatch([event()]), 2, pct))).accepted, 1);
  }
  const wrongWireType = withExtraField(encodeBatch([event()]), (writer) => writer.uint32(2 << 3).uint32(7));
  assert.equal((await append(wrongWireType)).accepted, 1);
  text = await metrics();
  assert.equal(sample(text, 'sessiontrack_bot_capture_overhead_refused_total{reason="not_a_number"}'), 2);
  assert.equal(sample(text, 'sessiontrack_bot_capture_overhead_refused_total{reason="negative"}'), 1);
  assert.equal(sample(text, 'sessiontrack_bot_capture_overhead_refused_total{reason="above_1000"}'), 1);
  assert.equal(
    sample(text, "sessiontrack_bot_capture_overhead_pct"),
    12.25,
    "refused reports change nothing",
  );
  assert.equal(sample(text, "sessiontrack_bot_capture_overhead_reported_pct_count"), 2);
  assert.equal(h.server.wal.lastDurableLsn(), 7, "every batch was stored");
});
