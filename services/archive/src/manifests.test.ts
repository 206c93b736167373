import assert from "node:assert/strict";
import { cpSync, existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test, type TestContext } from "node:test";

import * as grpc from "@grpc/grpc-js";

import type { StoredEvent } from "@sessiontrack/proto";
import { WriteBatchRequest } from "@sessiontrack/proto";

import {
  bearer,
  encodeStored,
  eraseCall,
  getSessionCall,
  startArchiveHarness,
  storedEvent,
  writeBatchCall,
  type ArchiveHarness,
} from "./test-harness.js";

const write = (h: ArchiveHarness, events: StoredEvent[]) =>
  writeBatchCall(h.client, WriteBatchRequest.fromPartial({ events }), bearer(h.serviceKey));

async function transcript(h: ArchiveHarness, sessionId: string) {
  const { error, response } = await getSessionCall(h.client, { sessionId }, bearer(h.readKeys["acme"]));
  return { error, events: (response?.events ?? []).map(encodeStored) };
}

const listing = (h: ArchiveHarness, folder: string): string[] => {
  const dir = join(h.dir, "data", "objects", "tenants", "acme", folder);
  return existsSync(dir) ? readdirSync(dir).filter((name) => !name.startsWith(".")) : [];
};

/** Writes two sessions of user-1 and one of user-2 over three batches, nothing folded yet. */
async function writeUnfolded(h: ArchiveHarness) {
  const a = [1, 2, 3, 4].map((seq) => storedEvent("acme", "m-a", seq, "user-1"));
  const b = [1, 2].map((seq) => storedEvent("acme", "m-b", seq, "user-1"));
  const c = [1, 2].map((seq) => storedEvent("acme", "m-c", seq, "user-2"));
  assert.equal((await write(h, [a[1]!, c[0]!, a[0]!])).error, null);
  assert.equal((await write(h, [a[3]!, b[0]!, c[1]!])).error, null);
  assert.equal((await write(h, [a[2]!, b[1]!])).error, null);
  assert.equal(listing(h, "manifests").length, 3, "one manifest per batch");
  assert.deepEqual(listing(h, "sessions"), [], "no catalog rewritten per batch");
  return { a, b, c };
}

/**
 * A crash image: the data directory as it is on disk while the archive runs (manifests not
 * folded), opened by a second archive with the same KEKs.
 */
async function restartFromCrashImage(
  t: TestContext,
  h: ArchiveHarness,
): Promise<{ restarted: ArchiveHarness; image: string }> {
  const image = mkdtempSync(join(tmpdir(), "sessiontrack-archive-crash-"));
  t.after(() => rmSync(image, { recursive: true, force: true }));
  cpSync(join(h.dir, "data"), image, { recursive: true });
  const restarted = await startArchiveHarness(t, { "data-dir": image, "kek-dir": h.kekDir });
  return { restarted, image };
}

test("manifests: a restart with unfolded manifests returns the same sessions, dedupes replays, then folds them", async (t) => {
  const h = await startArchiveHarness(t);
  const { a, b, c } = await writeUnfolded(h);
  const before = await transcript(h, "m-a");
  assert.deepEqual(before.events, a.map(encodeStored));

  const { restarted, image } = await restartFromCrashImage(t, h);
  assert.deepEqual((await transcript(restarted, "m-a")).events, a.map(encodeStored));
  assert.deepEqual((await transcript(restarted, "m-b")).events, b.map(encodeStored));
  assert.deepEqual((await transcript(restarted, "m-c")).events, c.map(encodeStored));
  // The shipper replays what it was not sure of: nothing is stored twice.
  const replay = await write(restarted, [...a, ...b, ...c]);
  assert.deepEqual(replay.response, { written: 0, duplicates: 8, objects: 0 });
  // A new event of a recovered session lands next to its recovered ones, under the same key.
  const next = storedEvent("acme", "m-a", 5, "user-1");
  assert.deepEqual((await write(restarted, [next])).response, { written: 1, duplicates: 0, objects: 1 });

  await restarted.server.fold();
  const folded = (folder: string): string[] =>
    readdirSync(join(image, "objects", "tenants", "acme", folder)).filter((name) => !name.startsWith("."));
  assert.deepEqual(folded("manifests"), []);
  assert.equal(folded("sessions").length, 3);
  assert.equal(folded("keys").length, 3);
  assert.equal(folded("subjects").length, 2);
  assert.deepEqual((await transcript(restarted, "m-a")).events, [...a, next].map(encodeStored));
});

test("manifests: erasure covers sessions known only from manifests, before and after a restart", async (t) => {
  const h = await startArchiveHarness(t);
  await writeUnfolded(h);
  const { restarted } = await restartFromCrashImage(t, h);

  for (const archive of [h, restarted]) {
    const erased = await eraseCall(
      archive.client,
      { tenant: "acme", target: { target: { $case: "userId", value: "user-1" } }, receiptId: "m-erase" },
      bearer(archive.serviceKey),
    );
    assert.equal(erased.error, null);
    assert.deepEqual(erased.response?.sessions, ["m-a", "m-b"]);
    assert.equal(erased.response?.dataKeysDestroyed.length, 2);
    assert.equal(erased.response?.eventsErased, 6);
    assert.equal((await transcript(archive, "m-a")).error?.code, grpc.status.NOT_FOUND);
    assert.equal((await transcript(archive, "m-b")).error?.code, grpc.status.NOT_FOUND);
    assert.equal((await transcript(archive, "m-c")).events.length, 2);
  }
  // The erasure folded the manifests first: none is left to bring an erased key back.
  assert.deepEqual(listing(h, "manifests"), []);
  assert.equal(listing(h, "keys").length, 1);
});

test("manifests: a manifest whose object a crash lost is dropped at restart, so the retry is stored again", async (t) => {
  const h = await startArchiveHarness(t);
  const events = [1, 2].map((seq) => storedEvent("acme", "m-lost", seq, "user-1"));
  assert.equal((await write(h, events)).error, null);
  const image = mkdtempSync(join(tmpdir(), "sessiontrack-archive-crash-"));
  t.after(() => rmSync(image, { recursive: true, force: true }));
  cpSync(join(h.dir, "data"), image, { recursive: true });
  // The object and its manifest are written together; here only the manifest reached the disk.
  rmSync(join(image, "objects", "tenants", "acme", "objects"), { recursive: true });
  const restarted = await startArchiveHarness(t, { "data-dir": image, "kek-dir": h.kekDir });
  assert.equal((await transcript(restarted, "m-lost")).error?.code, grpc.status.NOT_FOUND);
  assert.deepEqual(readdirSync(join(image, "objects", "tenants", "acme", "manifests")), []);
  assert.deepEqual((await write(restarted, events)).response, { written: 2, duplicates: 0, objects: 1 });
  assert.deepEqual((await transcript(restarted, "m-lost")).events, events.map(encodeStored));
});
