// Redaction benchmark: the per-event cost of the default rules on clean chat events (the
// byte prefilter only) and on events carrying sensitive values (decode, redact,
// re-encode), next to a naive decode + three regexes baseline; and, given a running
// ingest, durable Stream throughput when part of the traffic needs redacting.
import { readFileSync } from "node:fs";

import { Event, Role } from "@sessiontrack/proto";
import { createRedactor, mayContainSensitiveData } from "@sessiontrack/redaction";

import { chatEventTemplate, stampEventId, type EventTemplate } from "./events.js";
import { EventFactory, streamAtMaxRate } from "./ingest-load.js";

const PLACEHOLDER_ID = "01900000-0000-7000-8000-000000000000";

const PII_TEXT =
  "Hi, this is Jane Doe (jane.doe@example.com, +44 20 7946 0958). I ordered running shoes last " +
  "week (order 88213) and paid with 4111 1111 1111 1111; the tracking page has said 'label created' " +
  "for five days. I need them for a half marathon on Sunday. Can you tell me where the parcel is, " +
  "whether it arrives by Friday, and if not, whether I can cancel and get a refund or swap to express " +
  "shipping at no extra cost? My login is jane.doe@example.com if that helps. ";

/** A ~1 KiB user message with an email, a phone number and a card number in it. */
export function piiEventTemplate(targetBytes = 1024): EventTemplate {
  const event = (text: string): Event =>
    Event.fromPartial({
      eventId: PLACEHOLDER_ID,
      sessionId: "bench-session-000001",
      seq: 7,
      time: new Date(),
      botId: "bench-support-bot",
      userId: "user-1042",
      labels: { env: "bench", locale: "en-GB" },
      payload: {
        $case: "message",
        value: {
          turnId: "turn-0003",
          turnIndex: 3,
          role: Role.ROLE_USER,
          provider: "openai",
          model: "gpt-4o-mini",
          parts: [{ kind: { $case: "text", value: { text } } }],
          usage: { inputTokens: 812, outputTokens: 164 },
          finishReason: "stop",
          latencyMs: 930,
        },
      },
    });
  let text = PII_TEXT;
  while (Event.encode(event(text)).finish().length < targetBytes) text += " Thanks a lot.";
  const bytes = Buffer.from(Event.encode(event(text)).finish());
  return { bytes, idOffset: bytes.indexOf(PLACEHOLDER_ID) };
}

/** Events for the ingest load generator where one in `every` carries sensitive values. */
class MixedEventFactory extends EventFactory {
  private made = 0;
  private readonly pii = piiEventTemplate();
  private readonly tag = Math.floor(Math.random() * 0xffffffff);

  constructor(private readonly every: number) {
    super();
  }

  override next(): Buffer {
    this.made += 1;
    if (this.made % this.every !== 0) return super.next();
    const copy = Buffer.from(this.pii.bytes);
    // A different run tag from the clean events' keeps ids unique across both.
    stampEventId(copy, this.pii.idOffset, this.tag, this.made);
    return copy;
  }
}

/**
 * Calls `run` in rounds for about `ms` milliseconds of this process's CPU time; returns
 * calls per CPU-second (events/s on one core). CPU time rather than wall time keeps the
 * figure meaningful on a machine shared with other work.
 */
function rate(ms: number, run: (i: number) => void): number {
  for (let i = 0; i < 2000; i += 1) run(i); // warm-up
  const cpuMicros = (): number => {
    const usage = process.cpuUsage();
    return usage.user + usage.system;
  };
  let calls = 0;
  const started = cpuMicros();
  let used = 0;
  while (used < ms * 1000) {
    for (let i = 0; i < 500; i += 1) run(calls + i);
    calls += 500;
    used = cpuMicros() - started;
  }
  return calls / (used / 1e6);
}

/** User + system CPU time of a process in microseconds, from /proc (Linux); undefined elsewhere. */
function processCpuMicros(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // Fields after the command name (which may hold spaces) start at ") ".
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const ticks = Number(fields[11]) + Number(fields[12]); // utime, stime
    return (ticks / CLOCK_TICKS_PER_SECOND) * 1e6;
  } catch {
    return undefined;
  }
}
const CLOCK_TICKS_PER_SECOND = 100;

// The naive baseline: decode, three regexes over the text, re-encode.
const NAIVE = [
  /[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}/g,
  /\+?\d[\d ()-]{7,}\d/g,
  /\b(?:\d[ -]?){12,18}\d\b/g,
];
function naiveRedact(bytes: Uint8Array): Uint8Array {
  const event = Event.decode(bytes);
  if (event.payload?.$case === "message") {
    for (const part of event.payload.value.parts) {
      if (part.kind?.$case === "text") {
        let text = part.kind.value.text;
        for (const regex of NAIVE) text = text.replace(regex, "[redacted]");
        part.kind.value.text = text;
      }
    }
  }
  return Event.encode(event).finish();
}

/**
 * Micro-benchmarks of the default rules (in this process), plus, when `ingest` is given,
 * Stream throughput against it with 1 event in 10 carrying sensitive values.
 */
export async function runRedactionBench(options: {
  seconds: number;
  ingest?: { address: string; apiKey: string; pid?: number | undefined };
}): Promise<Record<string, number>> {
  const results: Record<string, number> = {};
  const redactor = createRedactor("bench");
  const clean = [chatEventTemplate("user").bytes, chatEventTemplate("assistant").bytes];
  const pii = piiEventTemplate().bytes;
  const ms = Math.max(1000, Math.min(3000, options.seconds * 300));

  if (clean.some((bytes) => mayContainSensitiveData(bytes))) {
    throw new Error("bench: a clean chat template is a prefilter candidate; the clean figure would mislead");
  }
  const check = Buffer.from(redactor.redactEncoded(pii).event);
  if (check.includes("jane.doe@example.com") || check.includes("4111 1111 1111 1111")) {
    throw new Error("bench: the PII template was not redacted");
  }

  let sink = 0;
  results["redaction.events_per_s_clean"] = Math.round(
    rate(ms, (i) => {
      sink += redactor.redactEncoded(clean[i & 1]!).redactions.length;
    }),
  );
  results["redaction.events_per_s_with_pii"] = Math.round(
    rate(ms, () => {
      sink += redactor.redactEncoded(pii).redactions.length;
    }),
  );
  results["redaction.naive_3_regex_events_per_s"] = Math.round(
    rate(ms, (i) => {
      sink += naiveRedact(i & 1 ? pii : clean[0]!).length;
    }),
  );
  results["redaction.decode_encode_only_events_per_s"] = Math.round(
    rate(ms, () => {
      sink += Event.encode(Event.decode(pii)).finish().length;
    }),
  );
  if (sink < 0) console.log(sink); // keeps the work observable

  if (options.ingest !== undefined) {
    const { address, apiKey, pid } = options.ingest;
    // Three phases side by side, so the comparison holds on a machine shared with other
    // work: no sensitive values, 1 event in 10, every event. The ingest process's own CPU
    // time per event is the steadier figure there.
    const phases: Array<[string, EventFactory]> = [
      ["clean", new EventFactory()],
      ["redacted", new MixedEventFactory(10)],
      ["all_pii", new MixedEventFactory(1)],
    ];
    for (const [name, factory] of phases) {
      const cpuBefore = processCpuMicros(pid);
      const load = await streamAtMaxRate({
        address,
        apiKey,
        factory,
        streams: 4,
        window: 8,
        batchSize: 250,
        seconds: options.seconds,
      });
      const cpuAfter = processCpuMicros(pid);
      const figure = name === "clean" ? "redaction_baseline" : name;
      results[`ingest.${figure}_events_per_s`] = Math.round(load.eventsPerSecond);
      if (load.errors > 0) results[`ingest.${figure}_errors`] = load.errors;
      if (cpuBefore !== undefined && cpuAfter !== undefined && load.events > 0) {
        results[`ingest.${figure}_cpu_us_per_event`] = Number(
          ((cpuAfter - cpuBefore) / load.events).toFixed(2),
        );
      }
    }
    results["ingest.redacted_pii_share"] = 0.1;
  }
  return results;
}
