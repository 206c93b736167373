import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { pathToFileURL } from "node:url";

// V8 gives objects built the same way a shared hidden class (map) and specializes optimized
// code to it. When a field first holds a value of a wider kind (a double where it held small
// integers), the map is replaced and every optimized function that touched such an object is
// thrown away: in the load test that happened at the moment ingest went down, and the bot paid
// for the re-optimization on top of the outage (loadtest/README.md, "Eighth pass").
//
// This runs in a child process because it needs V8's test-only %HaveSameMap
// (--allow-natives-syntax). Two clients capture the same way against two ingests; one ingest
// stops, so that client's pipeline goes through its failure path and spools. Both pipelines
// must still share a map.
const CHILD = `
import { SessionTrackClient } from ${JSON.stringify(pathToFileURL(join(import.meta.dirname, "client.js")).href)};
import { FakeIngest } from ${JSON.stringify(pathToFileURL(join(import.meta.dirname, "testing", "fake-ingest.js")).href)};
const [spoolA, spoolB] = process.argv.slice(2);
const up = await FakeIngest.start();
const down = await FakeIngest.start();
const errors = [];
const clientOf = (fake, spoolDir) =>
  new SessionTrackClient({ target: fake.target, apiKey: fake.key, botId: "shape", spoolDir,
    watchConfig: false, ackTimeoutMs: 500, onError: (err) => errors.push(err.message) });
const a = clientOf(up, spoolA);
const b = clientOf(down, spoolB);
const capture = (client, n) => {
  for (let i = 0; i < n; i++)
    client.capture({ sessionId: "s" + (i % 4), payload: { $case: "custom", value: { name: "tick", data: { i } } } });
};
for (const client of [a, b]) {
  capture(client, 200);
  const flushed = await client.flush(5000);
  if (!flushed.complete) throw new Error("the first flush did not complete");
}
down.stop();
const deadline = Date.now() + 10000;
while (b.stats().spooled === 0 && Date.now() < deadline) {
  capture(b, 20);
  await new Promise((resolve) => setTimeout(resolve, 50));
}
// Nothing touches a's pipeline from here on: V8 would move it to b's new map on access.
const pipelineOf = (client) => client.routes.pipeline(false);
const result = {
  spooled: b.stats().spooled,
  failed: errors.length > 0,
  sameMap: %HaveSameMap(pipelineOf(a), pipelineOf(b)),
};
await Promise.all([a.close(500), b.close(500)]);
up.stop();
console.log(JSON.stringify(result));
`;

test("a delivery pipeline keeps its hidden class when ingest goes down (no V8 deopt at the outage)", (t) => {
  const dir = mkdtempSync(join(tmpdir(), "st-shape-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const script = join(dir, "child.mjs");
  writeFileSync(script, CHILD);
  const child = spawnSync(
    process.execPath,
    ["--allow-natives-syntax", script, join(dir, "a"), join(dir, "b")],
    { encoding: "utf8", timeout: 60_000 },
  );
  assert.equal(child.status, 0, `child failed:\n${child.stdout}\n${child.stderr}`);
  const result = JSON.parse(child.stdout.trim().split("\n").at(-1)!) as {
    spooled: number;
    failed: boolean;
    sameMap: boolean;
  };
  assert.ok(
    result.spooled > 0 && result.failed,
    `the stopped ingest's client never failed over: ${child.stdout}`,
  );
  assert.equal(
    result.sameMap,
    true,
    "the failure path changed the pipeline's hidden class: a field took a value of a new kind " +
      "(e.g. a double where it held small integers); initialize it with a value of that kind",
  );
});
