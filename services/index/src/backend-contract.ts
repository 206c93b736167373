// The behaviour every IndexBackend must show, written once and run per backend:
// sqlite-contract.test.ts always, meili-contract.test.ts against a real Meilisearch
// when MEILI_URL is set.
import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { Role } from "@sessiontrack/proto";

import type { IndexBackend, IndexDocument, SearchQuery } from "./backend.js";
import { documentFromStoredEvent, labelToken } from "./document.js";
import { fixtureEvents, sessionEvents, T0 } from "./test-fixtures.js";

/** Opens a fresh, empty backend; the suite closes it. */
export type OpenBackend = () => Promise<IndexBackend & { destroy?(): Promise<void> }>;

const MINUTE = 60_000;

/** A search of `tenant` with defaults for everything not given. */
export function query(tenant: string, overrides: Partial<SearchQuery> = {}): SearchQuery {
  return {
    tenant,
    text: "",
    botIds: [],
    userIds: [],
    models: [],
    labels: [],
    sessionIds: [],
    roles: [],
    sinceMs: undefined,
    untilMs: undefined,
    offset: 0,
    limit: 20,
    hitsPerSession: 3,
    preTag: "<mark>",
    postTag: "</mark>",
    ...overrides,
  };
}

/** The fixture corpus as index documents. */
export function fixtureDocuments(): IndexDocument[] {
  return fixtureEvents().map((fixture, index) => documentFromStoredEvent(fixture.stored, index));
}

const ids = (result: { sessions: Array<{ sessionId: string }> }): string[] =>
  result.sessions.map((session) => session.sessionId);

/** Registers the contract suite for one backend. */
export function backendContract(name: string, open: OpenBackend): void {
  describe(`IndexBackend contract: ${name}`, () => {
    const withBackend = async (
      run: (backend: IndexBackend) => Promise<void>,
      documents: IndexDocument[] = fixtureDocuments(),
    ): Promise<void> => {
      const backend = await open();
      try {
        await backend.index(documents);
        await run(backend);
      } finally {
        await backend.destroy?.();
        await backend.close();
      }
    };

    test("full-text search finds the tenant's matching events, grouped by session, with highlights", () =>
      withBackend(async (backend) => {
        const result = await backend.search(query("acme", { text: "refund" }));
        assert.deepEqual(ids(result), ["s-a1"]);
        const session = result.sessions[0]!;
        assert.equal(session.botId, "support-bot");
        assert.equal(session.userId, "u1");
        assert.equal(session.sessionHits, 3, "user message, assistant message and feedback comment");
        assert.equal(result.totalHits, 3);
        assert.equal(session.hits.length, 3);
        for (const hit of session.hits) {
          assert.match(hit.highlight, /<mark>refund<\/mark>/i);
          assert.equal(hit.sessionId, "s-a1");
        }
        const user = session.hits.find((hit) => hit.role === Role.ROLE_USER);
        assert.ok(user !== undefined);
        assert.equal(user.model, "gpt-4o");
        assert.equal(user.provider, "openai");
        assert.equal(user.seq, 2);
        assert.equal(user.timeMs, T0 + MINUTE);

        const limited = await backend.search(query("acme", { text: "refund", hitsPerSession: 1 }));
        assert.equal(limited.sessions[0]!.hits.length, 1);
        assert.equal(limited.sessions[0]!.sessionHits, 3);
      }));

    test("tool calls and custom data strings are searchable", () =>
      withBackend(async (backend) => {
        assert.deepEqual(ids(await backend.search(query("acme", { text: "lookup_order" }))), ["s-a1"]);
        assert.deepEqual(ids(await backend.search(query("acme", { text: "tariffs" }))), ["s-a2"]);
      }));

    test("filters: bot, user, model, labels, session, role", () =>
      withBackend(async (backend) => {
        const parcel = (overrides: Partial<SearchQuery>) =>
          backend.search(query("acme", { text: "parcel", ...overrides }));
        assert.deepEqual(ids(await parcel({})).sort(), ["s-a1", "s-a2"]);
        assert.deepEqual(ids(await parcel({ botIds: ["sales-bot"] })), ["s-a2"]);
        assert.deepEqual(ids(await parcel({ userIds: ["u1"] })), ["s-a1"]);
        assert.deepEqual(ids(await parcel({ models: ["claude-sonnet-4"] })), ["s-a2"]);
        assert.deepEqual(ids(await parcel({ labels: [labelToken("env", "prod")] })), ["s-a1"]);
        assert.deepEqual(ids(await parcel({ sessionIds: ["s-a2", "s-zzz"] })), ["s-a2"]);
        const users = await parcel({ roles: [Role.ROLE_USER] });
        assert.deepEqual(ids(users), ["s-a1"]);
        assert.equal(users.sessions[0]!.sessionHits, 1);
        assert.equal(users.sessions[0]!.hits[0]!.role, Role.ROLE_USER);
        const browse = await backend.search(query("acme", { labels: [labelToken("env", "staging")] }));
        assert.deepEqual(ids(browse), ["s-a2"]);
        assert.equal(browse.totalHits, 3);
        assert.deepEqual(ids(await parcel({ botIds: ["sales-bot"], userIds: ["u1"] })), []);
      }));

    test("time range: since inclusive, until exclusive", () =>
      withBackend(async (backend) => {
        const result = await backend.search(
          query("acme", { sinceMs: T0 + 60 * MINUTE, untilMs: T0 + 121 * MINUTE }),
        );
        assert.deepEqual(ids(result), ["s-a3", "s-a2"], "most recent session first when there is no query");
        assert.equal(result.sessions[0]!.sessionHits, 1);
        assert.equal(result.sessions[1]!.sessionHits, 3);
        assert.equal(result.totalHits, 4);
      }));

    test("pagination walks every session once", () =>
      withBackend(async (backend) => {
        const seen: string[] = [];
        for (let offset = 0; offset < 10; offset += 1) {
          const page = await backend.search(query("acme", { offset, limit: 1 }));
          if (page.sessions.length === 0) break;
          assert.equal(page.totalSessions, 4);
          seen.push(...ids(page));
        }
        assert.deepEqual(seen, ["s-shared", "s-a3", "s-a2", "s-a1"]);
      }));

    test("highlight tags are configurable", () =>
      withBackend(async (backend) => {
        const result = await backend.search(query("acme", { text: "norway", preTag: "[[", postTag: "]]" }));
        assert.deepEqual(ids(result), ["s-a2"]);
        assert.ok(result.sessions[0]!.hits.every((hit) => /\[\[norway\]\]/i.test(hit.highlight)));
      }));

    test("a replayed event overwrites, never duplicates", () =>
      withBackend(async (backend) => {
        const before = await backend.search(query("acme"));
        await backend.index(fixtureDocuments());
        await backend.index(fixtureDocuments().slice(0, 3));
        const after = await backend.search(query("acme"));
        assert.equal(after.totalHits, before.totalHits);
        assert.equal((await backend.getSession("acme", "s-a1")).length, 5);
        assert.equal((await backend.search(query("acme", { text: "refund" }))).totalHits, 3);
      }));

    test("getSession returns the stored bytes unchanged, ordered by seq", () =>
      withBackend(async (backend) => {
        const expected = sessionEvents("acme", "s-a1").map((fixture) => fixture.stored);
        const got = await backend.getSession("acme", "s-a1");
        assert.equal(got.length, expected.length);
        got.forEach((bytes, index) => assert.ok(Buffer.from(bytes).equals(expected[index]!)));
        assert.deepEqual(await backend.getSession("acme", "no-such-session"), []);
      }, fixtureDocuments().reverse()));

    test("tenant isolation: a tenant never sees another's events, even by session id", () =>
      withBackend(async (backend) => {
        assert.deepEqual(ids(await backend.search(query("globex", { text: "refund" }))).sort(), [
          "s-g1",
          "s-shared",
        ]);
        assert.deepEqual(ids(await backend.search(query("acme", { text: "globex" }))), []);
        assert.deepEqual(ids(await backend.search(query("acme", { sessionIds: ["s-g1"] }))), []);
        assert.deepEqual(await backend.getSession("acme", "s-g1"), []);
        const shared = await backend.getSession("acme", "s-shared");
        assert.equal(shared.length, 1);
        assert.ok(Buffer.from(shared[0]!).equals(sessionEvents("acme", "s-shared")[0]!.stored));
        const globexShared = await backend.search(query("globex", { sessionIds: ["s-shared"] }));
        assert.equal(globexShared.sessions[0]!.userId, "u9");
        assert.equal(globexShared.totalHits, 1);
        assert.deepEqual(ids(await backend.search(query("nobody"))), []);
      }));

    test("erase a subject removes every session of theirs in that tenant only", () =>
      withBackend(async (backend) => {
        const erased = await backend.erase("acme", { userId: "u1" });
        assert.deepEqual([...erased.sessions].sort(), ["s-a1", "s-a3"]);
        assert.equal(erased.documentsRemoved, 7);
        assert.deepEqual(ids(await backend.search(query("acme", { text: "refund" }))), []);
        assert.deepEqual(await backend.getSession("acme", "s-a1"), []);
        assert.deepEqual(ids(await backend.search(query("globex", { userIds: ["u1"] }))), ["s-g1"]);
        assert.equal((await backend.search(query("acme"))).totalHits, 4);
      }));

    test("erase a session", () =>
      withBackend(async (backend) => {
        assert.deepEqual(await backend.erase("acme", { sessionId: "s-a2" }), {
          sessions: ["s-a2"],
          documentsRemoved: 3,
        });
        assert.deepEqual(await backend.getSession("acme", "s-a2"), []);
        assert.deepEqual(await backend.erase("acme", { sessionId: "s-a2" }), {
          sessions: [],
          documentsRemoved: 0,
        });
        assert.equal((await backend.getSession("globex", "s-shared")).length, 1);
      }));
  });
}
