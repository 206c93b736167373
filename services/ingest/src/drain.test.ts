import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";

import * as grpc from "@grpc/grpc-js";

import { IngestServiceClient, StreamResponse, type WatchConfigResponse } from "@sessiontrack/proto";

import { drainRequested } from "./drain-signal.js";
import { appendRaw, auth, encodeBatch, encodeEvent, openStream, validEvent } from "./test-harness.js";
import { setUpShippingStack, startShippingIngest, waitUntil } from "./test-sinks.js";

// What the kubelet writes into a downward-API `metadata.annotations` file.
const ANNOTATIONS =
  'kubectl.kubernetes.io/restartedAt="2026-11-25T09:00:00Z"\nsessiontrack.io/template-hash="abc"';
const DRAINING = `${ANNOTATIONS}\nsessiontrack.io/drain="true"`;

test("the drain request is read from a downward-API annotations file", () => {
  assert.equal(drainRequested(DRAINING), true);
  assert.equal(drainRequested(ANNOTATIONS), false);
  assert.equal(drainRequested('sessiontrack.io/drain="false"'), false);
  assert.equal(drainRequested('sessiontrack.io/drain-later="true"'), false, "only the exact key counts");
  assert.equal(drainRequested(""), false);
  assert.equal(drainRequested('sessiontrack.io/drain="tr\\"ue'), false, "a malformed value is not true");
});

const metric = (text: string, name: string, labels = ""): number | undefined => {
  const escaped = `${name}${labels}`.replace(/[{}"]/g, (c) => `\\${c}`);
  const match = new RegExp(`^${escaped} (\\S+)$`, "m").exec(text);
  return match === null ? undefined : Number(match[1]);
};

test("a drain request closes intake and readiness, ships the backlog, and its withdrawal reopens intake", async (t) => {
  const stack = await setUpShippingStack(t);
  const drainFile = join(stack.dir, "annotations");
  writeFileSync(drainFile, ANNOTATIONS);
  stack.index.mode = "unavailable"; // a backlog the drain has to ship
  const { server, client } = await startShippingIngest(t, stack, { "drain-file": drainFile });
  const key = auth(`Bearer ${stack.ingestKey}`);
  const metrics = async () => (await fetch(`http://${server.metricsAddress}/metrics`)).text();
  const readyz = async () => (await fetch(`http://${server.metricsAddress}/readyz`)).status;

  // An open stream with one acked batch, and two Append batches.
  const stream = openStream(client, key);
  const acks: StreamResponse[] = [];
  stream.on("data", (bytes: Buffer) => acks.push(StreamResponse.decode(bytes)));
  const streamStatus = new Promise<grpc.StatusObject>((resolve) => stream.on("status", resolve));
  stream.on("error", () => undefined);
  stream.write(encodeBatch([encodeEvent(validEvent({ seq: 1 }))], 1));
  await waitUntil("the stream's batch is acked", () => acks.length === 1);
  for (const seq of [2, 3]) {
    const { error } = await appendRaw(client, encodeBatch([encodeEvent(validEvent({ seq }))]), key);
    assert.equal(error, null);
  }
  assert.equal(await readyz(), 200);
  const before = await metrics();
  assert.equal(metric(before, "sessiontrack_ingest_draining"), 0);
  assert.equal(metric(before, "sessiontrack_ingest_open_streams"), 1);
  assert.equal(metric(before, "sessiontrack_shipper_lag_records", '{sink="index"}'), 3);

  writeFileSync(drainFile, DRAINING);
  await waitUntil("readyz answers 503", () => server.drainSignal.draining, 5_000);
  assert.equal(await readyz(), 503, "the Service stops routing new connections here");
  const ended = await streamStatus;
  assert.equal(ended.code, grpc.status.OK, "the open stream is ended gracefully");
  assert.equal(acks[0]?.result?.$case, "ack", "its in-flight batch was acked first");

  const refusedStream = openStream(client, key);
  const refused = new Promise<grpc.StatusObject>((resolve) => refusedStream.on("status", resolve));
  refusedStream.on("error", () => undefined);
  refusedStream.write(encodeBatch([encodeEvent(validEvent({ seq: 4 }))], 1));
  const refusal = await refused;
  assert.equal(refusal.code, grpc.status.UNAVAILABLE);
  assert.match(refusal.details, /draining before a scale-down/);
  const refusedAppend = await appendRaw(client, encodeBatch([encodeEvent(validEvent({ seq: 5 }))]), key);
  assert.equal(refusedAppend.error?.code, grpc.status.UNAVAILABLE);
  assert.match(refusedAppend.error?.details ?? "", /draining before a scale-down/);

  const draining = await metrics();
  assert.equal(metric(draining, "sessiontrack_ingest_draining"), 1);
  assert.equal(metric(draining, "sessiontrack_ingest_open_streams"), 0);
  assert.equal(metric(draining, "sessiontrack_shipper_lag_records", '{sink="index"}'), 3, "still behind");
  assert.equal(metric(draining, "sessiontrack_ingest_drain_refusals_total", '{rpc="Append"}'), 1);
  assert.equal(
    metric(draining, "sessiontrack_ingest_rejected_batches_total", '{code="UNAVAILABLE"}'),
    undefined,
    "drain refusals do not count as rejected batches (canary analysis reads those)",
  );

  // The index comes back: the drain ships every acknowledged event; nothing new was stored.
  stack.index.mode = "ok";
  assert.equal(server.wal.lastDurableLsn(), 3, "refused batches were not stored");
  await waitUntil("the index is caught up", () => server.wal.getCursor("index") === 3, 15_000);
  assert.equal(stack.index.eventIds.size, 3);
  assert.equal(stack.archive.eventIds.size, 3);
  const drained = await metrics();
  for (const sink of ["archive", "index"]) {
    assert.equal(metric(drained, "sessiontrack_shipper_lag_records", `{sink="${sink}"}`), 0);
    assert.equal(metric(drained, "sessiontrack_shipper_backlog_bytes", `{sink="${sink}"}`), 0);
  }

  // Withdrawn (a scale-up or a cancelled scale-down): ready and accepting again.
  writeFileSync(drainFile, ANNOTATIONS);
  await waitUntil("the drain is withdrawn", () => !server.drainSignal.draining, 5_000);
  assert.equal(await readyz(), 200);
  const accepted = await appendRaw(client, encodeBatch([encodeEvent(validEvent({ seq: 6 }))]), key);
  assert.equal(accepted.error, null);
  assert.equal(metric(await metrics(), "sessiontrack_ingest_draining"), 0);
  await waitUntil("the new event ships", () => stack.index.eventIds.size === 4);
});

test("a drain reports draining only after an Append accepted before it is acked, then ends watches and sends GOAWAY", async (t) => {
  const stack = await setUpShippingStack(t);
  const drainFile = join(stack.dir, "annotations");
  writeFileSync(drainFile, ANNOTATIONS);
  const { server, client } = await startShippingIngest(t, stack, { "drain-file": drainFile });
  const key = auth(`Bearer ${stack.ingestKey}`);
  const metrics = async () => (await fetch(`http://${server.metricsAddress}/metrics`)).text();

  // Hold the WAL's appends (as a slow fsync would) so a batch is in flight when the drain comes.
  let release: () => void = () => undefined;
  const gate = new Promise<void>((resolve) => (release = resolve));
  const append = server.wal.append.bind(server.wal);
  server.wal.append = async (records) => {
    await gate;
    return append(records);
  };
  // Released in finally too: a failed assertion must not leave close() waiting on the held batch.
  try {
    // An SDK-like client: one channel carrying a long-lived WatchConfig and a unary Append.
    const sdk = new IngestServiceClient(server.address, grpc.credentials.createInsecure());
    t.after(() => sdk.close());
    const watch = sdk.watchConfig({ botId: "bot-1", clientVersion: "test" }, key);
    const configs: WatchConfigResponse[] = [];
    watch.on("data", (response: WatchConfigResponse) => configs.push(response));
    watch.on("error", () => undefined);
    const watchEnded = new Promise<grpc.StatusObject>((resolve) => watch.on("status", resolve));
    await waitUntil("the first config", () => configs.length === 1);
    const channel = sdk.getChannel();
    assert.equal(channel.getConnectivityState(false), grpc.connectivityState.READY);
    const closed = new Promise<void>((resolve) => {
      const next = (state: grpc.connectivityState) =>
        channel.watchConnectivityState(state, Infinity, () => {
          const now = channel.getConnectivityState(false);
          if (now === grpc.connectivityState.READY) next(now);
          else resolve();
        });
      next(grpc.connectivityState.READY);
    });

    const inFlight = appendRaw(client, encodeBatch([encodeEvent(validEvent({ seq: 1 }))]), key);
    let text = await metrics();
    for (let i = 0; i < 200 && metric(text, "sessiontrack_ingest_batches_in_flight") !== 1; i++) {
      await new Promise((resolve) => setTimeout(resolve, 10));
      text = await metrics();
    }
    assert.equal(metric(text, "sessiontrack_ingest_batches_in_flight"), 1, "the batch waits in the WAL");

    writeFileSync(drainFile, DRAINING);
    await waitUntil("the drain is seen", () => server.drainSignal.draining, 5_000);
    const refused = await appendRaw(client, encodeBatch([encodeEvent(validEvent({ seq: 2 }))]), key);
    assert.equal(refused.error?.code, grpc.status.UNAVAILABLE, "intake is closed");
    const held = await metrics();
    assert.equal(
      metric(held, "sessiontrack_ingest_draining"),
      0,
      "not drained while a batch waits for its ack",
    );
    assert.equal(metric(held, "sessiontrack_ingest_batches_in_flight"), 1);
    assert.equal(configs.length, 1);

    release();
    const { error } = await inFlight;
    assert.equal(error, null, "the batch accepted before the drain is acked");
    assert.equal(server.wal.lastDurableLsn(), 1);
    let drained = await metrics();
    for (let i = 0; i < 200 && metric(drained, "sessiontrack_ingest_draining") !== 1; i++) {
      await new Promise((resolve) => setTimeout(resolve, 10));
      drained = await metrics();
    }
    assert.equal(metric(drained, "sessiontrack_ingest_draining"), 1);
    assert.equal(metric(drained, "sessiontrack_ingest_batches_in_flight"), 0);

    const status = await watchEnded;
    assert.equal(status.code, grpc.status.UNAVAILABLE, "the watch ends so the SDK watches again");
    assert.match(status.details, /draining before a scale-down/);
    await closed;
    assert.notEqual(
      channel.getConnectivityState(false),
      grpc.connectivityState.READY,
      "the connection got GOAWAY",
    );
  } finally {
    release();
  }
});
