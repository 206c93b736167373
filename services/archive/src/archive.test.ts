import assert from "node:assert/strict";
import {
  copyFileSync,
  existsSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { join, relative } from "node:path";
import { test } from "node:test";

import * as grpc from "@grpc/grpc-js";

import {
  ArchiveServiceGetSessionRequest,
  ArchiveServiceGetSessionResponse,
  type ArchiveServiceEraseRequest,
  StoredEvent,
  WriteBatchRequest,
  type ScanEventsResponse,
} from "@sessiontrack/proto";

import { encodeEventsMessage } from "./archive-service.js";
import { KeyEncryptionKeyDirectory, unwrapDataKey } from "./keys.js";
import { openSection, parseObject } from "./object-format.js";
import type { AuditRecord } from "./erase.js";
import type { KeyRecord } from "./records.js";
import {
  bearer,
  eraseCall,
  getSessionCall,
  verifyCall,
  writeBatchCall,
  callRaw,
  encodeStored,
  startArchiveHarness,
  storedEvent,
  type ArchiveHarness,
} from "./test-harness.js";

const DAY_MS = 24 * 60 * 60 * 1000;

function files(root: string): string[] {
  if (!existsSync(root)) return [];
  const out: string[] = [];
  const walk = (dir: string): void => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) walk(path);
      else out.push(relative(root, path));
    }
  };
  walk(root);
  return out.sort();
}

const dataObjects = (h: ArchiveHarness, tenant: string, tier = "objects"): string[] =>
  files(join(h.dir, "data", tier, "tenants", tenant, "objects")).map((path) =>
    join(h.dir, "data", tier, "tenants", tenant, "objects", path),
  );

async function writeBatch(h: ArchiveHarness, events: StoredEvent[], key: string | null = h.serviceKey) {
  return writeBatchCall(h.client, WriteBatchRequest.fromPartial({ events }), bearer(key ?? undefined));
}

/** GetSession's StoredEvents as the exact bytes on the wire. */
async function getSessionBytes(h: ArchiveHarness, tenant: string, sessionId: string) {
  const { error, response } = await callRaw(
    h.raw,
    "GetSession",
    Buffer.from(ArchiveServiceGetSessionRequest.encode({ sessionId }).finish()),
    bearer(h.readKeys[tenant]),
  );
  if (error !== null) return { error, events: [] as Buffer[] };
  const events = ArchiveServiceGetSessionResponse.decode(response!).events.map(encodeStored);
  // The response is exactly field 1 repeated over the stored bytes.
  assert.deepEqual(response, encodeEventsMessage(events));
  return { error, events };
}

/** ScanEvents' events and final status. */
function scanEvents(
  h: ArchiveHarness,
  tenant: string,
  key = h.serviceKey,
): Promise<{ events: StoredEvent[]; status: grpc.StatusObject }> {
  return new Promise((resolve) => {
    const events: StoredEvent[] = [];
    const stream = h.client.scanEvents({ tenant }, bearer(key));
    stream.on("data", (chunk: ScanEventsResponse) => events.push(...chunk.events));
    stream.on("error", () => undefined);
    stream.on("status", (status: grpc.StatusObject) => resolve({ events, status }));
  });
}

test("GetSession returns the transcript ordered by seq, byte for byte as written, many events per object", async (t) => {
  const h = await startArchiveHarness(t);
  const a = [1, 2, 3, 4, 5, 6].map((seq) => storedEvent("acme", "s-a", seq, "user-1"));
  const b = [1, 2, 3].map((seq) => storedEvent("acme", "s-b", seq, "user-2"));
  // Out of order and interleaved across two batches.
  const first = await writeBatch(h, [a[3]!, b[0]!, a[0]!, a[5]!, b[2]!]);
  assert.equal(first.error, null);
  assert.deepEqual(first.response, { written: 5, duplicates: 0, objects: 1 });
  const second = await writeBatch(h, [a[2]!, a[1]!, b[1]!, a[4]!]);
  assert.deepEqual(second.response, { written: 4, duplicates: 0, objects: 1 });

  const session = await getSessionBytes(h, "acme", "s-a");
  assert.equal(session.error, null);
  assert.deepEqual(session.events, a.map(encodeStored));
  assert.deepEqual((await getSessionBytes(h, "acme", "s-b")).events, b.map(encodeStored));

  const objects = dataObjects(h, "acme");
  assert.equal(objects.length, 2, "one object per WriteBatch, not per event or session");
  const header = parseObject(readFileSync(objects[0]!), "first").header;
  assert.equal(header.tenant, "acme");
  assert.ok(header.events >= 4);
  // Encrypted: no event text in the clear anywhere in the store.
  for (const path of files(join(h.dir, "data"))) {
    assert.ok(!readFileSync(join(h.dir, "data", path)).includes("order 88213"), `${path} holds plaintext`);
  }
});

test("a replayed batch is counted as duplicates and GetSession never repeats an event", async (t) => {
  const h = await startArchiveHarness(t);
  const events = [1, 2, 3, 4].map((seq) => storedEvent("acme", "s-dup", seq));
  assert.deepEqual((await writeBatch(h, events)).response, { written: 4, duplicates: 0, objects: 1 });
  assert.deepEqual((await writeBatch(h, events)).response, { written: 0, duplicates: 4, objects: 0 });
  const more = storedEvent("acme", "s-dup", 5);
  assert.deepEqual((await writeBatch(h, [events[1]!, more, more])).response, {
    written: 1,
    duplicates: 2,
    objects: 1,
  });
  const { events: read } = await getSessionBytes(h, "acme", "s-dup");
  assert.deepEqual(read, [...events, more].map(encodeStored));
});

test("a flipped byte in a stored object is reported as DATA_LOSS and by Verify, never returned", async (t) => {
  const h = await startArchiveHarness(t);
  await writeBatch(
    h,
    [1, 2, 3].map((seq) => storedEvent("acme", "s-tamper", seq)),
  );
  const verifyBefore = await verifyCall(h.client, { sessionId: "" }, bearer(h.readKeys["acme"]));
  assert.deepEqual(verifyBefore.response, { objectsChecked: 1, eventsChecked: 3, problems: [] });

  const [path] = dataObjects(h, "acme");
  const bytes = readFileSync(path!);
  bytes[bytes.length - 60]! ^= 0x01;
  writeFileSync(path!, bytes);

  const { error } = await getSessionBytes(h, "acme", "s-tamper");
  assert.equal(error?.code, grpc.status.DATA_LOSS);
  assert.match(error.details, /checksum mismatch/);
  const verified = await verifyCall(h.client, { sessionId: "s-tamper" }, bearer(h.readKeys["acme"]));
  assert.equal(verified.response?.problems.length, 1);
  assert.equal(verified.response?.problems[0]?.reason, "checksum mismatch");
  assert.match(verified.response?.problems[0]?.object ?? "", /^tenants\/acme\/objects\/.+\.sta$/);
  const metrics = await (await fetch(`http://${h.server.metricsAddress}/metrics`)).text();
  assert.match(metrics, /sessiontrack_archive_read_failures_total\{reason="checksum"\} 2/);
  assert.match(metrics, /sessiontrack_archive_verify_problems_total 1/);

  // An index rebuild skips the unreadable session and streams the rest.
  await writeBatch(h, [storedEvent("acme", "s-fine", 1, "user-2")]);
  const scanned = await scanEvents(h, "acme");
  assert.equal(scanned.status.code, grpc.status.OK);
  assert.deepEqual(
    scanned.events.map((event) => event.sessionId),
    ["s-fine"],
  );
});

test("Verify of a whole tenant also checks catalogs and key records, and finds catalogued objects that are gone", async (t) => {
  const h = await startArchiveHarness(t);
  await writeBatch(h, [storedEvent("acme", "v-1", 1), storedEvent("acme", "v-2", 1, "user-2")]);
  await writeBatch(h, [storedEvent("acme", "v-3", 1, "user-3")]);
  await h.server.fold(); // batch manifests → catalogs and key records
  const root = join(h.dir, "data", "objects", "tenants", "acme");
  const [catalog] = files(join(root, "sessions"));
  const catalogBytes = readFileSync(join(root, "sessions", catalog!));
  catalogBytes[catalogBytes.length - 10]! ^= 0x01;
  writeFileSync(join(root, "sessions", catalog!), catalogBytes);
  const [keyFile] = files(join(root, "keys"));
  writeFileSync(join(root, "keys", keyFile!), "{}\n");
  const gone = dataObjects(h, "acme").at(-1)!;
  const goneKey = relative(join(h.dir, "data", "objects"), gone);
  rmSync(gone);
  const verified = await verifyCall(h.client, { sessionId: "" }, bearer(h.readKeys["acme"]));
  const problems = verified.response?.problems.map((problem) => `${problem.object}: ${problem.reason}`) ?? [];
  assert.ok(problems.includes(`tenants/acme/sessions/${catalog}: checksum mismatch`), problems.join("\n"));
  assert.ok(
    problems.some((problem) => problem.startsWith(`tenants/acme/keys/${keyFile}: `)),
    problems.join("\n"),
  );
  assert.ok(problems.includes(`${goneKey}: object missing`), problems.join("\n"));
});

test("another tenant's KEK cannot read a tenant's objects", async (t) => {
  const h = await startArchiveHarness(t);
  await writeBatch(h, [storedEvent("acme", "s-kek", 1), storedEvent("acme", "s-kek", 2)]);
  await h.server.fold(); // the key record leaves the batch manifest
  const acmeKek = readFileSync(join(h.kekDir, "acme"));
  const globexKek = await new KeyEncryptionKeyDirectory(h.kekDir).forTenant("globex");
  // Unwrapping acme's data key under globex's KEK fails authentication even with the id check bypassed.
  const keyFile = files(join(h.dir, "data", "objects", "tenants", "acme", "keys"))[0]!;
  const sealed = JSON.parse(
    readFileSync(join(h.dir, "data", "objects", "tenants", "acme", "keys", keyFile), "utf8"),
  ) as { body: KeyRecord };
  assert.throws(
    () =>
      unwrapDataKey(
        { ...globexKek, tenant: "acme" },
        { ...sealed.body, kekId: globexKek.id },
        sealed.body.session,
        "k",
      ),
    /failed authentication/,
  );
  // The service refuses to read acme's data when acme's KEK file holds globex's key.
  copyFileSync(join(h.kekDir, "globex"), join(h.kekDir, "acme"));
  const { error } = await getSessionBytes(h, "acme", "s-kek");
  assert.equal(error?.code, grpc.status.DATA_LOSS);
  assert.match(error.details, /wrapped by key-encryption key .* restore the original KEK/);
  writeFileSync(join(h.kekDir, "acme"), acmeKek);
  assert.equal((await getSessionBytes(h, "acme", "s-kek")).events.length, 2);
});

test("GetSession and Verify see only the key's own tenant", async (t) => {
  const h = await startArchiveHarness(t);
  await writeBatch(h, [storedEvent("acme", "shared-id", 1), storedEvent("globex", "shared-id", 1, "user-9")]);
  await writeBatch(h, [storedEvent("acme", "acme-only", 1)]);
  const acme = await getSessionBytes(h, "acme", "shared-id");
  const globex = await getSessionBytes(h, "globex", "shared-id");
  assert.equal(StoredEvent.decode(acme.events[0]!).tenant, "acme");
  assert.equal(StoredEvent.decode(globex.events[0]!).tenant, "globex");
  const cross = await getSessionBytes(h, "globex", "acme-only");
  assert.equal(cross.error?.code, grpc.status.NOT_FOUND);
  const verifyGlobex = await verifyCall(h.client, { sessionId: "" }, bearer(h.readKeys["globex"]));
  assert.deepEqual(verifyGlobex.response, { objectsChecked: 1, eventsChecked: 1, problems: [] });
  const verifyCross = await verifyCall(h.client, { sessionId: "acme-only" }, bearer(h.readKeys["globex"]));
  assert.equal(verifyCross.error?.code, grpc.status.NOT_FOUND);
});

/** Every data key the tenant still has, unwrapped. */
async function remainingDataKeys(h: ArchiveHarness, tenant: string) {
  const kek = await new KeyEncryptionKeyDirectory(h.kekDir).forTenant(tenant);
  const root = join(h.dir, "data", "objects", "tenants", tenant, "keys");
  return files(root).map((path) => {
    const record = (JSON.parse(readFileSync(join(root, path), "utf8")) as { body: KeyRecord }).body;
    return unwrapDataKey(kek, record, record.session, path);
  });
}

test("erasing a user destroys its data keys, deletes its sessions, writes an audit record, and backups stop decrypting", async (t) => {
  const h = await startArchiveHarness(t);
  // user-1 has two sessions; user-2 shares the first object.
  await writeBatch(h, [
    ...[1, 2, 3].map((seq) => storedEvent("acme", "u1-a", seq, "user-1")),
    ...[1, 2].map((seq) => storedEvent("acme", "u2-a", seq, "user-2")),
  ]);
  await writeBatch(
    h,
    [1, 2].map((seq) => storedEvent("acme", "u1-b", seq, "user-1")),
  );
  const backups = dataObjects(h, "acme").map((path) => ({ path, bytes: readFileSync(path) }));
  assert.equal(backups.length, 2);

  const erased = await eraseCall(
    h.client,
    { tenant: "acme", target: { target: { $case: "userId", value: "user-1" } }, receiptId: "ticket-4711" },
    bearer(h.serviceKey),
  );
  assert.equal(erased.error, null);
  const receipt = erased.response!;
  assert.deepEqual([...receipt.sessions].sort(), ["u1-a", "u1-b"]);
  assert.equal(receipt.dataKeysDestroyed.length, 2);
  assert.equal(receipt.eventsErased, 5);
  assert.equal(
    receipt.objectsDeleted,
    1,
    "the object with only user-1's session is deleted; the shared one rewritten",
  );
  assert.match(receipt.auditRecord, /^tenants\/acme\/audit\/.+ticket-4711\.json$/);

  const audit = (
    JSON.parse(readFileSync(join(h.dir, "data", "objects", ...receipt.auditRecord.split("/")), "utf8")) as {
      body: AuditRecord;
    }
  ).body;
  assert.equal(audit.receiptId, "ticket-4711");
  assert.equal(audit.target.kind, "user");
  assert.match(audit.target.sha256, /^[0-9a-f]{64}$/);
  assert.ok(!JSON.stringify(audit).includes("user-1"), "the audit record names no user id in the clear");
  assert.deepEqual(audit.dataKeysDestroyed, receipt.dataKeysDestroyed);

  for (const session of ["u1-a", "u1-b"]) {
    assert.equal((await getSessionBytes(h, "acme", session)).error?.code, grpc.status.NOT_FOUND);
  }
  assert.equal((await getSessionBytes(h, "acme", "u2-a")).events.length, 2, "user-2 is untouched");

  // Restore the pre-erasure copies (as from a backup): user-1's sections no longer decrypt
  // with any key the tenant still has, while user-2's still do.
  const keys = await remainingDataKeys(h, "acme");
  let erasedSections = 0;
  for (const backup of backups) {
    writeFileSync(backup.path, backup.bytes);
    const object = parseObject(backup.bytes, backup.path);
    for (const section of object.header.sections) {
      const opened = keys.filter((key) => {
        try {
          openSection(object, section, key, backup.path);
          return true;
        } catch {
          return false;
        }
      });
      if (receipt.dataKeysDestroyed.includes(section.keyId)) {
        erasedSections += 1;
        assert.equal(opened.length, 0, "an erased section must not decrypt");
      } else {
        assert.equal(opened.length, 1);
      }
    }
  }
  assert.equal(erasedSections, 2);
  const verified = await verifyCall(h.client, { sessionId: "" }, bearer(h.readKeys["acme"]));
  assert.deepEqual(
    verified.response?.problems.map((problem) => problem.reason.replace(/^section \w+: /, "")),
    ["data key destroyed", "data key destroyed"],
  );
});

test("erasing a session destroys only that session's key and data", async (t) => {
  const h = await startArchiveHarness(t);
  await writeBatch(h, [
    ...[1, 2].map((seq) => storedEvent("acme", "keep", seq, "user-1")),
    ...[1, 2, 3].map((seq) => storedEvent("acme", "drop", seq, "user-1")),
    storedEvent("acme", "anon", 1, ""),
  ]);
  const [objectPath] = dataObjects(h, "acme");
  const backup = readFileSync(objectPath!);
  const erased = await eraseCall(
    h.client,
    { tenant: "acme", target: { target: { $case: "sessionId", value: "drop" } }, receiptId: "" },
    bearer(h.serviceKey),
  );
  assert.deepEqual(erased.response?.sessions, ["drop"]);
  assert.equal(erased.response?.dataKeysDestroyed.length, 1);
  assert.equal(erased.response?.eventsErased, 3);
  assert.equal(erased.response?.objectsDeleted, 0, "the shared object is rewritten without the section");
  assert.equal((await getSessionBytes(h, "acme", "drop")).error?.code, grpc.status.NOT_FOUND);
  assert.equal((await getSessionBytes(h, "acme", "keep")).events.length, 2);
  assert.equal((await getSessionBytes(h, "acme", "anon")).events.length, 1);
  const rewritten = parseObject(readFileSync(objectPath!), "rewritten");
  assert.equal(rewritten.header.sections.length, 2);
  const old = parseObject(backup, "backup");
  const dropped = old.header.sections.find(
    (section) => section.keyId === erased.response?.dataKeysDestroyed[0],
  );
  assert.ok(dropped !== undefined);
  for (const key of await remainingDataKeys(h, "acme")) {
    assert.throws(() => openSection(old, dropped, key, "backup"), /authentication failed/);
  }
  // Erasing the user afterwards covers the remaining session; the anonymous one stays.
  const user = await eraseCall(
    h.client,
    { tenant: "acme", target: { target: { $case: "userId", value: "user-1" } }, receiptId: "r-2" },
    bearer(h.serviceKey),
  );
  assert.deepEqual(user.response?.sessions, ["keep"]);
  assert.equal((await getSessionBytes(h, "acme", "anon")).events.length, 1);
});

test("local tiering moves old objects to the cold tier and retention expires them (injected clock)", async (t) => {
  const h = await startArchiveHarness(
    t,
    {},
    { policy: "acme:\n  coldAfterDays: 30\n  retentionDays: 365\n" },
  );
  await writeBatch(
    h,
    [1, 2].map((seq) => storedEvent("acme", "old", seq)),
  );
  await writeBatch(h, [storedEvent("globex", "g", 1, "user-9")]);
  assert.deepEqual(await h.server.sweep(), { movedToCold: 0, expired: 0 });

  h.clock.now += 31 * DAY_MS;
  assert.deepEqual(await h.server.sweep(), { movedToCold: 1, expired: 0 });
  assert.equal(dataObjects(h, "acme").length, 0);
  assert.equal(dataObjects(h, "acme", "cold").length, 1);
  assert.equal(dataObjects(h, "globex").length, 1, "globex has no policy: the defaults keep it hot forever");
  assert.equal((await getSessionBytes(h, "acme", "old")).events.length, 2, "cold objects are still read");

  h.clock.now += 335 * DAY_MS;
  const swept = await h.server.sweep();
  assert.equal(swept.expired, 2, "the object and the session catalog");
  assert.equal(dataObjects(h, "acme", "cold").length, 0);
  assert.equal((await getSessionBytes(h, "acme", "old")).error?.code, grpc.status.NOT_FOUND);
  assert.equal((await getSessionBytes(h, "globex", "g")).events.length, 1);
});

test("compaction merges a session written in many batches into one section; reads and erasure still hold", async (t) => {
  const h = await startArchiveHarness(t);
  const long = Array.from({ length: 10 }, (_, index) => storedEvent("acme", "long", index + 1, "user-1"));
  const short = [storedEvent("acme", "short", 1, "user-2")];
  // The live pattern: a conversation trickles in, two events per shipper batch.
  for (let index = 0; index < long.length; index += 2) {
    await writeBatch(h, [long[index]!, long[index + 1]!, ...(index === 0 ? short : [])]);
  }
  assert.equal(dataObjects(h, "acme").length, 5);
  assert.deepEqual(await h.server.compact(), {
    sessions: 0,
    sectionsMerged: 0,
    objectsDeleted: 0,
    objectsRewritten: 0,
  });
  h.clock.now += 11 * 60 * 1000; // idle past --compact-idle-seconds (600)
  assert.deepEqual(await h.server.compact(), {
    sessions: 1,
    sectionsMerged: 5,
    objectsDeleted: 4,
    objectsRewritten: 1,
  });
  const objects = dataObjects(h, "acme");
  assert.equal(objects.length, 2, "the compacted object and the first one, which keeps the other session");
  const sections = objects.map((path) => parseObject(readFileSync(path), path).header.sections);
  assert.deepEqual(sections.map((list) => list.map((section) => section.events)).sort(), [[1], [10]]);
  assert.deepEqual((await getSessionBytes(h, "acme", "long")).events, long.map(encodeStored));
  assert.deepEqual((await getSessionBytes(h, "acme", "short")).events, short.map(encodeStored));
  assert.deepEqual((await writeBatch(h, long)).response, { written: 0, duplicates: 10, objects: 0 });
  const verified = await verifyCall(h.client, { sessionId: "" }, bearer(h.readKeys["acme"]));
  assert.deepEqual(verified.response, { objectsChecked: 2, eventsChecked: 11, problems: [] });
  const erased = await eraseCall(
    h.client,
    {
      tenant: "acme",
      target: { target: { $case: "sessionId", value: "long" } },
      receiptId: "after-compaction",
    },
    bearer(h.serviceKey),
  );
  assert.equal(erased.response?.eventsErased, 10);
  assert.equal(dataObjects(h, "acme").length, 1);
});

test("ScanEvents streams every event of a tenant, or of all tenants", async (t) => {
  const h = await startArchiveHarness(t);
  await writeBatch(h, [
    ...[1, 2, 3].map((seq) => storedEvent("acme", "scan-1", seq)),
    storedEvent("acme", "scan-2", 1, "user-2"),
    storedEvent("globex", "scan-3", 1, "user-3"),
  ]);
  const acme = await scanEvents(h, "acme");
  assert.equal(acme.status.code, grpc.status.OK);
  assert.deepEqual(acme.events.map((event) => `${event.sessionId}/${event.seq}`).sort(), [
    "scan-1/1",
    "scan-1/2",
    "scan-1/3",
    "scan-2/1",
  ]);
  const all = await scanEvents(h, "");
  assert.equal(all.events.length, 5);
  assert.equal((await scanEvents(h, "", h.readKeys["acme"])).status.code, grpc.status.PERMISSION_DENIED);
  const traversal = await scanEvents(h, "../../etc");
  assert.equal(traversal.status.code, grpc.status.INVALID_ARGUMENT);
  assert.match(traversal.status.details, /not a tenant name/);
});

test("bad input and missing credentials get clear errors and write nothing", async (t) => {
  const h = await startArchiveHarness(t);
  const noKek = await writeBatch(h, [storedEvent("acme", "x", 1), storedEvent("initech", "x", 1)]);
  assert.equal(noKek.error?.code, grpc.status.FAILED_PRECONDITION);
  assert.match(noKek.error.details, /no key-encryption key for tenant "initech": expected a file .*initech/);
  assert.deepEqual(files(join(h.dir, "data")), [], "nothing of the batch was written");

  const cases: Array<[string, Buffer, RegExp]> = [
    ["garbage", Buffer.from([0x0a, 0xff, 0xff]), /not a valid sessiontrack\.v1\.WriteBatchRequest/],
    ["wrong wire type", Buffer.from([0x08, 0x01]), /field 1 has wire type 0/],
    ["empty", Buffer.alloc(0), /batch is empty/],
    [
      "no event id",
      Buffer.from(
        WriteBatchRequest.encode({ events: [{ ...storedEvent("acme", "x", 1), eventId: "" }] }).finish(),
      ),
      /^events\[0\]\.event_id: is required/,
    ],
    [
      "seq 0",
      Buffer.from(
        WriteBatchRequest.encode({
          events: [storedEvent("acme", "x", 1), { ...storedEvent("acme", "x", 2), seq: 0 }],
        }).finish(),
      ),
      /^events\[1\]\.seq: must be at least 1/,
    ],
    [
      "bad tenant",
      Buffer.from(WriteBatchRequest.encode({ events: [storedEvent("Not A Tenant", "x", 1)] }).finish()),
      /^events\[0\]\.tenant: "Not A Tenant" is not a tenant name/,
    ],
    [
      "event bytes not an Event",
      Buffer.from(
        WriteBatchRequest.encode({
          events: [{ ...storedEvent("acme", "x", 1), event: Buffer.from([0xff, 0xff, 0xff]) }],
        }).finish(),
      ),
      /^events\[0\]\.event: is not a valid sessiontrack\.v1\.Event/,
    ],
    [
      "ids disagree with the event",
      Buffer.from(
        WriteBatchRequest.encode({
          events: [{ ...storedEvent("acme", "x", 1), sessionId: "other" }],
        }).finish(),
      ),
      /must match the encoded Event's/,
    ],
  ];
  for (const [name, bytes, message] of cases) {
    const { error } = await callRaw(h.raw, "WriteBatch", bytes, bearer(h.serviceKey));
    assert.equal(error?.code, grpc.status.INVALID_ARGUMENT, name);
    assert.match(error.details, message, name);
  }
  const garbageRequest = await callRaw(
    h.raw,
    "GetSession",
    Buffer.from([0x0a, 0x05, 0x01]),
    bearer(h.readKeys["acme"]),
  );
  assert.equal(garbageRequest.error?.code, grpc.status.INVALID_ARGUMENT);
  const noSession = await getSessionBytes(h, "acme", "");
  assert.equal(noSession.error?.code, grpc.status.INVALID_ARGUMENT);

  const valid = [storedEvent("acme", "x", 1)];
  assert.equal((await writeBatch(h, valid, null)).error?.code, grpc.status.UNAUTHENTICATED);
  assert.equal(
    (await writeBatch(h, valid, "st_not-a-real-key-at-all-0000")).error?.code,
    grpc.status.UNAUTHENTICATED,
  );
  const tenantKey = await writeBatch(h, valid, h.ingestKey);
  assert.equal(tenantKey.error?.code, grpc.status.PERMISSION_DENIED);
  assert.match(tenantKey.error.details, /needs a service key/);
  const ingestOnly = await getSessionCall(h.client, { sessionId: "x" }, bearer(h.ingestKey));
  assert.equal(ingestOnly.error?.code, grpc.status.PERMISSION_DENIED);
  const serviceOnRead = await verifyCall(h.client, { sessionId: "" }, bearer(h.serviceKey));
  assert.equal(serviceOnRead.error?.code, grpc.status.UNAUTHENTICATED);

  const erase = (request: ArchiveServiceEraseRequest, key = h.serviceKey) =>
    eraseCall(h.client, request, bearer(key));
  const noTarget = await erase({ tenant: "acme", target: undefined, receiptId: "r" });
  assert.equal(noTarget.error?.code, grpc.status.INVALID_ARGUMENT);
  assert.match(noTarget.error.details, /target: set exactly one/);
  const unknownTenant = await erase({
    tenant: "nobody",
    target: { target: { $case: "sessionId", value: "x" } },
    receiptId: "r",
  });
  assert.equal(unknownTenant.error?.code, grpc.status.NOT_FOUND);
  const badReceipt = await erase({
    tenant: "acme",
    target: { target: { $case: "sessionId", value: "x" } },
    receiptId: "../../etc",
  });
  assert.equal(badReceipt.error?.code, grpc.status.INVALID_ARGUMENT);
  const readerErase = await erase(
    { tenant: "acme", target: { target: { $case: "sessionId", value: "x" } }, receiptId: "r" },
    h.readKeys["acme"],
  );
  assert.equal(readerErase.error?.code, grpc.status.PERMISSION_DENIED);

  const metrics = await (await fetch(`http://${h.server.metricsAddress}/metrics`)).text();
  assert.match(metrics, /sessiontrack_archive_errors_total\{rpc="WriteBatch",kind="InvalidEventError"\} 8/);
  assert.match(metrics, /sessiontrack_archive_errors_total\{rpc="WriteBatch",kind="ConfigError"\} 1/);
});

test("/metrics reports objects, events, bytes, compression ratio and store latency", async (t) => {
  const h = await startArchiveHarness(t);
  const events = Array.from({ length: 40 }, (_, index) =>
    storedEvent("acme", `m-${index % 4}`, Math.floor(index / 4) + 1),
  );
  await writeBatch(h, events);
  await writeBatch(h, events);
  const text = await (await fetch(`http://${h.server.metricsAddress}/metrics`)).text();
  assert.match(text, /sessiontrack_archive_objects_written_total 1/);
  assert.match(text, /sessiontrack_archive_events_total\{result="written"\} 40/);
  assert.match(text, /sessiontrack_archive_events_total\{result="duplicate"\} 40/);
  const ratio = Number(/sessiontrack_archive_compression_ratio ([\d.]+)/.exec(text)?.[1]);
  assert.ok(ratio > 1, `compression ratio ${ratio}`);
  assert.match(text, /sessiontrack_archive_store_latency_seconds_count\{op="put_many"\} \d+/);
  assert.ok(statSync(dataObjects(h, "acme")[0]!).size > 0);
});
