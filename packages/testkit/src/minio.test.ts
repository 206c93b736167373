import assert from "node:assert/strict";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { Client } from "minio";
import { startMinio } from "./minio.js";
import type { MinioServer } from "./minio.js";

function clientFor(minio: MinioServer): Client {
  return new Client({
    endPoint: minio.host,
    port: minio.port,
    useSSL: false,
    accessKey: minio.accessKey,
    secretKey: minio.secretKey,
    region: "us-east-1",
  });
}

async function readObject(client: Client, bucket: string, key: string): Promise<string> {
  const stream = await client.getObject(bucket, key);
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

test("startMinio: a real S3 server that stores objects, and keeps them across stop()/start()", async (t) => {
  const minio = await startMinio();
  t.after(() => minio.cleanup());
  assert.equal(minio.endpoint, `http://127.0.0.1:${minio.port}`);

  const client = clientFor(minio);
  await client.makeBucket("sessions", "us-east-1");
  await client.putObject("sessions", "tenant-a/s1.json", Buffer.from('{"hello":"world"}'));
  assert.equal(await readObject(client, "sessions", "tenant-a/s1.json"), '{"hello":"world"}');

  await minio.stop();
  assert.equal(minio.running, false);
  await assert.rejects(client.bucketExists("sessions"), "a stopped MinIO refuses connections");

  await minio.start();
  assert.equal(minio.running, true);
  assert.equal(await readObject(client, "sessions", "tenant-a/s1.json"), '{"hello":"world"}');
});

test("startMinio: random root credentials; wrong ones are refused", async (t) => {
  const minio = await startMinio();
  t.after(() => minio.cleanup());
  const other = await startMinio();
  t.after(() => other.cleanup());
  assert.notEqual(minio.accessKey, other.accessKey);
  assert.notEqual(minio.port, other.port);

  const wrong = new Client({
    endPoint: minio.host,
    port: minio.port,
    useSSL: false,
    accessKey: other.accessKey,
    secretKey: other.secretKey,
    region: "us-east-1",
  });
  await assert.rejects(wrong.makeBucket("nope", "us-east-1"), /InvalidAccessKeyId|access key/i);
});

test("startMinio: a caller's data dir is kept by cleanup() unless removeDataDir is set", async (t) => {
  const parent = mkdtempSync(join(tmpdir(), "testkit-minio-data-"));
  t.after(() => rmSync(parent, { recursive: true, force: true }));
  const keptDir = join(parent, "kept");
  const removedDir = join(parent, "removed");

  const kept = await startMinio({ dataDir: keptDir });
  t.after(() => kept.cleanup());
  await clientFor(kept).makeBucket("kept-bucket", "us-east-1");
  await kept.cleanup();
  assert.equal(existsSync(join(keptDir, "kept-bucket")), true, "bucket dir survives cleanup()");

  // The same data dir serves a new server (a restart with a new process and new port).
  const again = await startMinio({ dataDir: keptDir, accessKey: "again-user", secretKey: "again-secret" });
  t.after(() => again.cleanup());
  assert.equal(await clientFor(again).bucketExists("kept-bucket"), true);

  const removed = await startMinio({ dataDir: removedDir, removeDataDir: true });
  t.after(() => removed.cleanup());
  await removed.cleanup();
  assert.equal(existsSync(removedDir), false);
});
