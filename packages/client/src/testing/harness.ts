import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { CaptureConfig, Event } from "@sessiontrack/proto";
import { SessionTrackClient } from "../client.js";
import type { CaptureClient, DropNotice, SessionTrackClientOptions } from "../types.js";
import { WorkerSessionTrackClient } from "../worker-client.js";
import { FakeIngest } from "./fake-ingest.js";

/** What node:test's context offers that the harness needs. */
interface TestContextLike {
  after(fn: () => void | Promise<void>): void;
}

/** A client wired to a fixture, with everything it reported. */
export interface Harness {
  fake: FakeIngest;
  client: CaptureClient;
  spoolDir: string;
  drops: DropNotice[];
  errors: Error[];
  /** Another client on the same fixture and (by default) the same spool directory. */
  newClient(overrides?: Partial<SessionTrackClientOptions>): CaptureClient;
}

let clientClass: typeof SessionTrackClient | typeof WorkerSessionTrackClient = SessionTrackClient;

/**
 * Makes every harness of this process build a {@link WorkerSessionTrackClient} (delivery in
 * a worker thread) instead of a {@link SessionTrackClient}; client.worker.test.ts runs the
 * client suites again this way.
 */
export function useWorkerClients(): void {
  clientClass = WorkerSessionTrackClient;
}

let defaults: Partial<SessionTrackClientOptions> = {};

/**
 * Makes every harness of this process give its clients `transport: "worker"` (grpc-js in a
 * worker thread); client.transport.test.ts runs the client suites again this way.
 */
export function useTransportWorker(): void {
  defaults = { transport: "worker" };
}

/** Starts a fixture and a client on a fresh spool directory; both are torn down after the test. */
export async function startHarness(
  t: TestContextLike,
  overrides: Partial<SessionTrackClientOptions> = {},
  fake?: FakeIngest,
): Promise<Harness> {
  const ingest = fake ?? (await FakeIngest.start());
  const spoolDir = mkdtempSync(join(tmpdir(), "st-client-"));
  const drops: DropNotice[] = [];
  const errors: Error[] = [];
  const clients: CaptureClient[] = [];
  const newClient = (more: Partial<SessionTrackClientOptions> = {}): CaptureClient => {
    const client = new clientClass({
      target: ingest.target,
      apiKey: ingest.key,
      botId: "test-bot",
      spoolDir,
      onDrop: (drop) => drops.push(drop),
      onError: (err) => errors.push(err),
      ...defaults,
      ...overrides,
      ...more,
    });
    clients.push(client);
    return client;
  };
  const client = newClient();
  t.after(async () => {
    await Promise.all(clients.map((c) => c.close(200)));
    ingest.stop();
    rmSync(spoolDir, { recursive: true, force: true });
  });
  return { fake: ingest, client, spoolDir, drops, errors, newClient };
}

/** Stored events of one session, ordered by seq. */
export function sessionEvents(fake: FakeIngest, sessionId: string): Event[] {
  return [...fake.stored.values()].filter((e) => e.sessionId === sessionId).sort((a, b) => a.seq - b.seq);
}

/** A custom event of about `bytes` bytes, for volume tests. */
export function customPayload(
  i: number,
  bytes = 100,
): { $case: "custom"; value: { name: string; data: object } } {
  return { $case: "custom", value: { name: "tick", data: { i, pad: "x".repeat(bytes) } } };
}

/** Resolves after `ms`. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** A capture config that captures everything, with `overrides`. */
export function captureConfig(revision: string, overrides: Partial<CaptureConfig> = {}): CaptureConfig {
  return {
    revision,
    enabled: true,
    sampleRate: 1,
    stage: "full",
    cohorts: [],
    optOut: undefined,
    canary: undefined,
    ...overrides,
  };
}
