import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";

import * as grpc from "@grpc/grpc-js";
import { AppendRequest, Event, IngestServiceClient, Role, type AppendResponse } from "@sessiontrack/proto";

import { createIngestHome, startIngestProcess, type IngestProcess } from "./support/ingest-process.js";
import { readWalContents } from "./support/wal-contents.js";

function mountSmallTmpfs(dir: string, size: string): string | undefined {
  if (process.getuid?.() !== 0) return "needs root to mount a size-limited tmpfs";
  try {
    execFileSync("mount", ["-t", "tmpfs", "-o", `size=${size}`, "tmpfs", dir], { stdio: "pipe" });
    return undefined;
  } catch (error) {
    return `mount -t tmpfs failed: ${String((error as { stderr?: Buffer }).stderr ?? error)}`;
  }
}

function chatEvent(id: number): Event {
  return Event.fromPartial({
    eventId: `01900000-0000-7000-8000-${id.toString(16).padStart(12, "0")}`,
    sessionId: `full-disk-session-${id % 10}`,
    seq: id + 1,
    time: new Date(),
    botId: "disk-full-bot",
    payload: {
      $case: "message",
      value: {
        role: Role.ROLE_USER,
        provider: "openai",
        model: "gpt-4o-mini",
        parts: [{ kind: { $case: "text", value: { text: `message ${id}: ${"lorem ipsum ".repeat(80)}` } } }],
      },
    },
  });
}

test("a full disk makes ingest refuse with RESOURCE_EXHAUSTED, ack nothing it did not store, and recover", async (t) => {
  const home = createIngestHome("sessiontrack-diskfull-");
  mkdirSync(home.dataDir, { recursive: true });
  const unavailable = mountSmallTmpfs(home.dataDir, "6m");
  if (unavailable !== undefined) {
    home.remove();
    t.skip(`real full-disk test not possible on this machine: ${unavailable}`);
    return;
  }
  let ingest: IngestProcess | undefined;
  // One hook, in order: stop the server, unmount, remove the directory.
  t.after(async () => {
    await ingest?.stop("SIGKILL");
    execFileSync("umount", ["-l", home.dataDir]);
    home.remove();
  });
  // Ballast the operator can delete to free space, as an SRE would.
  const ballast = join(home.dataDir, "ballast");
  writeFileSync(ballast, Buffer.alloc(2 * 1024 * 1024));

  ingest = await startIngestProcess(home);
  const client = new IngestServiceClient(ingest.address, grpc.credentials.createInsecure());
  t.after(() => client.close());
  const metadata = new grpc.Metadata();
  metadata.set("authorization", `Bearer ${home.apiKey}`);
  const append = (events: Event[]): Promise<AppendResponse | grpc.ServiceError> =>
    new Promise((resolve) => {
      client.append(AppendRequest.fromPartial({ events }), metadata, (err, response) =>
        resolve(err ?? response),
      );
    });

  const acked: string[] = [];
  let next = 0;
  let refusal: grpc.ServiceError | undefined;
  while (refusal === undefined && next < 20_000) {
    const events = Array.from({ length: 50 }, () => chatEvent(next++));
    const result = await append(events);
    if (result instanceof Error) refusal = result;
    else acked.push(...events.map((event) => event.eventId));
  }
  assert.ok(refusal, "ingest refused once the disk was full");
  assert.equal(refusal.code, grpc.status.RESOURCE_EXHAUSTED, refusal.message);
  t.diagnostic(`refused after ${acked.length} acked events: ${refusal.details}`);

  // Still refusing a batch that does not fit, and still alive.
  const again = await append(Array.from({ length: 50 }, () => chatEvent(next++)));
  assert.ok(again instanceof Error, "a batch that does not fit is refused again");
  assert.equal(again.code, grpc.status.RESOURCE_EXHAUSTED);

  rmSync(ballast);
  const afterSpace = [chatEvent(next++), chatEvent(next++)];
  const recovered = await append(afterSpace);
  assert.ok(
    !(recovered instanceof Error),
    `append after freeing space failed: ${recovered instanceof Error ? recovered.message : ""}`,
  );
  acked.push(...afterSpace.map((event) => event.eventId));

  await ingest.stop("SIGTERM");
  const wal = await readWalContents(home.dataDir);
  assert.equal(wal.damaged, 0, "no damaged frames");
  const missing = acked.filter((id) => wal.counts.get(id) !== 1);
  assert.deepEqual(
    missing.slice(0, 5),
    [],
    `${missing.length} acknowledged events are not stored exactly once`,
  );

  // The log reopens cleanly after the episode.
  ingest = await startIngestProcess(home);
});
