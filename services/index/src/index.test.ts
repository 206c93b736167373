import assert from "node:assert/strict";
import { test } from "node:test";

import * as grpc from "@grpc/grpc-js";

import {
  BinaryReader,
  BinaryWriter,
  Event,
  GetSessionResponse,
  IndexEventsRequest,
  Role,
  SearchRequest,
  StoredEvent,
  type IndexEventsResponse,
  type IndexServiceEraseResponse,
  type SearchResponse,
} from "@sessiontrack/proto";

import { fixtureEvents, sessionEvents, storedEventBytes, T0 } from "./test-fixtures.js";
import { bearer, call, callRaw, startIndexHarness, type IndexHarness } from "./test-harness.js";

const MINUTE = 60_000;

/** An IndexEventsRequest made of StoredEvent bytes exactly as given. */
function indexEventsBytes(events: readonly Uint8Array[]): Buffer {
  const writer = new BinaryWriter();
  for (const event of events) writer.uint32((1 << 3) | 2).bytes(event);
  return Buffer.from(writer.finish());
}

async function indexFixtures(h: IndexHarness): Promise<number> {
  const { error, response } = await callRaw(
    h.raw,
    "IndexEvents",
    indexEventsBytes(fixtureEvents().map((fixture) => fixture.stored)),
    bearer(h.keys.service),
  );
  assert.equal(error, null);
  return (await import("@sessiontrack/proto")).IndexEventsResponse.decode(response!).indexed;
}

function search(h: IndexHarness, key: string, request: Partial<SearchRequest>): Promise<SearchResponse> {
  return call(h.client.search.bind(h.client), SearchRequest.fromPartial(request), bearer(key));
}

async function searchError(
  h: IndexHarness,
  key: string,
  request: Partial<SearchRequest>,
): Promise<grpc.ServiceError> {
  try {
    await search(h, key, request);
  } catch (error) {
    return error as grpc.ServiceError;
  }
  assert.fail("expected the search to fail");
}

/** The StoredEvent bytes of a GetSessionResponse, split without decoding them. */
function storedEventsOf(response: Buffer): Buffer[] {
  const reader = new BinaryReader(response);
  const out: Buffer[] = [];
  while (reader.pos < reader.len) {
    const [field] = reader.tag();
    assert.equal(field, 1);
    out.push(Buffer.from(reader.bytes()));
  }
  return out;
}

test("indexed events are searchable over gRPC: text, highlights, grouping, filters, time range", async (t) => {
  const h = await startIndexHarness(t);
  assert.equal(await indexFixtures(h), fixtureEvents().length);

  const refund = await search(h, h.keys.acmeRead, { query: "refund" });
  assert.deepEqual(
    refund.sessions.map((s) => s.sessionId),
    ["s-a1"],
  );
  assert.equal(refund.totalHits, 3);
  assert.equal(refund.nextPageToken, "");
  const session = refund.sessions[0]!;
  assert.equal(session.sessionHits, 3);
  assert.equal(session.botId, "support-bot");
  assert.ok(session.hits.every((hit) => hit.highlight.includes("<mark>refund</mark>")));
  const userHit = session.hits.find((hit) => hit.role === Role.ROLE_USER)!;
  assert.deepEqual(userHit.time, new Date(T0 + MINUTE));
  assert.equal(userHit.eventId, "acme-s-a1-2");
  assert.equal(userHit.seq, 2);

  const tagged = await search(h, h.keys.acmeRead, {
    query: "password reset",
    highlightPreTag: "**",
    highlightPostTag: "**",
    hitsPerSession: 1,
  });
  assert.deepEqual(
    tagged.sessions.map((s) => [s.sessionId, s.sessionHits, s.hits.length]),
    [["s-a3", 2, 1]],
  );
  assert.match(tagged.sessions[0]!.hits[0]!.highlight, /\*\*password\*\* \*\*reset\*\*/);

  const filtered = await search(h, h.keys.acmeRead, {
    query: "parcel",
    labels: { env: "staging" },
    roles: [Role.ROLE_ASSISTANT],
    models: ["claude-sonnet-4"],
  });
  assert.deepEqual(
    filtered.sessions.map((s) => [s.sessionId, s.sessionHits]),
    [["s-a2", 1]],
  );

  const window = await search(h, h.keys.acmeRead, {
    since: new Date(T0 + 60 * MINUTE),
    until: new Date(T0 + 121 * MINUTE),
  });
  assert.deepEqual(
    window.sessions.map((s) => [s.sessionId, s.sessionHits]),
    [
      ["s-a3", 1],
      ["s-a2", 3],
    ],
  );
});

test("page tokens walk every session once and fit only their own query", async (t) => {
  const h = await startIndexHarness(t);
  await indexFixtures(h);
  const seen: string[] = [];
  let pageToken = "";
  let pages = 0;
  do {
    const page = await search(h, h.keys.acmeRead, { pageSize: 1, pageToken });
    assert.equal(page.totalHits, 11);
    seen.push(...page.sessions.map((s) => s.sessionId));
    pageToken = page.nextPageToken;
    pages += 1;
  } while (pageToken !== "" && pages < 10);
  assert.deepEqual(seen, ["s-shared", "s-a3", "s-a2", "s-a1"]);

  const first = await search(h, h.keys.acmeRead, { pageSize: 1 });
  const misuse = await searchError(h, h.keys.acmeRead, {
    pageSize: 1,
    pageToken: first.nextPageToken,
    query: "x",
  });
  assert.equal(misuse.code, grpc.status.INVALID_ARGUMENT);
  assert.match(misuse.details, /page_token: was issued for a different query/);
  const forged = await searchError(h, h.keys.acmeRead, { pageToken: "not-a-token" });
  assert.equal(forged.code, grpc.status.INVALID_ARGUMENT);
  assert.match(forged.details, /page_token/);
});

test("a replayed batch overwrites: no duplicate hits, same transcript", async (t) => {
  const h = await startIndexHarness(t);
  await indexFixtures(h);
  await indexFixtures(h);
  const all = await search(h, h.keys.acmeRead, {});
  assert.equal(all.totalHits, 11);
  assert.equal((await search(h, h.keys.acmeRead, { query: "refund" })).totalHits, 3);
  const { response } = await callRaw(
    h.raw,
    "GetSession",
    Buffer.from([10, 4, ...Buffer.from("s-a1")]),
    bearer(h.keys.acmeRead),
  );
  assert.equal(storedEventsOf(response!).length, 5);
});

test("GetSession returns the StoredEvents byte for byte, ordered by seq", async (t) => {
  const h = await startIndexHarness(t);
  const events = sessionEvents("acme", "s-a1").map((fixture) => fixture.stored);
  // A StoredEvent carrying redaction hits and a field this build does not know: both kept.
  const sixth = Event.fromPartial({
    eventId: "acme-s-a1-6",
    sessionId: "s-a1",
    seq: 6,
    time: new Date(T0 + 6 * MINUTE),
    payload: { $case: "feedback", value: { comment: "mail me at [email]", score: 1 } },
  });
  const withExtras = Buffer.concat([
    StoredEvent.encode({
      tenant: "acme",
      eventId: sixth.eventId,
      sessionId: "s-a1",
      seq: 6,
      receivedAt: new Date(T0 + 6 * MINUTE),
      event: Buffer.from(Event.encode(sixth).finish()),
      redactions: [{ rule: "email", path: "feedback.comment", action: "mask", count: 1 }],
    }).finish(),
    new BinaryWriter()
      .uint32((15 << 3) | 2)
      .string("future field")
      .finish(),
  ]);
  const sent = [...events, withExtras];
  const { error } = await callRaw(
    h.raw,
    "IndexEvents",
    indexEventsBytes([...sent].reverse()),
    bearer(h.keys.service),
  );
  assert.equal(error, null);
  const { error: getError, response } = await callRaw(
    h.raw,
    "GetSession",
    Buffer.from([10, 4, ...Buffer.from("s-a1")]),
    bearer(h.keys.acmeRead),
  );
  assert.equal(getError, null);
  const got = storedEventsOf(response!);
  assert.equal(got.length, sent.length);
  got.forEach((bytes, index) => assert.ok(bytes.equals(sent[index]!), `event ${index} differs`));
  const decoded = GetSessionResponse.decode(response!);
  assert.deepEqual(
    decoded.events.map((event) => event.seq),
    [1, 2, 3, 4, 5, 6],
  );
  assert.deepEqual(Event.decode(decoded.events[1]!.event), sessionEvents("acme", "s-a1")[1]!.event);
  assert.deepEqual(decoded.events[5]!.redactions, [
    { rule: "email", path: "feedback.comment", action: "mask", count: 1 },
  ]);
});

test("tenant isolation: a key of one tenant never reads another's sessions", async (t) => {
  const h = await startIndexHarness(t);
  await indexFixtures(h);
  const getSession = (key: string, sessionId: string): Promise<GetSessionResponse> =>
    call(h.client.getSession.bind(h.client), { sessionId }, bearer(key));

  await assert.rejects(getSession(h.keys.acmeRead, "s-g1"), (error: grpc.ServiceError) => {
    assert.equal(error.code, grpc.status.NOT_FOUND);
    assert.match(error.details, /session "s-g1" not found in tenant "acme"/);
    return true;
  });
  assert.equal((await getSession(h.keys.globexAdmin, "s-g1")).events.length, 2);
  const acmeShared = await getSession(h.keys.acmeRead, "s-shared");
  const globexShared = await getSession(h.keys.globexAdmin, "s-shared");
  assert.deepEqual(
    acmeShared.events.map((e) => e.tenant),
    ["acme"],
  );
  assert.deepEqual(
    globexShared.events.map((e) => e.tenant),
    ["globex"],
  );

  assert.deepEqual((await search(h, h.keys.acmeRead, { sessionIds: ["s-g1"] })).sessions, []);
  assert.deepEqual((await search(h, h.keys.acmeRead, { query: "globex" })).sessions, []);
  const globex = await search(h, h.keys.globexAdmin, { query: "refund" });
  assert.deepEqual(globex.sessions.map((s) => s.sessionId).sort(), ["s-g1", "s-shared"]);
  assert.ok(globex.sessions.every((s) => s.hits.every((hit) => !hit.eventId.startsWith("acme-"))));
});

test("Erase needs a service key and removes a subject's or a session's documents", async (t) => {
  const h = await startIndexHarness(t);
  await indexFixtures(h);
  const erase = (key: string, request: Parameters<typeof h.client.erase>[0]) =>
    call<typeof request, IndexServiceEraseResponse>(h.client.erase.bind(h.client), request, bearer(key));

  await assert.rejects(
    erase(h.keys.globexAdmin, { tenant: "acme", target: { target: { $case: "userId", value: "u1" } } }),
    (error: grpc.ServiceError) =>
      error.code === grpc.status.PERMISSION_DENIED && /service key/.test(error.details),
  );
  const subject = await erase(h.keys.service, {
    tenant: "acme",
    target: { target: { $case: "userId", value: "u1" } },
  });
  assert.deepEqual(subject, { sessions: ["s-a1", "s-a3"], documentsRemoved: 7 });
  assert.deepEqual((await search(h, h.keys.acmeRead, { query: "refund" })).sessions, []);
  assert.equal(
    (await search(h, h.keys.globexAdmin, { userIds: ["u1"] })).totalHits,
    2,
    "other tenant untouched",
  );

  const session = await erase(h.keys.service, {
    tenant: "acme",
    target: { target: { $case: "sessionId", value: "s-a2" } },
  });
  assert.deepEqual(session, { sessions: ["s-a2"], documentsRemoved: 3 });
  await assert.rejects(
    erase(h.keys.service, { tenant: "acme", target: undefined }),
    (error: grpc.ServiceError) =>
      error.code === grpc.status.INVALID_ARGUMENT &&
      /target: must name a user_id or a session_id/.test(error.details),
  );
});

test("bad input gets a clear error naming what is wrong", async (t) => {
  const h = await startIndexHarness(t);
  await indexFixtures(h);
  const expectError = async (
    method: "IndexEvents" | "Search" | "GetSession" | "Erase",
    bytes: Buffer,
    key: string | undefined,
    code: grpc.status,
    details: RegExp,
  ): Promise<void> => {
    const metadata = key === undefined ? new grpc.Metadata() : bearer(key);
    const { error } = await callRaw(h.raw, method, bytes, metadata);
    assert.ok(error !== null, `${method} should fail`);
    assert.equal(error.code, code, `${method}: ${error.details}`);
    assert.match(error.details, details);
  };
  const searchBytes = (request: Partial<SearchRequest>) =>
    Buffer.from(SearchRequest.encode(SearchRequest.fromPartial(request)).finish());

  await expectError(
    "Search",
    Buffer.from([0x0a, 0xff, 0x01]),
    h.keys.acmeRead,
    grpc.status.INVALID_ARGUMENT,
    /not a valid sessiontrack\.v1\.SearchRequest/,
  );
  await expectError(
    "Search",
    searchBytes({}),
    "st_unknown-key-0000000000000",
    grpc.status.UNAUTHENTICATED,
    /unknown API key/,
  );
  await expectError(
    "Search",
    searchBytes({}),
    undefined,
    grpc.status.UNAUTHENTICATED,
    /missing "authorization/,
  );
  await expectError(
    "Search",
    searchBytes({}),
    h.keys.acmeIngest,
    grpc.status.PERMISSION_DENIED,
    /needs one of: read, admin/,
  );
  await expectError(
    "Search",
    searchBytes({ pageSize: 101 }),
    h.keys.acmeRead,
    grpc.status.INVALID_ARGUMENT,
    /^page_size: is 101; at most 100/,
  );
  await expectError(
    "Search",
    searchBytes({ hitsPerSession: 51 }),
    h.keys.acmeRead,
    grpc.status.INVALID_ARGUMENT,
    /^hits_per_session: is 51/,
  );
  await expectError(
    "Search",
    searchBytes({ roles: [Role.ROLE_UNSPECIFIED] }),
    h.keys.acmeRead,
    grpc.status.INVALID_ARGUMENT,
    /^roles\[0\]/,
  );
  await expectError(
    "Search",
    searchBytes({ since: new Date(T0), until: new Date(T0) }),
    h.keys.acmeRead,
    grpc.status.INVALID_ARGUMENT,
    /^until: must be later than since/,
  );
  await expectError(
    "Search",
    searchBytes({ query: "x".repeat(1001) }),
    h.keys.acmeRead,
    grpc.status.INVALID_ARGUMENT,
    /^query: is 1001 characters/,
  );
  await expectError(
    "GetSession",
    Buffer.alloc(0),
    h.keys.acmeRead,
    grpc.status.INVALID_ARGUMENT,
    /^session_id: is required/,
  );
  await expectError(
    "IndexEvents",
    indexEventsBytes([]),
    h.keys.acmeRead,
    grpc.status.PERMISSION_DENIED,
    /needs a service key/,
  );

  // One bad event rejects the whole batch: nothing of it is written.
  const good = storedEventBytes(
    "acme",
    Event.fromPartial({ eventId: "new-1", sessionId: "s-new", seq: 1, time: new Date(T0) }),
  );
  const badInner = Buffer.from(
    StoredEvent.encode({
      tenant: "acme",
      eventId: "new-2",
      sessionId: "s-new",
      seq: 2,
      receivedAt: new Date(T0),
      event: Buffer.from([0x0a, 0x05, 0x61]),
      redactions: [],
    }).finish(),
  );
  await expectError(
    "IndexEvents",
    indexEventsBytes([good, badInner]),
    h.keys.service,
    grpc.status.INVALID_ARGUMENT,
    /^events\[1\]\.event: not a valid sessiontrack\.v1\.Event/,
  );
  const mismatched = storedEventBytes(
    "acme",
    Event.fromPartial({ eventId: "other", sessionId: "s-new", seq: 3, time: new Date(T0) }),
  );
  const relabelled = Buffer.from(
    StoredEvent.encode({ ...StoredEvent.decode(mismatched), eventId: "new-3" }).finish(),
  );
  await expectError(
    "IndexEvents",
    indexEventsBytes([relabelled]),
    h.keys.service,
    grpc.status.INVALID_ARGUMENT,
    /^events\[0\]\.event\.event_id: is "other" but the StoredEvent says "new-3"/,
  );
  await expectError(
    "IndexEvents",
    Buffer.from([0x08, 0x01]),
    h.keys.service,
    grpc.status.INVALID_ARGUMENT,
    /IndexEventsRequest: field 1 \(events\) has wire type 0/,
  );
  await expectError(
    "GetSession",
    Buffer.from([10, 5, ...Buffer.from("s-new")]),
    h.keys.acmeRead,
    grpc.status.NOT_FOUND,
    /s-new/,
  );
});

test("/metrics reports documents indexed, search latency and backend errors", async (t) => {
  const h = await startIndexHarness(t);
  const indexed: IndexEventsResponse = await call(
    h.client.indexEvents.bind(h.client),
    IndexEventsRequest.fromPartial({ events: fixtureEvents().map((f) => StoredEvent.decode(f.stored)) }),
    bearer(h.keys.service),
  );
  assert.equal(indexed.indexed, fixtureEvents().length);
  await search(h, h.keys.acmeRead, { query: "refund" });
  const metrics = await (await fetch(`http://${h.server.metricsAddress}/metrics`)).text();
  assert.match(
    metrics,
    new RegExp(`^sessiontrack_index_documents_indexed_total ${fixtureEvents().length}$`, "m"),
  );
  assert.match(metrics, /^sessiontrack_index_search_duration_seconds_count 1$/m);
  assert.match(metrics, /^sessiontrack_index_requests_total\{rpc="Search",code="OK"\} 1$/m);
  assert.match(metrics, /sessiontrack_index_backend_errors_total/);
  assert.equal((await fetch(`http://${h.server.metricsAddress}/readyz`)).status, 200);
});
