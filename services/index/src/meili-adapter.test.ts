// The Meilisearch adapter against RECORDED responses (meili-recorded.ts), not against a
// real Meilisearch: these tests check what the adapter sends and how it treats
// Meilisearch's documented answers and failures. The behaviour against a real server is
// meili-contract.test.ts, which runs only when MEILI_URL is set.
import assert from "node:assert/strict";
import { test, type TestContext } from "node:test";

import { StorageUnavailableError } from "@sessiontrack/errors";
import { Role, StoredEvent } from "@sessiontrack/proto";
import { createLogger } from "@sessiontrack/runtime";

import { fixtureDocuments, query } from "./backend-contract.js";
import { labelToken } from "./document.js";
import {
  filterString,
  MEILI_SETTINGS,
  meiliDocumentId,
  MeilisearchIndexBackend,
  type MeiliDocument,
} from "./meili-backend.js";
import { IndexMetrics } from "./metrics.js";
import { meiliError, startRecordedMeili, type RecordedMeili } from "./meili-recorded.js";

const KEY = "test-master-key-0123456789";
const INDEX = "sessiontrack_events";

async function setup(
  t: TestContext,
  options: { key?: string; batchDocuments?: number; taskTimeoutMs?: number } = {},
): Promise<{ meili: RecordedMeili; open: () => Promise<MeilisearchIndexBackend>; metrics: IndexMetrics }> {
  const meili = await startRecordedMeili(KEY);
  const metrics = new IndexMetrics();
  const backends: MeilisearchIndexBackend[] = [];
  t.after(async () => {
    for (const backend of backends) await backend.close();
    await meili.close();
  });
  const open = async (): Promise<MeilisearchIndexBackend> => {
    const backend = await MeilisearchIndexBackend.open({
      url: meili.url,
      apiKey: options.key ?? KEY,
      indexUid: INDEX,
      batchDocuments: options.batchDocuments ?? 5000,
      taskTimeoutMs: options.taskTimeoutMs ?? 5000,
      taskPruneIntervalMs: 3_600_000,
      taskRetentionMs: 600_000,
      taskPollIntervalMs: 5,
      logger: createLogger({ name: "meili-test", level: "silent" }),
      metrics,
    });
    backends.push(backend);
    return backend;
  };
  return { meili, open, metrics };
}

const json = (body: string): unknown => JSON.parse(body);

test("open creates the index with primary key id, applies the settings, and follows both tasks to success", async (t) => {
  const { meili, open } = await setup(t);
  await open();
  const [create] = meili.sent("POST", "/indexes");
  assert.deepEqual(json(create!.body), { uid: INDEX, primaryKey: "id" });
  assert.equal(create!.headers.authorization, `Bearer ${KEY}`);
  const [settings] = meili.sent("PATCH", `/indexes/${INDEX}/settings`);
  assert.deepEqual(json(settings!.body), MEILI_SETTINGS);
  assert.deepEqual((json(settings!.body) as typeof MEILI_SETTINGS).filterableAttributes.sort(), [
    "bot_id",
    "labels",
    "model",
    "provider",
    "role",
    "session_id",
    "tenant",
    "time",
    "user_id",
  ]);
  assert.deepEqual(MEILI_SETTINGS.sortableAttributes, ["time", "seq"]);
  // Each task was polled until it left enqueued and processing.
  assert.deepEqual([...meili.polls.values()], [3, 3]);
});

test("an existing index is fine; a failed settings task stops start-up naming Meilisearch's code", async (t) => {
  const { meili, open } = await setup(t);
  meili.outcomeFor("indexCreation", {
    status: "failed",
    code: "index_already_exists",
    message: `Index \`${INDEX}\` already exists.`,
  });
  await open();
  meili.outcomeFor("settingsUpdate", {
    status: "failed",
    code: "invalid_settings_filterable_attributes",
    message: "Unknown field `bogus`.",
  });
  await assert.rejects(open(), (error: Error) => {
    assert.ok(error instanceof StorageUnavailableError);
    assert.match(
      error.message,
      /update settings failed \(task \d+, settingsUpdate\): invalid_settings_filterable_attributes/,
    );
    return true;
  });
});

test("a wrong API key is reported as invalid_api_key (HTTP 403)", async (t) => {
  const { open } = await setup(t, { key: "wrong-key-000000000000" });
  await assert.rejects(
    open(),
    /meilisearch create index failed: invalid_api_key \(HTTP 403\): The provided API key is invalid/,
  );
});

test("documents go as NDJSON batches with a hashed primary key; index() resolves after the tasks succeed", async (t) => {
  const { meili, open, metrics } = await setup(t, { batchDocuments: 4 });
  const backend = await open();
  const documents = fixtureDocuments();
  await backend.index(documents);
  const additions = meili.sent("POST", `/indexes/${INDEX}/documents`);
  assert.equal(additions.length, Math.ceil(documents.length / 4));
  const sent: MeiliDocument[] = [];
  for (const request of additions) {
    assert.equal(request.headers["content-type"], "application/x-ndjson");
    assert.equal(request.query.get("primaryKey"), "id");
    assert.ok(request.body.endsWith("\n"));
    sent.push(
      ...request.body
        .trimEnd()
        .split("\n")
        .map((line) => JSON.parse(line) as MeiliDocument),
    );
  }
  assert.equal(sent.length, documents.length);
  sent.forEach((document, index) => {
    const source = documents[index]!;
    assert.match(document.id, /^[a-f0-9]{64}$/, "Meilisearch ids allow only [A-Za-z0-9_-]");
    assert.equal(document.id, meiliDocumentId(source.tenant, source.eventId));
    assert.equal(document.tenant, source.tenant);
    assert.equal(document.time, source.timeMs);
    assert.deepEqual(document.labels, source.labels);
    assert.ok(Buffer.from(document.stored, "base64").equals(Buffer.from(source.stored)));
  });
  assert.equal(StoredEvent.decode(Buffer.from(sent[1]!.stored, "base64")).eventId, "acme-s-a1-2");
  assert.notEqual(meiliDocumentId("acme", "e1"), meiliDocumentId("globex", "e1"));
  // Every addition task was followed to "succeeded" before index() resolved.
  assert.ok([...meili.polls.values()].every((count) => count === 3));
  assert.equal(await metrics.meiliPendingTasks.get().then((m) => m.values[0]?.value), 0);
});

test("a failed document task surfaces as an error naming Meilisearch's code", async (t) => {
  const { meili, open } = await setup(t);
  const backend = await open();
  meili.outcomeFor("documentAdditionOrUpdate", {
    status: "failed",
    code: "invalid_document_fields",
    message: "The `time` field must be a number.",
  });
  await assert.rejects(backend.index(fixtureDocuments()), (error: Error) => {
    assert.ok(error instanceof StorageUnavailableError, "retryable: the shipper sends the batch again");
    assert.match(
      error.message,
      /add documents failed \(task \d+, documentAdditionOrUpdate\): invalid_document_fields: The `time` field must be a number/,
    );
    return true;
  });
});

test("a task that never finishes times out with a clear error", async (t) => {
  const { meili, open } = await setup(t, { taskTimeoutMs: 200 });
  const backend = await open();
  meili.outcomeFor("documentAdditionOrUpdate", { status: "never" });
  await assert.rejects(
    backend.index(fixtureDocuments().slice(0, 1)),
    /add documents: task \d+ did not finish within 200 ms/,
  );
});

test("search always filters on the caller's tenant; hits, highlights and counts come from the responses", async (t) => {
  const { meili, open } = await setup(t);
  const backend = await open();
  meili.reply("POST", `/indexes/${INDEX}/search`, {
    status: 200,
    body: {
      hits: [{ session_id: "s-a1" }, { session_id: "s-a3" }],
      query: "refund",
      processingTimeMs: 2,
      limit: 2,
      offset: 0,
      estimatedTotalHits: 5,
    },
  });
  const hit = (eventId: string, sessionId: string, seq: number, highlight: string) => ({
    event_id: eventId,
    session_id: sessionId,
    seq,
    time: 1_767_000_000_000 + seq,
    role: Role.ROLE_USER,
    provider: "openai",
    model: "gpt-4o",
    bot_id: "support-bot",
    user_id: "u1",
    _formatted: { text: highlight, event_id: eventId },
  });
  meili.reply("POST", "/multi-search", {
    status: 200,
    body: {
      results: [
        {
          indexUid: INDEX,
          hits: [hit("e2", "s-a1", 2, "…a [[refund]] for…"), hit("e3", "s-a1", 3, "[[refund]]")],
          query: "refund",
          processingTimeMs: 1,
          limit: 2,
          offset: 0,
          estimatedTotalHits: 3,
        },
        {
          indexUid: INDEX,
          hits: [hit("e9", "s-a3", 1, "[[refund]] please")],
          query: "refund",
          processingTimeMs: 1,
          limit: 2,
          offset: 0,
          estimatedTotalHits: 1,
        },
        {
          indexUid: INDEX,
          hits: [],
          query: "refund",
          processingTimeMs: 1,
          limit: 0,
          offset: 0,
          estimatedTotalHits: 4,
        },
      ],
    },
  });
  const result = await backend.search(
    query("acme", {
      text: "refund",
      botIds: ["support-bot", 'we"ird\\bot'],
      roles: [Role.ROLE_USER],
      labels: [labelToken("env", "prod")],
      sinceMs: 1000,
      untilMs: 2000,
      limit: 2,
      offset: 4,
      hitsPerSession: 2,
      preTag: "[[",
      postTag: "]]",
    }),
  );
  const [search] = meili.sent("POST", `/indexes/${INDEX}/search`);
  const body = json(search!.body) as Record<string, unknown>;
  const filter = [
    'tenant = "acme"',
    'bot_id IN ["support-bot", "we\\"ird\\\\bot"]',
    "role = 2",
    'labels = "env=prod"',
    "time >= 1000",
    "time < 2000",
  ];
  assert.deepEqual(body, {
    q: "refund",
    filter,
    distinct: "session_id",
    matchingStrategy: "all",
    offset: 4,
    limit: 2,
    attributesToRetrieve: ["session_id"],
  });
  const [multi] = meili.sent("POST", "/multi-search");
  const queries = (json(multi!.body) as { queries: Array<Record<string, unknown>> }).queries;
  assert.equal(queries.length, 3);
  assert.deepEqual(queries[0]!["filter"], [...filter, 'session_id = "s-a1"']);
  assert.deepEqual(queries[1]!["filter"], [...filter, 'session_id = "s-a3"']);
  assert.equal(queries[0]!["highlightPreTag"], "[[");
  assert.equal(queries[0]!["highlightPostTag"], "]]");
  assert.deepEqual(queries[0]!["attributesToCrop"], ["text"]);
  assert.equal(queries[0]!["limit"], 2);
  assert.ok(
    !(queries[0]!["attributesToRetrieve"] as string[]).includes("stored"),
    "hits never carry the stored bytes",
  );
  assert.equal(queries[0]!["matchingStrategy"], "all", "every word must match, as on SQLite");
  assert.deepEqual(queries[2], { indexUid: INDEX, q: "refund", matchingStrategy: "all", filter, limit: 0 });
  for (const request of meili.requests.filter((r) => r.body.includes('"filter":'))) {
    assert.match(request.body, /tenant = \\"acme\\"/, `${request.method} ${request.path} is tenant-scoped`);
  }

  assert.equal(result.totalHits, 4);
  assert.equal(result.totalSessions, 5);
  assert.deepEqual(
    result.sessions.map((s) => [s.sessionId, s.sessionHits, s.hits.length, s.botId]),
    [
      ["s-a1", 3, 2, "support-bot"],
      ["s-a3", 1, 1, "support-bot"],
    ],
  );
  assert.equal(result.sessions[0]!.hits[0]!.highlight, "…a [[refund]] for…");
  assert.equal(result.sessions[0]!.hits[0]!.timeMs, 1_767_000_000_002);
});

test("an empty query sorts by time; search errors name Meilisearch's code", async (t) => {
  const { meili, open } = await setup(t);
  const backend = await open();
  meili.reply("POST", `/indexes/${INDEX}/search`, {
    status: 200,
    body: { hits: [], query: "", processingTimeMs: 0, limit: 20, offset: 0, estimatedTotalHits: 0 },
  });
  meili.reply("POST", "/multi-search", {
    status: 200,
    body: {
      results: [
        {
          indexUid: INDEX,
          hits: [],
          query: "",
          processingTimeMs: 0,
          limit: 0,
          offset: 0,
          estimatedTotalHits: 0,
        },
      ],
    },
  });
  const empty = await backend.search(query("acme"));
  assert.deepEqual(empty, { sessions: [], totalHits: 0, totalSessions: 0 });
  assert.deepEqual(
    (json(meili.sent("POST", `/indexes/${INDEX}/search`)[0]!.body) as { sort: string[] }).sort,
    ["time:desc"],
  );

  meili.reply("POST", `/indexes/${INDEX}/search`, {
    status: 400,
    body: meiliError("invalid_search_filter", "Attribute `labels` is not filterable.", "invalid_request"),
  });
  await assert.rejects(
    backend.search(query("acme")),
    /meilisearch search failed: invalid_search_filter \(HTTP 400\)/,
  );
  meili.reply("POST", `/indexes/${INDEX}/search`, {
    status: 404,
    body: meiliError("index_not_found", `Index \`${INDEX}\` not found.`),
  });
  await assert.rejects(
    backend.search(query("acme")),
    /index_not_found \(HTTP 404\): Index `sessiontrack_events` not found/,
  );
});

test("getSession fetches the tenant's session documents, orders them by seq and returns the stored bytes", async (t) => {
  const { meili, open } = await setup(t);
  const backend = await open();
  const documents = fixtureDocuments().filter((d) => d.tenant === "acme" && d.sessionId === "s-a1");
  meili.reply("POST", `/indexes/${INDEX}/documents/fetch`, {
    status: 200,
    body: {
      results: [...documents].reverse().map((d) => ({
        tenant: d.tenant,
        seq: d.seq,
        event_id: d.eventId,
        stored: Buffer.from(d.stored).toString("base64"),
      })),
      offset: 0,
      limit: 1000,
      total: documents.length,
    },
  });
  const got = await backend.getSession("acme", "s-a1");
  const [fetch] = meili.sent("POST", `/indexes/${INDEX}/documents/fetch`);
  const body = json(fetch!.body) as Record<string, unknown>;
  assert.deepEqual(body["filter"], ['tenant = "acme"', 'session_id = "s-a1"']);
  assert.equal(body["limit"], 1000);
  assert.deepEqual(
    got.map((bytes) => Buffer.from(bytes)),
    documents.map((d) => Buffer.from(d.stored)),
  );
});

test("erase finds the subject's sessions, deletes by a tenant-scoped filter and reports the task's count", async (t) => {
  const { meili, open } = await setup(t);
  const backend = await open();
  meili.reply("POST", `/indexes/${INDEX}/documents/fetch`, {
    status: 200,
    body: {
      results: [{ session_id: "s-a3" }, { session_id: "s-a1" }, { session_id: "s-a1" }],
      offset: 0,
      limit: 1000,
      total: 3,
    },
  });
  meili.outcomeFor("documentDeletion", {
    status: "succeeded",
    details: { providedIds: 0, deletedDocuments: 7, originalFilter: "…" },
  });
  const result = await backend.erase("acme", { userId: "u1" });
  assert.deepEqual(result, { sessions: ["s-a1", "s-a3"], documentsRemoved: 7 });
  const [fetch] = meili.sent("POST", `/indexes/${INDEX}/documents/fetch`);
  assert.deepEqual((json(fetch!.body) as { filter: string[] }).filter, ['tenant = "acme"', 'user_id = "u1"']);
  const [deletion] = meili.sent("POST", `/indexes/${INDEX}/documents/delete`);
  assert.deepEqual(json(deletion!.body), {
    filter: ['tenant = "acme"', 'user_id = "u1" OR session_id IN ["s-a1", "s-a3"]'],
  });

  meili.outcomeFor("documentDeletion", {
    status: "failed",
    code: "invalid_document_filter",
    message: "bad filter",
  });
  await assert.rejects(
    backend.erase("acme", { sessionId: "s-a2" }),
    /delete documents failed .*invalid_document_filter/,
  );
});

test("finished tasks are pruned with a status and beforeFinishedAt filter", async (t) => {
  const { meili, open } = await setup(t);
  const backend = await open();
  const before = Date.now();
  await backend.pruneTasks();
  const [prune] = meili.sent("DELETE", "/tasks");
  assert.equal(prune!.query.get("statuses"), "succeeded,failed,canceled");
  assert.equal(prune!.query.get("indexUids"), INDEX);
  const cutoff = Date.parse(prune!.query.get("beforeFinishedAt")!);
  assert.ok(Math.abs(before - 600_000 - cutoff) < 5_000, "retention is applied to the cutoff");
  meili.outcomeFor("taskDeletion", { status: "failed", code: "missing_task_filters", message: "no filter" });
  await assert.rejects(backend.pruneTasks(), /delete finished tasks failed .*missing_task_filters/);
});

test("filter strings escape quotes and backslashes", () => {
  assert.equal(filterString('a"b\\c'), '"a\\"b\\\\c"');
});
