import assert from "node:assert/strict";
import { test } from "node:test";
import * as grpc from "@grpc/grpc-js";
import { ConfigError } from "@sessiontrack/errors";
import { SessionTrackClient } from "./client.js";
import { TransportWorker } from "./transport-worker.js";
import { customPayload, sessionEvents, startHarness, useTransportWorker } from "./testing/harness.js";

// Every client suite again, with grpc-js in a worker thread (transport "worker"): same
// guarantees, same tests. (client.unreachable.test.ts mocks grpc-js on this thread, so it
// stays inline only.)
useTransportWorker();
await import("./client.batching.test.js");
await import("./client.canary.test.js");
await import("./client.config.test.js");
await import("./client.delivery.test.js");
await import("./client.outage.test.js");

test("transport worker: the bot's thread opens no socket; every event still arrives once", async (t) => {
  const { fake, client } = await startHarness(t, { watchConfig: false });
  for (let i = 0; i < 300; i++) client.capture({ sessionId: `tw-${i % 3}`, payload: customPayload(i) });
  assert.equal((await client.flush(5000)).complete, true);
  assert.equal(client.stats().acked, 300);
  assert.equal(fake.stored.size, 300);
  for (let s = 0; s < 3; s++)
    assert.deepEqual(
      sessionEvents(fake, `tw-${s}`).map((e) => e.seq),
      Array.from({ length: 100 }, (_, k) => k + 1),
    );
  // grpc-js's sockets are the worker's: this thread's libuv loop holds no TCP handle to ingest.
  const ingestPort = Number(fake.target.split(":").pop());
  const handles = (process as unknown as { _getActiveHandles(): unknown[] })._getActiveHandles();
  const toIngest = handles.filter(
    (h) => typeof h === "object" && h !== null && (h as { remotePort?: number }).remotePort === ingestPort,
  );
  assert.equal(toIngest.length, 0, "no socket to ingest on the bot's thread");
});

test("transport worker: ingest down before the first event, then up: spooled, replayed, none lost", async (t) => {
  const { fake, client } = await startHarness(t, { watchConfig: false, ackTimeoutMs: 1000 });
  fake.stop();
  for (let i = 0; i < 200; i++) client.capture({ sessionId: "late", payload: customPayload(i) });
  await fake.waitFor(() => client.stats().spooled === 200, 5000, "every event spooled");
  await fake.restart();
  assert.equal((await client.flush(10_000)).complete, true, JSON.stringify(client.stats()));
  assert.deepEqual(
    sessionEvents(fake, "late").map((e) => e.seq),
    Array.from({ length: 200 }, (_, k) => k + 1),
  );
});

test("transport option: a bad value and credentials with the worker are ConfigErrors naming the option", () => {
  const base = { target: "127.0.0.1:1", apiKey: "k", botId: "b", watchConfig: false };
  assert.throws(
    () => new SessionTrackClient({ ...base, transport: "thread" as unknown as "worker" }),
    (err: unknown) =>
      err instanceof ConfigError &&
      /option transport must be "inline" or "worker", got "thread"/.test(err.message),
  );
  assert.throws(
    () =>
      new SessionTrackClient({
        ...base,
        transport: "worker",
        credentials: grpc.credentials.createInsecure(),
      }),
    (err: unknown) =>
      err instanceof ConfigError && /transport "worker" runs insecure channels only/.test(err.message),
  );
  // Checked before the worker starts, so the failed constructor leaves no thread behind.
  assert.throws(
    () => new SessionTrackClient({ ...base, transport: "worker", batchMaxEvents: -1 }),
    (err: unknown) =>
      err instanceof ConfigError &&
      /option batchMaxEvents must be a positive number, got -1/.test(err.message),
  );
});

test("transport worker: close() ends the worker; later captures are dropped as closed", async (t) => {
  const { client, drops } = await startHarness(t, { watchConfig: false });
  client.capture({ sessionId: "c", payload: customPayload(1) });
  await client.close(5000);
  assert.equal(client.stats().acked, 1);
  client.capture({ sessionId: "c", payload: customPayload(2) });
  assert.deepEqual(
    drops.map((d) => d.reason),
    ["closed"],
  );
});

test("transport worker dies: onError says so, events go to the spool, nothing is dropped", async (t) => {
  const { client, errors, drops } = await startHarness(t, { watchConfig: false, ackTimeoutMs: 1000 });
  client.capture({ sessionId: "w", payload: customPayload(0) });
  assert.equal((await client.flush(5000)).complete, true);
  // The worker is private; ending it from outside stands in for a crash.
  const transport = (client as unknown as { transport: { worker: { terminate(): Promise<number> } } })
    .transport;
  await transport.worker.terminate();
  for (let i = 1; i <= 100; i++) client.capture({ sessionId: "w", payload: customPayload(i) });
  const result = await client.flush(3000);
  assert.equal(result.complete, false);
  assert.ok(
    errors.some((e) => /transport worker exited unexpectedly/.test(e.message)),
    errors.map((e) => e.message).join("; "),
  );
  const stats = client.stats();
  assert.equal(stats.acked, 1);
  assert.equal(stats.spooled, 100, JSON.stringify(stats));
  assert.deepEqual(drops, []);
});

test("transport worker: a closed channel reports SHUTDOWN and is forgotten; the others stay", async (t) => {
  const transport = new TransportWorker((err) => assert.fail(err));
  t.after(() => transport.close());
  const kept = transport.client("127.0.0.1:1", {});
  const closed = transport.client("127.0.0.1:1", {});
  // The worker is unref'd: this timer keeps the test alive and fails it if SHUTDOWN never comes.
  let timer: NodeJS.Timeout | undefined;
  const shutdown = new Promise<void>((resolve, reject) => {
    timer = setTimeout(() => reject(new Error("no SHUTDOWN within 5 s of close()")), 5000);
    const watch = (): void => {
      const state = closed.getChannel().getConnectivityState(false);
      if (state === grpc.connectivityState.SHUTDOWN) resolve();
      else closed.getChannel().watchConnectivityState(state, Infinity, watch);
    };
    watch();
  });
  closed.close();
  await shutdown.finally(() => clearTimeout(timer));
  const channels = (transport as unknown as { channels: Map<number, unknown> }).channels;
  assert.equal(channels.size, 1);
  assert.notEqual(kept.getChannel().getConnectivityState(false), grpc.connectivityState.SHUTDOWN);
});
