import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";

import { StorageUnavailableError } from "@sessiontrack/errors";
import { Event } from "@sessiontrack/proto";
import { createLogger } from "@sessiontrack/runtime";

import { fixtureDocuments, query } from "./backend-contract.js";
import { documentFromStoredEvent } from "./document.js";
import { SqliteIndexBackend } from "./sqlite-backend.js";
import { storedEventBytes, T0 } from "./test-fixtures.js";

const logger = createLogger({ name: "index-test", level: "silent" });

test("the index survives a restart and keeps allocating row ids after the existing ones", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "sessiontrack-index-reopen-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const first = await SqliteIndexBackend.open({ dataDir: dir, logger });
  await first.index(fixtureDocuments());
  await first.close();

  const second = await SqliteIndexBackend.open({ dataDir: dir, logger });
  t.after(() => second.close());
  assert.equal(second.count(), fixtureDocuments().length);
  const later = Event.fromPartial({
    eventId: "acme-later-1",
    sessionId: "s-later",
    seq: 1,
    time: new Date(T0 + 500 * 60_000),
    payload: { $case: "feedback", value: { comment: "refund arrived, thanks", score: 1 } },
  });
  await second.index([documentFromStoredEvent(storedEventBytes("acme", later), 0)]);
  const refund = await second.search(query("acme", { text: "refund" }));
  assert.deepEqual(refund.sessions.map((s) => s.sessionId).sort(), ["s-a1", "s-later"]);
  assert.equal((await second.getSession("acme", "s-a1")).length, 5);
});

test("writes after close are refused as unavailable, not lost silently", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "sessiontrack-index-closed-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const backend = await SqliteIndexBackend.open({ dataDir: dir, logger });
  await backend.close();
  await assert.rejects(backend.index(fixtureDocuments()), (error: Error) => {
    assert.ok(error instanceof StorageUnavailableError);
    return true;
  });
});
