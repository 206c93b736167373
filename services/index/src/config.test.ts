import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";

import { ConfigError } from "@sessiontrack/errors";

import { loadIndexConfig } from "./config.js";

test("defaults: SQLite on 127.0.0.1:7071, metrics on 9465", () => {
  const config = loadIndexConfig({ tenants: "/t.yaml", "data-dir": "/d" }, {});
  assert.equal(config.backend, "sqlite");
  assert.deepEqual(config.listen, { host: "127.0.0.1", port: 7071 });
  assert.deepEqual(config.metricsListen, { host: "127.0.0.1", port: 9465 });
  assert.ok(Object.isFrozen(config));
});

test("flags win over SESSIONTRACK_* variables; the Meilisearch key may come from a file", (t) => {
  const dir = mkdtempSync(join(tmpdir(), "sessiontrack-index-config-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const keyFile = join(dir, "meili.key");
  writeFileSync(keyFile, "file-key-123\n");
  const config = loadIndexConfig(
    { backend: "meilisearch", "meili-url": "http://127.0.0.1:7700" },
    {
      SESSIONTRACK_TENANTS: "/t.yaml",
      SESSIONTRACK_INDEX_BACKEND: "sqlite",
      SESSIONTRACK_MEILI_KEY_FILE: keyFile,
    },
  );
  assert.equal(config.backend, "meilisearch");
  assert.equal(config.meiliKey, "file-key-123");
  assert.equal(config.meiliIndex, "sessiontrack_events");
});

test("bad settings fail fast, each named", () => {
  assert.throws(
    () => loadIndexConfig({ backend: "elastic", listen: "nowhere" }, {}),
    (error: Error) => {
      assert.ok(error instanceof ConfigError);
      assert.match(error.message, /listen: "nowhere" is not HOST:PORT/);
      assert.match(error.message, /tenantsFile: is required \(--tenants or SESSIONTRACK_TENANTS\)/);
      assert.match(error.message, /backend: must be sqlite or meilisearch/);
      return true;
    },
  );
  assert.throws(() => loadIndexConfig({ tenants: "/t" }, {}), /dataDir: is required with --backend sqlite/);
  assert.throws(
    () => loadIndexConfig({ tenants: "/t", backend: "meilisearch" }, {}),
    /meiliUrl: is required with --backend meilisearch/,
  );
  assert.throws(
    () =>
      loadIndexConfig(
        {
          tenants: "/t",
          backend: "meilisearch",
          "meili-url": "http://m:7700",
          "meili-key-file": "/no/such/key",
        },
        {},
      ),
    /meiliKeyFile: cannot read \/no\/such\/key/,
  );
});
