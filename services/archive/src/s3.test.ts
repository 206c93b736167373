// The archive against a real MinIO server (the pinned build of `make tools`): the same
// object layout as the local store, tamper detection, erasure, lifecycle rules, outage.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import * as grpc from "@grpc/grpc-js";
import * as Minio from "minio";

import type { StoredEvent } from "@sessiontrack/proto";
import {
  ArchiveServiceGetSessionRequest,
  ArchiveServiceGetSessionResponse,
  WriteBatchRequest,
} from "@sessiontrack/proto";
import { startMinio, type MinioServer } from "@sessiontrack/testkit";

import {
  bearer,
  callRaw,
  encodeStored,
  eraseCall,
  startArchiveHarness,
  storedEvent,
  verifyCall,
  writeBatchCall,
  type ArchiveHarness,
} from "./test-harness.js";

let minio: MinioServer;
let admin: Minio.Client;

before(async () => {
  minio = await startMinio();
  admin = new Minio.Client({
    endPoint: minio.host,
    port: minio.port,
    useSSL: false,
    accessKey: minio.accessKey,
    secretKey: minio.secretKey,
    pathStyle: true,
  });
});

after(async () => {
  await minio.cleanup();
});

async function startOnMinio(
  t: Parameters<typeof startArchiveHarness>[0],
  bucket: string,
): Promise<ArchiveHarness> {
  return startArchiveHarness(
    t,
    {
      store: "s3",
      "s3-endpoint": minio.endpoint,
      "s3-bucket": bucket,
      "s3-access-key": minio.accessKey,
      "s3-secret-key": minio.secretKey,
      "retention-days": "90",
    },
    { policy: "acme:\n  coldAfterDays: 30\n  retentionDays: 365\n" },
  );
}

async function objectKeys(bucket: string, prefix = "tenants/"): Promise<string[]> {
  const keys: string[] = [];
  for await (const item of admin.listObjectsV2(bucket, prefix, true) as AsyncIterable<Minio.BucketItem>) {
    if (item.name !== undefined) keys.push(item.name);
  }
  return keys.sort();
}

async function readObject(bucket: string, key: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of await admin.getObject(bucket, key)) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

async function getSession(h: ArchiveHarness, tenant: string, sessionId: string) {
  const { error, response } = await callRaw(
    h.raw,
    "GetSession",
    Buffer.from(ArchiveServiceGetSessionRequest.encode({ sessionId }).finish()),
    bearer(h.readKeys[tenant]),
  );
  return {
    error,
    events: error === null ? ArchiveServiceGetSessionResponse.decode(response!).events.map(encodeStored) : [],
  };
}

const write = (h: ArchiveHarness, events: StoredEvent[]) =>
  writeBatchCall(h.client, WriteBatchRequest.fromPartial({ events }), bearer(h.serviceKey));

test("on MinIO: same layout, identical round trip, duplicates collapse, tampering and erasure detected", async (t) => {
  const bucket = "archive-layout";
  const h = await startOnMinio(t, bucket);
  const session = [3, 1, 2, 4].map((seq) => storedEvent("acme", "s3-session", seq, "user-1"));
  const other = [1, 2].map((seq) => storedEvent("acme", "s3-other", seq, "user-2"));
  assert.deepEqual((await write(h, [...session, ...other])).response, {
    written: 6,
    duplicates: 0,
    objects: 1,
  });
  assert.deepEqual((await write(h, session)).response, { written: 0, duplicates: 4, objects: 0 });
  const read = await getSession(h, "acme", "s3-session");
  assert.deepEqual(read.events, [...session].sort((a, b) => a.seq - b.seq).map(encodeStored));

  // Acknowledged batches are data objects plus one manifest each, until folded into records.
  const unfolded = await objectKeys(bucket);
  assert.equal(
    unfolded.filter((key) => /^tenants\/acme\/manifests\/[0-9a-z]+-[0-9a-f]+\.json$/.test(key)).length,
    1,
  );
  assert.equal(unfolded.filter((key) => key.startsWith("tenants/acme/sessions/")).length, 0);
  await h.server.fold();
  const keys = await objectKeys(bucket);
  assert.equal(keys.filter((key) => key.startsWith("tenants/acme/manifests/")).length, 0);
  const objects = keys.filter((key) => key.startsWith("tenants/acme/objects/"));
  assert.equal(objects.length, 1);
  assert.match(objects[0]!, /^tenants\/acme\/objects\/\d{4}\/\d{2}\/\d{2}\/[0-9a-z]+-[0-9a-f]+\.sta$/);
  assert.equal(keys.filter((key) => /^tenants\/acme\/sessions\/[0-9a-f]{32}\.json$/.test(key)).length, 2);
  assert.equal(keys.filter((key) => /^tenants\/acme\/keys\/[0-9a-f]{32}\.json$/.test(key)).length, 2);
  assert.equal(keys.filter((key) => /^tenants\/acme\/subjects\/[0-9a-f]{32}\.json$/.test(key)).length, 2);
  const original = await readObject(bucket, objects[0]!);
  assert.ok(!original.includes("order 88213"), "no plaintext in the bucket");

  // Flip one byte in MinIO: reported, never returned.
  const tampered = Buffer.from(original);
  tampered[200]! ^= 0x20;
  await admin.putObject(bucket, objects[0]!, tampered);
  const corrupt = await getSession(h, "acme", "s3-session");
  assert.equal(corrupt.error?.code, grpc.status.DATA_LOSS);
  const verified = await verifyCall(h.client, { sessionId: "" }, bearer(h.readKeys["acme"]));
  assert.deepEqual(verified.response?.problems, [{ object: objects[0], reason: "checksum mismatch" }]);
  await admin.putObject(bucket, objects[0]!, original);
  assert.equal((await getSession(h, "acme", "s3-session")).events.length, 4);

  // Erase user-1; a copy of the object taken before (a backup) no longer decrypts for it.
  const erased = await eraseCall(
    h.client,
    { tenant: "acme", target: { target: { $case: "userId", value: "user-1" } }, receiptId: "s3-erase-1" },
    bearer(h.serviceKey),
  );
  assert.deepEqual(erased.response?.sessions, ["s3-session"]);
  assert.equal(erased.response?.dataKeysDestroyed.length, 1);
  assert.ok((await objectKeys(bucket, "tenants/acme/audit/")).includes(erased.response.auditRecord));
  assert.equal((await getSession(h, "acme", "s3-session")).error?.code, grpc.status.NOT_FOUND);
  assert.equal((await getSession(h, "acme", "s3-other")).events.length, 2);
  await admin.putObject(bucket, objects[0]!, original); // restore the backup copy
  const afterRestore = await verifyCall(h.client, { sessionId: "" }, bearer(h.readKeys["acme"]));
  assert.equal(afterRestore.response?.problems.length, 1);
  assert.match(afterRestore.response?.problems[0]?.reason ?? "", /data key destroyed/);
  assert.equal(afterRestore.response?.eventsChecked, 2, "only user-2's section still decrypts");
});

test("on MinIO: per-tenant lifecycle rules are set on the bucket (expiration; no transition without a storage class)", async (t) => {
  const bucket = "archive-lifecycle";
  const h = await startOnMinio(t, bucket);
  await write(h, [storedEvent("acme", "lc", 1)]); // the bucket is prepared on first use
  const rules = (await admin.getBucketLifecycle(bucket))?.Rule ?? [];
  const byId = new Map(rules.map((rule) => [rule.ID, rule]));
  const acme = byId.get("sessiontrack-acme-objects");
  assert.equal(acme?.Status, "Enabled");
  assert.equal(acme?.Filter?.Prefix, "tenants/acme/objects/");
  assert.equal(Number(acme?.Expiration?.Days), 365);
  assert.equal(acme?.Transition, undefined, "MinIO has no remote tier configured, so no transition");
  assert.equal(Number(byId.get("sessiontrack-acme-sessions")?.Expiration?.Days), 365);
  assert.equal(Number(byId.get("sessiontrack-globex-objects")?.Expiration?.Days), 90, "default retention");
  assert.equal(Number(byId.get("sessiontrack-initech-objects")?.Expiration?.Days), 90);
});

test("on MinIO: a cold storage class MinIO has no tier for is refused with a clear, retryable error", async (t) => {
  const h = await startArchiveHarness(t, {
    store: "s3",
    "s3-endpoint": minio.endpoint,
    "s3-bucket": "archive-no-tier",
    "s3-access-key": minio.accessKey,
    "s3-secret-key": minio.secretKey,
    "s3-cold-storage-class": "WARM",
    "cold-after-days": "30",
    "retention-days": "365",
  });
  const { error } = await write(h, [storedEvent("acme", "tier", 1)]);
  assert.equal(error?.code, grpc.status.UNAVAILABLE);
  assert.match(
    error.details,
    /setting the lifecycle rules of bucket archive-no-tier \(transitions to storage class "WARM"/,
  );
});

test("on MinIO: a stopped store makes WriteBatch UNAVAILABLE with nothing visible; after a restart the retry succeeds", async (t) => {
  const bucket = "archive-outage";
  const h = await startOnMinio(t, bucket);
  assert.equal((await write(h, [storedEvent("acme", "before", 1)])).error, null);
  const batch = [1, 2, 3].map((seq) => storedEvent("acme", "during", seq));
  await minio.stop();
  try {
    const failed = await write(h, batch);
    assert.equal(failed.error?.code, grpc.status.UNAVAILABLE);
    assert.match(failed.error.details, /object store \(S3\) failed/);
    const read = await getSession(h, "acme", "before");
    assert.equal(read.error?.code, grpc.status.UNAVAILABLE);
  } finally {
    await minio.start();
  }
  assert.equal(
    (await getSession(h, "acme", "during")).error?.code,
    grpc.status.NOT_FOUND,
    "nothing half-written is visible",
  );
  const retried = await write(h, batch);
  assert.equal(retried.error, null);
  assert.deepEqual(retried.response, { written: 3, duplicates: 0, objects: 1 });
  assert.deepEqual((await getSession(h, "acme", "during")).events, batch.map(encodeStored));
  assert.equal((await getSession(h, "acme", "before")).events.length, 1);
});
