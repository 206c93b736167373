import * as grpc from "@grpc/grpc-js";
import { AppendResponse, StreamResponse } from "@sessiontrack/proto";

import { chatEventTemplate, encodeBatch, stampEventId, type EventTemplate } from "./events.js";

const identity = (value: Buffer): Buffer => value;

/** Result of one load phase. */
export interface LoadResult {
  events: number;
  seconds: number;
  eventsPerSecond: number;
  latenciesMs: number[];
  errors: number;
}

/** Makes unique, realistic ~1 KiB events from two templates without re-encoding. */
export class EventFactory {
  private counter = 0;
  private readonly templates: EventTemplate[] = [chatEventTemplate("user"), chatEventTemplate("assistant")];
  private readonly runTag = Math.floor(Math.random() * 0xffffffff);

  /** Average encoded size of the events, in bytes. */
  get averageBytes(): number {
    return this.templates.reduce((sum, template) => sum + template.bytes.length, 0) / this.templates.length;
  }

  next(): Buffer {
    this.counter += 1;
    const template = this.templates[this.counter % this.templates.length]!;
    const copy = Buffer.from(template.bytes);
    stampEventId(copy, template.idOffset, this.runTag, this.counter);
    return copy;
  }

  batch(size: number): Buffer[] {
    return Array.from({ length: size }, () => this.next());
  }
}

function metadataFor(apiKey: string): grpc.Metadata {
  const metadata = new grpc.Metadata();
  metadata.set("authorization", `Bearer ${apiKey}`);
  return metadata;
}

/**
 * Drives `Stream` as fast as acks allow: `streams` streams, each with `window` batches
 * of `batchSize` events in flight, for `seconds`.
 */
export async function streamAtMaxRate(options: {
  address: string;
  apiKey: string;
  factory: EventFactory;
  streams: number;
  window: number;
  batchSize: number;
  seconds: number;
}): Promise<LoadResult> {
  const client = new grpc.Client(options.address, grpc.credentials.createInsecure());
  const deadline = Date.now() + options.seconds * 1000;
  const started = process.hrtime.bigint();
  let events = 0;
  let errors = 0;
  const latenciesMs: number[] = [];
  await Promise.all(
    Array.from(
      { length: options.streams },
      () =>
        new Promise<void>((resolve) => {
          const call = client.makeBidiStreamRequest(
            "/sessiontrack.v1.IngestService/Stream",
            identity,
            identity,
            metadataFor(options.apiKey),
          );
          const sentAt = new Map<number, bigint>();
          let nextSeq = 1;
          let ended = false;
          const send = (): void => {
            if (Date.now() >= deadline) {
              if (!ended && sentAt.size === 0) {
                ended = true;
                call.end();
              }
              return;
            }
            const seq = nextSeq++;
            sentAt.set(seq, process.hrtime.bigint());
            call.write(encodeBatch(2, options.factory.batch(options.batchSize), seq));
          };
          call.on("data", (bytes: Buffer) => {
            const response = StreamResponse.decode(bytes);
            const result = response.result;
            if (result?.$case === "ack") {
              const at = sentAt.get(result.value.batchSeq);
              sentAt.delete(result.value.batchSeq);
              if (at !== undefined) latenciesMs.push(Number(process.hrtime.bigint() - at) / 1e6);
              events += result.value.accepted + result.value.duplicates;
            } else {
              errors += 1;
              if (result?.$case === "rejected") sentAt.delete(result.value.batchSeq);
            }
            send();
          });
          call.on("error", () => {
            errors += 1;
            resolve();
          });
          call.on("end", () => resolve());
          for (let i = 0; i < options.window; i += 1) send();
        }),
    ),
  );
  client.close();
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  return { events, seconds, eventsPerSecond: events / seconds, latenciesMs, errors };
}

/** Drives unary `Append` with `concurrency` calls in flight, for `seconds`. */
export async function appendAtMaxRate(options: {
  address: string;
  apiKey: string;
  factory: EventFactory;
  concurrency: number;
  batchSize: number;
  seconds: number;
}): Promise<LoadResult> {
  const client = new grpc.Client(options.address, grpc.credentials.createInsecure());
  const deadline = Date.now() + options.seconds * 1000;
  const started = process.hrtime.bigint();
  let events = 0;
  let errors = 0;
  const latenciesMs: number[] = [];
  const worker = async (): Promise<void> => {
    while (Date.now() < deadline) {
      const request = encodeBatch(1, options.factory.batch(options.batchSize));
      const at = process.hrtime.bigint();
      await new Promise<void>((resolve) => {
        client.makeUnaryRequest(
          "/sessiontrack.v1.IngestService/Append",
          identity,
          identity,
          request,
          metadataFor(options.apiKey),
          (err, bytes) => {
            if (err !== null || bytes === undefined) errors += 1;
            else {
              const response = AppendResponse.decode(bytes);
              events += response.accepted + response.duplicates;
              latenciesMs.push(Number(process.hrtime.bigint() - at) / 1e6);
            }
            resolve();
          },
        );
      });
    }
  };
  await Promise.all(Array.from({ length: options.concurrency }, worker));
  client.close();
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  return { events, seconds, eventsPerSecond: events / seconds, latenciesMs, errors };
}

/**
 * Sends `eventsPerSecond` over one Stream in batches of `batchSize`, paced by a clock
 * (open loop: a slow ack does not slow the sender), and records each batch's ack latency.
 */
export async function streamAtFixedRate(options: {
  address: string;
  apiKey: string;
  factory: EventFactory;
  eventsPerSecond: number;
  batchSize: number;
  seconds: number;
}): Promise<LoadResult> {
  const client = new grpc.Client(options.address, grpc.credentials.createInsecure());
  const call = client.makeBidiStreamRequest(
    "/sessiontrack.v1.IngestService/Stream",
    identity,
    identity,
    metadataFor(options.apiKey),
  );
  const sentAt = new Map<number, bigint>();
  const latenciesMs: number[] = [];
  let events = 0;
  let errors = 0;
  const done = new Promise<void>((resolve) => {
    call.on("data", (bytes: Buffer) => {
      const result = StreamResponse.decode(bytes).result;
      if (result?.$case === "ack") {
        const at = sentAt.get(result.value.batchSeq);
        sentAt.delete(result.value.batchSeq);
        if (at !== undefined) latenciesMs.push(Number(process.hrtime.bigint() - at) / 1e6);
        events += result.value.accepted + result.value.duplicates;
      } else errors += 1;
    });
    call.on("error", () => {
      errors += 1;
      resolve();
    });
    call.on("end", () => resolve());
  });
  const batchesPerSecond = options.eventsPerSecond / options.batchSize;
  const total = Math.round(batchesPerSecond * options.seconds);
  const started = process.hrtime.bigint();
  for (let seq = 1; seq <= total; seq += 1) {
    const dueNs = started + BigInt(Math.round(((seq - 1) / batchesPerSecond) * 1e9));
    const waitMs = Number(dueNs - process.hrtime.bigint()) / 1e6;
    if (waitMs > 1) await new Promise((resolve) => setTimeout(resolve, waitMs));
    sentAt.set(seq, process.hrtime.bigint());
    call.write(encodeBatch(2, options.factory.batch(options.batchSize), seq));
  }
  call.end();
  await done;
  client.close();
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  return { events, seconds, eventsPerSecond: events / seconds, latenciesMs, errors };
}

/** The p-th percentile (0..100) of `values`, by nearest rank. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank]!;
}
