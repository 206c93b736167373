import * as grpc from "@grpc/grpc-js";
import assert from "node:assert/strict";
import { test } from "node:test";
import { customPayload, sleep, startHarness } from "./testing/harness.js";

// In-process only: it counts grpc-js calls by mocking grpc.Client on this thread, which a
// WorkerSessionTrackClient's worker (its own copy of grpc-js) does not see.
test("while ingest is unreachable no Stream or WatchConfig call is opened; both resume when it is back", async (t) => {
  const { fake, client } = await startHarness(t, { ackTimeoutMs: 1000 });
  const streams = t.mock.method(grpc.Client.prototype, "makeBidiStreamRequest");
  const watches = t.mock.method(grpc.Client.prototype, "makeServerStreamRequest");
  let i = 0;
  const captureSome = (): void => {
    for (let k = 0; k < 5; k++, i++)
      client.capture({ sessionId: `down-${i % 3}`, payload: customPayload(i) });
  };
  captureSome();
  assert.equal((await client.flush(5000)).complete, true);
  const ticker = setInterval(captureSome, 20);
  t.after(() => clearInterval(ticker));
  fake.stop();
  // The stream and the watch notice the outage and the channel settles in TRANSIENT_FAILURE.
  await sleep(1000);
  const streamsBefore = streams.mock.callCount();
  const watchesBefore = watches.mock.callCount();
  // Retrying on the SDK's own backoff (capped at 2 s) would open a call of each kind at least once here.
  await sleep(3000);
  assert.equal(streams.mock.callCount() - streamsBefore, 0, "no Stream call while ingest is down");
  assert.equal(watches.mock.callCount() - watchesBefore, 0, "no WatchConfig call while ingest is down");
  assert.ok(client.stats().spooled > 0, "events captured meanwhile went to the spool");

  await fake.restart();
  await fake.waitFor(() => fake.openWatchCount > 0, 5000, "WatchConfig reopened after ingest came back");
  clearInterval(ticker);
  assert.equal((await client.flush(10_000)).complete, true, JSON.stringify(client.stats()));
  assert.equal(fake.stored.size, i, "every event captured before, during and after the outage is stored");
  assert.ok(streams.mock.callCount() > streamsBefore, "the stream reopened");
});
