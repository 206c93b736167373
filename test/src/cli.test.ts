import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";

import { SESSIONTRACK_BIN } from "./support/ingest-process.js";

function sessiontrack(
  args: string[],
  timeoutMs = 60_000,
): { status: number | null; stdout: string; stderr: string } {
  const result = spawnSync(process.execPath, [SESSIONTRACK_BIN, ...args], {
    encoding: "utf8",
    timeout: timeoutMs,
  });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

test("`sessiontrack dev` runs ingest, index and archive, the demo bot's sessions become searchable, and `wal dump` shows the log", (t) => {
  const dir = mkdtempSync(join(tmpdir(), "sessiontrack-dev-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const dev = sessiontrack([
    "dev",
    "--data-dir",
    dir,
    "--listen",
    "127.0.0.1:0",
    "--index-listen",
    "127.0.0.1:0",
    "--archive-listen",
    "127.0.0.1:0",
    "--metrics-listen",
    "127.0.0.1:0",
    "--exit-after-demo",
  ]);
  assert.equal(dev.status, 0, `dev failed:\n${dev.stdout}\n${dev.stderr}`);
  assert.match(dev.stdout, /api key {2}st_[A-Za-z0-9_-]{20,}/);
  const summary = /Demo bot captured (\d+) events in 3 sessions; (\d+) acknowledged/.exec(dev.stdout);
  assert.ok(summary, `no demo summary in:\n${dev.stdout}`);
  assert.equal(summary[1], summary[2], "every demo event was acknowledged");
  assert.match(dev.stdout, /All \d+ events are archived and searchable/);
  const stored = [
    ...dev.stdout.matchAll(
      /demo-\d+-[123] {2}tenant=demo {2}events=(\d+) {2}\(archive: (\d+), index: (\d+)\)/g,
    ),
  ];
  assert.equal(stored.length, 3, "three sessions read back");
  for (const [, events, archived, indexed] of stored) {
    assert.equal(archived, events);
    assert.equal(indexed, events, "the index holds every archived event");
  }
  assert.equal(
    stored.reduce((sum, [, events]) => sum + Number(events), 0),
    Number(summary[1]),
    "every acknowledged event is in the archive",
  );
  assert.match(dev.stdout, /npx sessiontrack search "refund" --api-key-file \S+read\.key/);
  assert.match(
    dev.stdout,
    /user: .*a «refund» of the shipping fee/,
    "the search result is printed with its highlight",
  );
  assert.doesNotMatch(
    dev.stdout,
    /jane\.doe@example\.com/,
    "the demo's email address was redacted before storage",
  );
  assert.match(dev.stdout, /redacted 1× email in message\.parts\[0\]\.text/);

  const dump = sessiontrack(["wal", "dump", "--data-dir", join(dir, "ingest")]);
  assert.equal(dump.status, 0, dump.stderr);
  const lines = dump.stdout
    .trim()
    .split("\n")
    .map((line) => JSON.parse(line) as Record<string, unknown>);
  assert.equal(lines.length, Number(summary[1]));
  for (const line of lines) {
    assert.equal(line["checksum_ok"], true);
    assert.equal(line["tenant"], "demo");
    assert.match(
      String(line["event_id"]),
      /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/,
    );
    assert.match(String(line["session_id"]), /^demo-\d+-[123]$/);
    assert.ok(Number(line["seq"]) >= 1);
  }
});

/** Runs the CLI with no key in the environment, so a missing key is reported, not found. */
function sessiontrackWithoutKeys(args: string[]): { status: number | null; stderr: string } {
  const env = { ...process.env };
  for (const name of Object.keys(env)) if (name.startsWith("SESSIONTRACK_")) delete env[name];
  const result = spawnSync(process.execPath, [SESSIONTRACK_BIN, ...args], {
    encoding: "utf8",
    env,
    timeout: 30_000,
  });
  return { status: result.status, stderr: result.stderr };
}

test("the CLI names what is wrong and exits 2 on bad usage", () => {
  const cases: Array<{ args: string[]; message: RegExp }> = [
    { args: ["frobnicate"], message: /unknown command "frobnicate"/ },
    { args: ["wal", "dump"], message: /--data-dir is required/ },
    { args: ["wal", "dump", "--data-dir", "/nonexistent/sessiontrack"], message: /does not exist/ },
    { args: ["ingest", "serve", "--tenants", "x.yaml"], message: /data-dir/i },
    { args: ["ingest", "serve", "--bogus"], message: /bogus/ },
    { args: ["keys", "generate", "--roles", "root"], message: /unknown role\(s\) root/ },
    { args: ["index", "serve", "--bogus", "1"], message: /bogus/ },
    { args: ["index", "serve", "--tenants", "x.yaml"], message: /dataDir.*data-dir/ },
    { args: ["archive", "serve", "--tenants", "x.yaml", "--data-dir", "d"], message: /kek-dir/ },
    {
      // A secret that begins with "-" must be joined with "=": the error says how.
      args: ["archive", "serve", "--s3-secret-key", "-k3y"],
      message: /use '--s3-secret-key=-XYZ'/,
    },
    { args: ["search", "refund", "--limit", "0"], message: /--limit: "0" must be a whole number/ },
    { args: ["search", "refund", "--since", "yesterday"], message: /--since: "yesterday" is not a time/ },
    {
      args: ["search", "refund", "--index-url", "nowhere"],
      message: /--index-url: "nowhere" is not an address/,
    },
    {
      args: ["search", "refund", "--api-key-file", "/nonexistent/key"],
      message: /--api-key-file: .* does not exist/,
    },
    { args: ["session", "get"], message: /a session id is required/ },
    { args: ["session", "get", "s1", "--from", "disk"], message: /--from: "disk" must be archive or index/ },
    { args: ["erase"], message: /exactly one of --user or --session/ },
    { args: ["erase", "--user", "u", "--session", "s"], message: /exactly one of --user or --session/ },
    { args: ["index", "rebuild", "--batch", "x"], message: /--batch/ },
  ];
  for (const { args, message } of cases) {
    const result = sessiontrackWithoutKeys(args);
    assert.equal(result.status, 2, `${args.join(" ")} exited ${result.status}: ${result.stderr}`);
    assert.match(result.stderr, message, args.join(" "));
  }
});

test("`sessiontrack keys generate` prints a key and the tenants entry that grants it", () => {
  const result = sessiontrack(["keys", "generate", "--tenant", "shop", "--roles", "ingest,read"]);
  assert.equal(result.status, 0, result.stderr);
  assert.match(result.stdout, /API key \(shown once\): st_/);
  const entry = JSON.parse(result.stdout.slice(result.stdout.indexOf("{"))) as {
    tenants: Array<{ name: string; keys: Array<{ sha256: string; roles: string[] }> }>;
  };
  assert.equal(entry.tenants[0]?.name, "shop");
  assert.match(entry.tenants[0]?.keys[0]?.sha256 ?? "", /^[0-9a-f]{64}$/);
  assert.deepEqual(entry.tenants[0]?.keys[0]?.roles, ["ingest", "read"]);
});
