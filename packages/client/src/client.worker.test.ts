import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import type { Worker } from "node:worker_threads";
import * as grpc from "@grpc/grpc-js";
import { ConfigError, InvalidEventError } from "@sessiontrack/errors";
import { customPayload, sessionEvents, sleep, startHarness, useWorkerClients } from "./testing/harness.js";
import { WorkerSessionTrackClient } from "./worker-client.js";

// Every client suite again, with delivery in a worker thread: same guarantees, same tests.
// (client.unreachable.test.ts is in-process only: it mocks grpc-js on this thread.)
useWorkerClients();
await import("./client.batching.test.js");
await import("./client.canary.test.js");
await import("./client.config.test.js");
await import("./client.delivery.test.js");
await import("./client.outage.test.js");

test("worker: a turn noted across two posts keeps one turn id; session options reach the worker", async (t) => {
  const { fake, client } = await startHarness(t, { watchConfig: false });
  const session = client.session("across", { userId: "u-9", labels: { tier: "gold" } });
  session.start({ channel: "web" });
  session.userMessage("where is my parcel?");
  // flush() posts what is noted, so the answer below travels in a later message.
  assert.equal((await client.flush(5000)).complete, true);
  session.assistantMessage({ text: "on its way", provider: "openai", model: "gpt-4o-mini" });
  session.toolResult({ callId: "c1", name: "track", content: "{}" });
  session.userMessage("thanks");
  session.end();
  assert.equal((await client.flush(5000)).complete, true);

  const events = sessionEvents(fake, "across");
  assert.deepEqual(
    events.map((e) => [e.seq, e.payload?.$case]),
    [
      [1, "sessionStart"],
      [2, "message"],
      [3, "message"],
      [4, "message"],
      [5, "message"],
      [6, "sessionEnd"],
    ],
  );
  for (const e of events) {
    assert.equal(e.userId, "u-9");
    assert.deepEqual(e.labels, { tier: "gold" });
  }
  const turns = events.flatMap((e) =>
    e.payload?.$case === "message" ? [[e.payload.value.turnId, e.payload.value.turnIndex]] : [],
  );
  assert.equal(turns[0]![0], turns[1]![0], "the answer shares the question's turn id");
  assert.equal(turns[1]![0], turns[2]![0], "so does the tool result");
  assert.notEqual(turns[3]![0], turns[0]![0], "the next user message opens a new turn");
  assert.deepEqual(
    turns.map((turn) => turn[1]),
    [0, 0, 0, 1],
  );
});

test("worker: an event structured clone refuses is rejected alone, reported, and the rest delivered", async (t) => {
  const { fake, client, drops, errors } = await startHarness(t, { watchConfig: false });
  client.capture({ sessionId: "clone", payload: customPayload(1) });
  client.capture({
    sessionId: "clone",
    payload: { $case: "custom", value: { name: "fn", data: { callback: () => 1 } } },
  });
  client.capture({ sessionId: "clone", payload: customPayload(3) });
  assert.equal((await client.flush(5000)).complete, true);
  assert.deepEqual(
    sessionEvents(fake, "clone").map((e) => e.seq),
    [1, 2],
  );
  assert.equal(client.stats().rejected, 1);
  assert.deepEqual(drops, [{ count: 1, reason: "rejected" }]);
  const rejection = errors.find((e) => e instanceof InvalidEventError);
  assert.match(rejection?.message ?? "", /capture\(\) event cannot be sent to the delivery worker/);
});

test("worker: invalid options, credentials and an unusable spool directory throw ConfigError in the constructor", () => {
  const base = { target: "127.0.0.1:1", apiKey: "k", botId: "b", watchConfig: false };
  assert.throws(
    () => new WorkerSessionTrackClient({ ...base, flushIntervalMs: -1 }),
    (err: unknown) =>
      err instanceof ConfigError && /flushIntervalMs must be a positive number/.test(err.message),
  );
  assert.throws(
    () => new WorkerSessionTrackClient({ ...base, botId: "" }),
    (err: unknown) => err instanceof ConfigError && /botId must be a non-empty string/.test(err.message),
  );
  assert.throws(
    () => new WorkerSessionTrackClient({ ...base, credentials: grpc.credentials.createInsecure() }),
    (err: unknown) =>
      err instanceof ConfigError && /credentials cannot be passed to a worker thread/.test(err.message),
  );
  const dir = mkdtempSync(join(tmpdir(), "st-worker-"));
  try {
    const file = join(dir, "not-a-directory");
    writeFileSync(file, "x");
    assert.throws(
      () => new WorkerSessionTrackClient({ ...base, spoolDir: file }),
      (err: unknown) => err instanceof ConfigError && err.message.includes(`spoolDir ${file} is not usable`),
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("worker: if the worker dies, capture calls are dropped and reported, and flush() still resolves", async (t) => {
  const { client, drops, errors } = await startHarness(t, { watchConfig: false });
  client.capture({ sessionId: "dies", payload: customPayload(1) });
  assert.equal((await client.flush(5000)).complete, true);
  await (client as unknown as { worker: Worker }).worker.terminate();
  await sleep(50);
  assert.ok(
    errors.some((e) =>
      /delivery worker failed; up to 0 events it held in memory .* may be lost.*exited unexpectedly/.test(
        e.message,
      ),
    ),
    errors.map((e) => e.message).join("; "),
  );
  client.capture({ sessionId: "dies", payload: customPayload(2) });
  assert.deepEqual(drops, [{ count: 1, reason: "closed" }]);
  const result = await client.flush(200);
  assert.equal(result.complete, false);
  assert.equal(client.stats().dropped, 1);
});

/** Runs an ES module with node; resolves with its exit code and how long it ran. */
function runModule(
  source: string,
  timeoutMs: number,
): Promise<{ code: number | null; ms: number; stderr: string }> {
  const started = Date.now();
  const child = spawn(process.execPath, ["--input-type=module", "-e", source], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  let stderr = "";
  child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.on("exit", (code) => {
      clearTimeout(timer);
      resolve({ code, ms: Date.now() - started, stderr });
    });
  });
}

test("worker: the worker does not keep a bot alive, and a pending close() does until it is done", async (t) => {
  const spoolDir = mkdtempSync(join(tmpdir(), "st-worker-exit-"));
  t.after(() => rmSync(spoolDir, { recursive: true, force: true }));
  const client = new URL("./index.js", import.meta.url).href;
  const options = JSON.stringify({
    target: "127.0.0.1:1",
    apiKey: "k",
    botId: "exit",
    spoolDir,
    watchConfig: false,
  });
  const idle = await runModule(
    `import { WorkerSessionTrackClient } from ${JSON.stringify(client)};
     new WorkerSessionTrackClient(${options}).capture({ sessionId: "x", payload: { $case: "custom", value: { name: "n", data: {} } } });`,
    10_000,
  );
  assert.equal(idle.code, 0, idle.stderr);
  assert.ok(idle.ms < 5000, `an idle bot exited after ${idle.ms} ms`);
  // Ingest is unreachable: close() waits its 1 s for acks, spools the event, then the bot exits.
  const closing = await runModule(
    `import { WorkerSessionTrackClient } from ${JSON.stringify(client)};
     const c = new WorkerSessionTrackClient(${options});
     c.capture({ sessionId: "x", payload: { $case: "custom", value: { name: "n", data: {} } } });
     await c.close(1000);
     if (c.stats().spooled !== 1) throw new Error("not spooled: " + JSON.stringify(c.stats()));`,
    10_000,
  );
  assert.equal(closing.code, 0, closing.stderr);
  assert.ok(closing.ms >= 1000, `close() was awaited (${closing.ms} ms)`);
});
