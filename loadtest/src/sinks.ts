// Reads back what the index holds (capture accuracy beyond the WAL) and measures freshness:
// the time from ingest's ack of an event to the index finding it.
import * as grpc from "@grpc/grpc-js";
import { SessionTrackClient } from "@sessiontrack/client";
import {
  ArchiveServiceGetSessionRequest,
  ArchiveServiceGetSessionResponse,
  GetSessionRequest,
  GetSessionResponse,
  SearchRequest,
  SearchResponse,
} from "@sessiontrack/proto";

const identity = (value: Buffer): Buffer => value;

/** Reads one session's event ids back from a store. */
export interface SessionReader {
  sessionEventIds(sessionId: string): Promise<string[]>;
  close(): void;
}

/** A minimal IndexService client (GetSession, Search) authenticated with a tenant read key. */
export class IndexReader implements SessionReader {
  private readonly client: grpc.Client;

  constructor(
    address: string,
    private readonly apiKey: string,
  ) {
    this.client = new grpc.Client(address, grpc.credentials.createInsecure());
  }

  protected call(method: string, request: Buffer, service = "IndexService"): Promise<Buffer> {
    const metadata = new grpc.Metadata();
    metadata.set("authorization", `Bearer ${this.apiKey}`);
    return new Promise((resolve, reject) => {
      this.client.makeUnaryRequest(
        `/sessiontrack.v1.${service}/${method}`,
        identity,
        identity,
        request,
        metadata,
        { deadline: Date.now() + 10_000 },
        (err, value) =>
          err !== null || value === undefined ? reject(err ?? new Error("no reply")) : resolve(value),
      );
    });
  }

  /** Event ids the index holds for one session. */
  async sessionEventIds(sessionId: string): Promise<string[]> {
    const reply = await this.call(
      "GetSession",
      Buffer.from(GetSessionRequest.encode(GetSessionRequest.fromPartial({ sessionId })).finish()),
    );
    return GetSessionResponse.decode(reply).events.map((e) => e.eventId);
  }

  /** Total hits of a full-text query within one session. */
  async hits(query: string, sessionId: string): Promise<number> {
    const reply = await this.call(
      "Search",
      Buffer.from(
        SearchRequest.encode(SearchRequest.fromPartial({ query, sessionIds: [sessionId] })).finish(),
      ),
    );
    return Number(SearchResponse.decode(reply).totalHits);
  }

  close(): void {
    this.client.close();
  }
}

/** ArchiveService.GetSession, read with a tenant read key. */
export class ArchiveReader extends IndexReader {
  override async sessionEventIds(sessionId: string): Promise<string[]> {
    const request = ArchiveServiceGetSessionRequest.encode(
      ArchiveServiceGetSessionRequest.fromPartial({ sessionId }),
    );
    const reply = await this.call("GetSession", Buffer.from(request.finish()), "ArchiveService");
    return ArchiveServiceGetSessionResponse.decode(reply).events.map((e) => e.eventId);
  }
}

/**
 * Waits (up to `timeoutMs`) until the store holds every acked id of the given sessions;
 * returns the acked ids it holds at the end.
 */
export async function storeHolds(
  reader: SessionReader,
  sessionIds: readonly string[],
  ackedIds: ReadonlySet<string>,
  timeoutMs: number,
): Promise<Set<string>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const held = new Set<string>();
    for (const sessionId of sessionIds) {
      for (const id of await reader.sessionEventIds(sessionId).catch(() => [])) {
        if (ackedIds.has(id)) held.add(id);
      }
    }
    if (held.size >= ackedIds.size || Date.now() > deadline) return held;
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
}

/**
 * Freshness: captures `probes` events with a unique word through a real SDK client, and for
 * each measures the time from the SDK's ack (durable at ingest) until Search finds the word.
 */
export async function measureFreshness(options: {
  ingest: string;
  apiKey: string;
  spoolDir: string;
  reader: IndexReader;
  probes: number;
  timeoutMs: number;
}): Promise<{ samplesMs: number[]; timedOut: number }> {
  const ackedAt = new Map<string, number>();
  const client = new SessionTrackClient({
    target: options.ingest,
    apiKey: options.apiKey,
    botId: "freshness-probe",
    spoolDir: options.spoolDir,
    flushIntervalMs: 5,
    onAck: (ids) => {
      const now = performance.now();
      for (const id of ids) ackedAt.set(id, now);
    },
  });
  const samplesMs: number[] = [];
  let timedOut = 0;
  try {
    for (let i = 0; i < options.probes; i += 1) {
      const word = `fresh${Date.now().toString(36)}x${i}`;
      const sessionId = `freshness-${word}`;
      const eventId = crypto.randomUUID();
      client.capture({
        sessionId,
        eventId,
        payload: {
          $case: "message",
          value: {
            role: 2,
            provider: "probe",
            model: "probe",
            parts: [{ kind: { $case: "text", value: { text: `probe ${word}` } } }],
          },
        },
      });
      const deadline = performance.now() + options.timeoutMs;
      let found: number | undefined;
      while (performance.now() < deadline) {
        const acked = ackedAt.get(eventId);
        if (acked !== undefined && (await options.reader.hits(word, sessionId).catch(() => 0)) > 0) {
          found = performance.now() - acked;
          break;
        }
        await new Promise((resolve) => setTimeout(resolve, acked === undefined ? 2 : 10));
      }
      if (found === undefined) timedOut += 1;
      else samplesMs.push(found);
    }
  } finally {
    await client.close(5000);
  }
  return { samplesMs, timedOut };
}

/** The q-th percentile (0..100) of samples, nearest rank; NaN when empty. */
export function percentile(samples: readonly number[], q: number): number {
  if (samples.length === 0) return Number.NaN;
  const sorted = [...samples].sort((a, b) => a - b);
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((q / 100) * sorted.length) - 1));
  return sorted[rank]!;
}
