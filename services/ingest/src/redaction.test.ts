// Privacy at ingest, end to end: events sent over real gRPC to a real ingest are in the
// WAL on disk already redacted, with StoredEvent.redactions saying what fired where.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test, type TestContext } from "node:test";

import * as grpc from "@grpc/grpc-js";

import { ConfigError } from "@sessiontrack/errors";
import { AppendResponse, Event, Role, StoredEvent, StreamResponse } from "@sessiontrack/proto";
import { createLogger, generateApiKey, writeTenantsFile, type TenantEntry } from "@sessiontrack/runtime";
import { scanWal } from "@sessiontrack/wal";

import { loadIngestConfig } from "./config.js";
import { startIngestServer, walDirectory } from "./server.js";
import { appendRaw, auth, encodeBatch, encodeEvent, openStream, validEvent } from "./test-harness.js";

const logger = createLogger({ name: "ingest-redaction-test", level: "silent" });

/** Starts ingest with the given tenants (each gets one ingest key); returns keys by tenant. */
async function startWithTenants(
  t: TestContext,
  tenants: Array<Omit<TenantEntry, "keys">>,
): Promise<{
  dir: string;
  keys: Map<string, string>;
  client: grpc.Client;
  metricsAddress: string;
  close(): Promise<void>;
}> {
  const dir = mkdtempSync(join(tmpdir(), "sessiontrack-ingest-redaction-"));
  const keys = new Map<string, string>();
  const entries = tenants.map((tenant) => {
    const key = generateApiKey();
    keys.set(tenant.name, key.key);
    return {
      ...tenant,
      keys: [{ id: `${tenant.name}-writer`, sha256: key.sha256, roles: ["ingest" as const] }],
    };
  });
  const tenantsFile = join(dir, "tenants.yaml");
  writeTenantsFile(tenantsFile, entries);
  const config = loadIngestConfig(
    {
      "data-dir": join(dir, "data"),
      tenants: tenantsFile,
      listen: "127.0.0.1:0",
      "metrics-listen": "127.0.0.1:0",
      "shutdown-grace-ms": "2000",
    },
    {},
  );
  const server = await startIngestServer(config, logger);
  const client = new grpc.Client(server.address, grpc.credentials.createInsecure());
  let closed = false;
  const close = async (): Promise<void> => {
    if (closed) return;
    closed = true;
    client.close();
    await server.close();
  };
  t.after(async () => {
    await close();
    rmSync(dir, { recursive: true, force: true });
  });
  return { dir, keys, client, metricsAddress: server.metricsAddress, close };
}

/** Every StoredEvent in the WAL on disk, read as `sessiontrack wal dump` reads it. */
async function storedOnDisk(dataDir: string): Promise<Array<{ stored: StoredEvent; raw: Buffer }>> {
  const out: Array<{ stored: StoredEvent; raw: Buffer }> = [];
  for await (const entry of scanWal(walDirectory(dataDir))) {
    assert.ok(entry.checksumOk && entry.data !== null, `record ${entry.lsn} is damaged`);
    out.push({ stored: StoredEvent.decode(entry.data), raw: Buffer.from(entry.data) });
  }
  return out;
}

const EMAIL = "jane.doe@example.com";
const CARD = "4111 1111 1111 1111";
const PHONE = "+44 20 7946 0958";
const AWS_KEY = "AKIAIOSFODNN7EXAMPLE";

test("an event sent over gRPC is in the WAL already redacted, with its redaction hits", async (t) => {
  const ingest = await startWithTenants(t, [{ name: "acme" }]);
  const withPii = validEvent({
    labels: { env: "prod", contact: EMAIL },
    payload: {
      $case: "message",
      value: {
        turnId: "turn-1",
        turnIndex: 0,
        role: Role.ROLE_USER,
        provider: "",
        model: "",
        parts: [
          { kind: { $case: "text", value: { text: `I'm ${EMAIL}, card ${CARD}, call ${PHONE}` } } },
          {
            kind: {
              $case: "toolCall",
              value: { callId: "c1", name: "deploy", argumentsJson: `{"aws_key":"${AWS_KEY}"}` },
            },
          },
        ],
        usage: undefined,
        finishReason: "",
        latencyMs: 0,
      },
    },
  });
  const clean = validEvent();
  const { error, response } = await appendRaw(
    ingest.client,
    encodeBatch([encodeEvent(withPii), encodeEvent(clean)]),
    auth(`Bearer ${ingest.keys.get("acme")!}`),
  );
  assert.equal(error, null);
  assert.deepEqual(AppendResponse.decode(response!), { accepted: 2, duplicates: 0 });
  const metrics = await (await fetch(`http://${ingest.metricsAddress}/metrics`)).text();
  assert.match(metrics, /^sessiontrack_ingest_redactions_total\{rule="email",action="mask"\} 2$/m);
  assert.match(metrics, /^sessiontrack_ingest_redacted_events_total 1$/m);
  await ingest.close();

  const records = await storedOnDisk(join(ingest.dir, "data"));
  assert.equal(records.length, 2);
  const [redacted, untouched] = records;
  for (const secret of [EMAIL, CARD, PHONE, AWS_KEY]) {
    assert.equal(redacted!.raw.includes(secret), false, `${secret} reached the WAL`);
  }
  const event = Event.decode(redacted!.stored.event);
  assert.deepEqual(event.labels, { env: "prod", contact: "[email]" });
  assert.equal(event.payload?.$case, "message");
  const [textPart, toolPart] = event.payload.value.parts;
  assert.deepEqual(textPart?.kind, {
    $case: "text",
    value: { text: "I'm [email], card [payment_card], call [phone]" },
  });
  assert.equal(toolPart?.kind?.$case, "toolCall");
  assert.equal(toolPart.kind.value.argumentsJson, '{"aws_key":"[api_key]"}');
  const hits = redacted!.stored.redactions
    .map((hit) => `${hit.path} ${hit.rule} ${hit.action} ${hit.count}`)
    .sort();
  assert.deepEqual(hits, [
    "labels.contact email mask 1",
    "message.parts[0].text email mask 1",
    "message.parts[0].text payment_card mask 1",
    "message.parts[0].text phone mask 1",
    "message.parts[1].tool_call.arguments_json api_key mask 1",
  ]);
  // The rest of the event is as sent.
  assert.equal(event.eventId, withPii.eventId);
  assert.equal(redacted!.stored.eventId, withPii.eventId);
  // A clean event is stored byte for byte as sent, with no hits.
  assert.deepEqual(Buffer.from(untouched!.stored.event), encodeEvent(clean));
  assert.deepEqual(untouched!.stored.redactions, []);
});

test("each tenant's rules apply: hash with its own salt, custom rules, drop, detectors off", async (t) => {
  const ingest = await startWithTenants(t, [
    {
      name: "acme",
      redaction: {
        hashSalt: "acme-salt-0123456789abcdef",
        detectors: { email: "hash", ip_address: "off", payment_card: "drop" },
        rules: [{ name: "order_id", pattern: "\\bORD-\\d{6}\\b", action: "mask" }],
      },
    },
    { name: "globex", redaction: { hashSalt: "globex-salt-0123456789abcdef", detectors: { email: "hash" } } },
  ]);
  const send = async (tenant: string, text: string): Promise<void> => {
    const call = openStream(ingest.client, auth(`Bearer ${ingest.keys.get(tenant)!}`));
    const acked = new Promise<StreamResponse>((resolve, reject) => {
      call.on("data", (bytes: Buffer) => resolve(StreamResponse.decode(bytes)));
      call.on("error", reject);
    });
    const event = validEvent({
      payload: {
        $case: "message",
        value: {
          turnId: "t",
          turnIndex: 0,
          role: Role.ROLE_USER,
          provider: "",
          model: "",
          parts: [{ kind: { $case: "text", value: { text } } }],
          usage: undefined,
          finishReason: "",
          latencyMs: 0,
        },
      },
    });
    call.write(encodeBatch([encodeEvent(event)], 1));
    const response = await acked;
    call.end();
    assert.equal(response.result?.$case, "ack");
  };
  await send("acme", `Order ORD-123456 for ${EMAIL} from 192.0.2.7`);
  await send("acme", `Same person: ${EMAIL.toUpperCase()}`);
  await send("globex", EMAIL);
  await send("acme", `card ${CARD} please`);
  await ingest.close();

  const records = await storedOnDisk(join(ingest.dir, "data"));
  const texts = records.map(({ stored }) => {
    const payload = Event.decode(stored.event).payload;
    assert.equal(payload?.$case, "message");
    const kind = payload.value.parts[0]?.kind;
    assert.equal(kind?.$case, "text");
    return kind.value.text;
  });
  const token = /\[email:([0-9a-f]{16})\]/;
  assert.match(texts[0]!, /^Order \[order_id\] for \[email:[0-9a-f]{16}\] from 192\.0\.2\.7$/);
  assert.equal(
    token.exec(texts[0]!)![1],
    token.exec(texts[1]!)![1],
    "stable per tenant, so analytics can join",
  );
  assert.notEqual(token.exec(texts[0]!)![1], token.exec(texts[2]!)![1], "different tenant, different salt");
  assert.equal(texts[3], "", "drop removes the field");
  assert.deepEqual(records[0]!.stored.redactions.map((hit) => `${hit.rule}:${hit.action}`).sort(), [
    "email:hash",
    "order_id:mask",
  ]);
  assert.deepEqual(records[3]!.stored.redactions, [
    { rule: "payment_card", path: "message.parts[0].text", action: "drop", count: 1 },
  ]);
  assert.equal(records[0]!.stored.tenant, "acme");
  assert.equal(records[2]!.stored.tenant, "globex");
});

test("ingest refuses to start on a bad redaction rule, naming the tenant and the rule", async () => {
  const dir = mkdtempSync(join(tmpdir(), "sessiontrack-ingest-redaction-"));
  try {
    const key = generateApiKey();
    const start = async (redaction: TenantEntry["redaction"]): Promise<void> => {
      const tenantsFile = join(dir, "tenants.yaml");
      writeTenantsFile(tenantsFile, [
        {
          name: "acme",
          keys: [{ id: "w", sha256: key.sha256, roles: ["ingest"] }],
          ...(redaction ? { redaction } : {}),
        },
      ]);
      const config = loadIngestConfig(
        {
          "data-dir": join(dir, "data"),
          tenants: tenantsFile,
          listen: "127.0.0.1:0",
          "metrics-listen": "127.0.0.1:0",
        },
        {},
      );
      const server = await startIngestServer(config, logger);
      await server.close();
    };
    await assert.rejects(
      start({ rules: [{ name: "order_id", pattern: "ORD-(\\d+" }] }),
      (error: unknown) =>
        error instanceof ConfigError &&
        /tenant "acme", rule "order_id", is not a valid regular expression/.test(error.message),
    );
    await assert.rejects(
      start({ detectors: { email: "hash" } }),
      (error: unknown) =>
        error instanceof ConfigError &&
        /tenant "acme" redaction: hashSalt .* email uses action hash/.test(error.message),
    );
    await assert.rejects(
      start({ detectors: { emails: "mask" } } as never),
      (error: unknown) =>
        error instanceof ConfigError && /tenants\.0\.redaction\.detectors.*emails/s.test(error.message),
    );
    await assert.rejects(
      start({ hashSalt: "short", detectors: { email: "hash" } }),
      (error: unknown) =>
        error instanceof ConfigError &&
        /tenants\.0\.redaction\.hashSalt: hashSalt must be at least 16 characters/.test(error.message),
    );
    await assert.rejects(
      start({ rules: [{ name: "anything", pattern: ".*" }] }),
      (error: unknown) =>
        error instanceof ConfigError &&
        /tenant "acme" redaction rule 0 \("anything"\).*empty string/.test(error.message),
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
