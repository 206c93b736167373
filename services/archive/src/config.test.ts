import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";

import { ConfigError } from "@sessiontrack/errors";

import { loadArchiveConfig } from "./config.js";
import { KeyEncryptionKeyDirectory, parseKeyMaterial } from "./keys.js";
import { RetentionPolicies } from "./policy.js";

const base = { tenants: "/etc/st/tenants.yaml", "kek-dir": "/etc/st/keks", "data-dir": "/var/lib/st" };

test("defaults: local store on 127.0.0.1:7072, metrics on 9466, keep forever", () => {
  const config = loadArchiveConfig(base, {});
  assert.deepEqual(config.listen, { host: "127.0.0.1", port: 7072 });
  assert.deepEqual(config.metricsListen, { host: "127.0.0.1", port: 9466 });
  assert.equal(config.store, "local");
  assert.equal(config.retentionDays, 0);
  assert.equal(config.s3Bucket, "sessiontrack");
  assert.ok(Object.isFrozen(config));
});

test("every bad setting is named at once", () => {
  assert.throws(
    () =>
      loadArchiveConfig({ store: "s3", listen: "nowhere", "retention-days": "-1", "s3-bucket": "A_B" }, {}),
    (error: unknown) => {
      assert.ok(error instanceof ConfigError);
      for (const name of ["listen:", "tenantsFile:", "kekDir:", "retentionDays:", "s3Bucket:"]) {
        assert.ok(error.message.includes(name), `${name} missing from: ${error.message}`);
      }
      return true;
    },
  );
  assert.throws(() => loadArchiveConfig({ ...base, store: "gcs" }, {}), /store: must be "local" or "s3"/);
  assert.throws(
    () => loadArchiveConfig({ ...base, store: "s3" }, {}),
    /s3Endpoint: is required with --store s3[\s\S]*s3AccessKey: is required[\s\S]*s3SecretKey: is required/,
  );
  assert.throws(
    () => loadArchiveConfig({ tenants: "t", "kek-dir": "k" }, {}),
    /dataDir: is required with --store local/,
  );
  assert.throws(
    () => loadArchiveConfig({ ...base, "cold-after-days": "30", "retention-days": "30" }, {}),
    /coldAfterDays: must be below retention-days/,
  );
});

test("S3 secrets come from flags, variables or *_FILE variables", (t) => {
  const dir = mkdtempSync(join(tmpdir(), "sessiontrack-archive-config-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, "secret"), "s3cr3t-from-file\n");
  const config = loadArchiveConfig(
    { ...base, store: "s3", "s3-endpoint": "http://127.0.0.1:9000" },
    { SESSIONTRACK_S3_ACCESS_KEY: "archive", SESSIONTRACK_S3_SECRET_KEY_FILE: join(dir, "secret") },
  );
  assert.equal(config.s3AccessKey, "archive");
  assert.equal(config.s3SecretKey, "s3cr3t-from-file");
  assert.throws(
    () =>
      loadArchiveConfig({ ...base, store: "s3" }, { SESSIONTRACK_S3_SECRET_KEY_FILE: join(dir, "missing") }),
    /SESSIONTRACK_S3_SECRET_KEY_FILE: cannot read/,
  );
});

test("policy file: per-tenant overrides over the defaults; bad entries are named", (t) => {
  const dir = mkdtempSync(join(tmpdir(), "sessiontrack-archive-policy-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, "policy.yaml");
  writeFileSync(path, "acme: { coldAfterDays: 30, retentionDays: 365 }\nglobex: { retentionDays: 90 }\n");
  const policies = RetentionPolicies.load(path, { coldAfterDays: 7, retentionDays: 0 });
  assert.deepEqual(policies.forTenant("acme"), { coldAfterDays: 30, retentionDays: 365 });
  assert.deepEqual(policies.forTenant("globex"), { coldAfterDays: 7, retentionDays: 90 });
  assert.deepEqual(policies.forTenant("other"), { coldAfterDays: 7, retentionDays: 0 });
  writeFileSync(path, "acme: { coldAfterDays: -1, retentionDays: soon }\n");
  assert.throws(
    () => RetentionPolicies.load(path, { coldAfterDays: 0, retentionDays: 0 }),
    /acme\.coldAfterDays: must be >= 0[\s\S]*acme\.retentionDays/,
  );
  writeFileSync(path, "acme: { coldAfterDays: 400, retentionDays: 365 }\n");
  assert.throws(
    () => RetentionPolicies.load(path, { coldAfterDays: 0, retentionDays: 0 }),
    /acme: coldAfterDays \(400\) must be below retentionDays \(365\)/,
  );
  writeFileSync(path, "acme: { keepForever: true }\n");
  assert.throws(() => RetentionPolicies.load(path, { coldAfterDays: 0, retentionDays: 0 }), /acme/);
});

test("KEK files: hex or base64 32 bytes; anything else or a missing file is a clear error", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "sessiontrack-archive-keks-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const key = Buffer.alloc(32, 7);
  assert.deepEqual(parseKeyMaterial(key.toString("hex"), "x"), key);
  assert.deepEqual(parseKeyMaterial(`${key.toString("base64")}\n`, "x"), key);
  assert.throws(
    () => parseKeyMaterial("too-short", "file k"),
    /file k: a key-encryption key must be 32 bytes/,
  );
  assert.throws(() => parseKeyMaterial(Buffer.alloc(16).toString("base64"), "k"), /32 bytes/);
  writeFileSync(join(dir, "acme"), key.toString("base64"));
  writeFileSync(join(dir, "bad"), "not a key");
  const keks = new KeyEncryptionKeyDirectory(dir);
  const acme = await keks.forTenant("acme");
  assert.match(acme.id, /^[0-9a-f]{16}$/);
  await assert.rejects(
    keks.forTenant("nobody"),
    /no key-encryption key for tenant "nobody": expected a file/,
  );
  await assert.rejects(keks.forTenant("bad"), /must be 32 bytes/);
  await assert.rejects(keks.forTenant("../acme"), /not a valid tenant name/);
});
