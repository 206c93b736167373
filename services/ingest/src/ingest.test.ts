import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { test } from "node:test";

import * as grpc from "@grpc/grpc-js";

import {
  AppendResponse,
  Event,
  IngestServiceClient,
  StoredEvent,
  StreamResponse,
  type WatchConfigResponse,
} from "@sessiontrack/proto";

import {
  appendRaw,
  auth,
  encodeBatch,
  encodeEvent,
  openStream,
  startHarness,
  validEvent,
} from "./test-harness.js";
import { captureConfigFor, parseCaptureFile } from "./capture-config.js";

const collect = (
  call: grpc.ClientDuplexStream<Buffer, Buffer>,
): { responses: StreamResponse[]; done: Promise<grpc.StatusObject> } => {
  const responses: StreamResponse[] = [];
  const done = new Promise<grpc.StatusObject>((resolve) => {
    call.on("data", (bytes: Buffer) => responses.push(StreamResponse.decode(bytes)));
    call.on("status", resolve);
    call.on("error", () => undefined);
  });
  return { responses, done };
};

test("an acknowledged batch is in the WAL exactly as sent, under the key's tenant", async (t) => {
  const h = await startHarness(t);
  const events = [validEvent({ seq: 1 }), validEvent({ seq: 2, labels: { tenant: "someone-else" } })];
  const { error, response } = await appendRaw(
    h.client,
    encodeBatch(events.map(encodeEvent)),
    auth(`Bearer ${h.ingestKey}`),
  );
  assert.equal(error, null);
  assert.deepEqual(AppendResponse.decode(response!), { accepted: 2, duplicates: 0 });
  const records = await h.server.wal.readFrom(1);
  assert.equal(records.length, 2);
  records.forEach((record, index) => {
    const stored = StoredEvent.decode(record.data);
    assert.equal(stored.tenant, "acme", "tenant comes from the key, never the payload");
    assert.equal(stored.eventId, events[index]!.eventId);
    assert.equal(record.key, `acme/${events[index]!.eventId}`);
    assert.deepEqual(Event.decode(stored.event), events[index]);
  });
});

test("a resent batch is acknowledged again and stored once", async (t) => {
  const h = await startHarness(t);
  const batch = encodeBatch([validEvent(), validEvent(), validEvent()].map(encodeEvent));
  const first = await appendRaw(h.client, batch, auth(`Bearer ${h.ingestKey}`));
  const second = await appendRaw(h.client, batch, auth(`Bearer ${h.ingestKey}`));
  assert.deepEqual(AppendResponse.decode(first.response!), { accepted: 3, duplicates: 0 });
  assert.deepEqual(AppendResponse.decode(second.response!), { accepted: 0, duplicates: 3 });
  assert.equal((await h.server.wal.readFrom(1)).length, 3);
});

test("Stream acks batches in order, rejects a bad batch without closing, and ends cleanly", async (t) => {
  const h = await startHarness(t);
  const call = openStream(h.client, auth(`Bearer ${h.ingestKey}`));
  const { responses, done } = collect(call);
  for (let seq = 1; seq <= 20; seq += 1) {
    const events =
      seq === 7
        ? [encodeEvent(validEvent({ seq: 0 }))]
        : [encodeEvent(validEvent()), encodeEvent(validEvent())];
    call.write(encodeBatch(events, seq));
  }
  call.end();
  const status = await done;
  assert.equal(status.code, grpc.status.OK);
  assert.deepEqual(
    responses.map((r) => r.result?.value.batchSeq),
    Array.from({ length: 20 }, (_, i) => i + 1),
  );
  const rejected = responses[6]!.result;
  assert.equal(rejected?.$case, "rejected");
  if (rejected?.$case === "rejected") {
    assert.equal(rejected.value.code, grpc.status.INVALID_ARGUMENT);
    assert.match(rejected.value.message, /^events\[0\]\.seq: must be at least 1/);
    assert.equal(rejected.value.retryable, false);
  }
  assert.equal(responses.filter((r) => r.result?.$case === "ack").length, 19);
  assert.equal((await h.server.wal.readFrom(1)).length, 38);
});

test("Stream without a valid key ends with UNAUTHENTICATED", async (t) => {
  const h = await startHarness(t);
  const call = openStream(h.client, auth("Bearer st_not-a-real-key-at-all-0000"));
  const { done } = collect(call);
  call.write(encodeBatch([encodeEvent(validEvent())], 1));
  const status = await done;
  assert.equal(status.code, grpc.status.UNAUTHENTICATED);
  assert.equal(h.server.wal.lastDurableLsn(), 0);
});

test("WatchConfig sends the configuration at once and every change within 2 s", async (t) => {
  const h = await startHarness(t);
  const client = new IngestServiceClient(h.server.address, grpc.credentials.createInsecure());
  t.after(() => client.close());
  const call = client.watchConfig(
    { botId: "support-bot", clientVersion: "test" },
    auth(`Bearer ${h.readKey}`),
  );
  t.after(() => call.cancel());
  const received: WatchConfigResponse[] = [];
  const next = (): Promise<WatchConfigResponse> =>
    new Promise((resolve) => {
      const have = received.length;
      const check = setInterval(() => {
        if (received.length > have) {
          clearInterval(check);
          resolve(received.at(-1)!);
        }
      }, 5);
    });
  call.on("data", (response: WatchConfigResponse) => received.push(response));
  call.on("error", () => undefined);
  const initial = await next();
  assert.equal(initial.config?.enabled, true);
  const changedAt = Date.now();
  writeFileSync(h.captureConfigFile, "enabled: false\nsampleRate: 0.5\nstage: opt-in\n");
  const changed = await next();
  const latency = Date.now() - changedAt;
  assert.equal(changed.config?.enabled, false);
  assert.equal(changed.config?.stage, "opt-in");
  assert.notEqual(changed.config?.revision, initial.config?.revision);
  assert.ok(latency < 2_000, `change arrived after ${latency} ms`);

  // A bad edit keeps the last good configuration; the next good one goes out.
  writeFileSync(h.captureConfigFile, "enabled: maybe\n");
  await new Promise((resolve) => setTimeout(resolve, 600));
  assert.equal(received.length, 2);
  writeFileSync(h.captureConfigFile, "enabled: true\noptOut:\n  botIds: [support-bot]\n");
  const optedOut = await next();
  assert.equal(optedOut.config?.enabled, false, "a bot on the opt-out list is told capture is off");

  // Stages and opt-outs by tenant are resolved from the watcher's API key.
  writeFileSync(
    h.captureConfigFile,
    "sampleRate: 0\ntenantCohorts:\n  - { name: internal, tenants: [acme], sampleRate: 1 }\n",
  );
  const staged = await next();
  assert.equal(staged.config?.enabled, true);
  assert.deepEqual(staged.config?.cohorts, [{ name: "internal", botIds: [], userGroups: [], sampleRate: 1 }]);
  writeFileSync(
    h.captureConfigFile,
    "tenantCohorts:\n  - { name: internal, tenants: [acme], sampleRate: 1 }\noptOut:\n  tenantIds: [acme]\n",
  );
  const tenantOptedOut = await next();
  assert.equal(tenantOptedOut.config?.enabled, false, "a tenant's opt-out wins over its stage");
});

test("captureConfigFor: tenant opt-out wins, tenant cohorts apply to their tenants only and come first", () => {
  const file = parseCaptureFile(
    [
      "sampleRate: 0.1",
      "cohorts:",
      "  - { name: beta-bots, botIds: [beta], sampleRate: 0.5 }",
      "tenantCohorts:",
      "  - { name: internal, tenants: [acme, initech], sampleRate: 1 }",
      "optOut:",
      "  tenantIds: [globex]",
      "  userIds: [u-1]",
    ].join("\n"),
    "capture.yaml",
  );
  const acme = captureConfigFor(file.config, file.tenantRules, "acme", "support-bot");
  assert.equal(acme.enabled, true);
  assert.deepEqual(
    acme.cohorts.map((cohort) => cohort.name),
    ["internal", "beta-bots"],
  );
  const other = captureConfigFor(file.config, file.tenantRules, "umbrella", "support-bot");
  assert.deepEqual(
    other.cohorts.map((cohort) => cohort.name),
    ["beta-bots"],
  );
  assert.equal(other.sampleRate, 0.1);
  assert.equal(captureConfigFor(file.config, file.tenantRules, "globex", "support-bot").enabled, false);
  assert.deepEqual(file.config.optOut, { userIds: ["u-1"], botIds: [] });
  assert.throws(
    () => parseCaptureFile("tenantCohorts:\n  - { name: x, tenants: [], sampleRate: 1 }\n", "capture.yaml"),
    /capture config capture\.yaml is invalid:\n {2}tenantCohorts\.0\.tenants: a tenant cohort names at least one tenant/,
  );
});

test("/metrics exposes ingest counters and the WAL's state; /readyz is ready", async (t) => {
  const h = await startHarness(t);
  await appendRaw(h.client, encodeBatch([encodeEvent(validEvent())]), auth(`Bearer ${h.ingestKey}`));
  await appendRaw(
    h.client,
    encodeBatch([encodeEvent(validEvent({ seq: 0 }))]),
    auth(`Bearer ${h.ingestKey}`),
  );
  const metrics = await (await fetch(`http://${h.server.metricsAddress}/metrics`)).text();
  assert.match(metrics, /sessiontrack_ingest_events_total\{result="accepted"\} 1/);
  assert.match(metrics, /sessiontrack_ingest_rejected_batches_total\{code="INVALID_ARGUMENT"\} 1/);
  assert.match(metrics, /sessiontrack_wal_last_lsn 1/);
  assert.match(metrics, /sessiontrack_ingest_ack_latency_seconds_count 1/);
  assert.equal((await fetch(`http://${h.server.metricsAddress}/readyz`)).status, 200);
});

test("close() drains: batches already sent are acked, then the stream ends with OK", async (t) => {
  const h = await startHarness(t);
  const call = openStream(h.client, auth(`Bearer ${h.ingestKey}`));
  const { responses, done } = collect(call);
  for (let seq = 1; seq <= 10; seq += 1) call.write(encodeBatch([encodeEvent(validEvent())], seq));
  // "Already sent" means the server has read them: wait until its counter says so, then close.
  const received = /sessiontrack_ingest_batches_total\{rpc="Stream"\} 10\b/;
  for (let tries = 0; tries < 500; tries += 1) {
    const text = await (await fetch(`http://${h.server.metricsAddress}/metrics`)).text();
    if (received.test(text)) break;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  await h.server.close();
  const status = await done;
  assert.equal(status.code, grpc.status.OK);
  assert.equal(responses.length, 10);
  assert.ok(responses.every((r) => r.result?.$case === "ack"));
});
