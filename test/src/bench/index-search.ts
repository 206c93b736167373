// Index search benchmark: bulk-loads realistic chat messages from many tenants straight
// into the SQLite FTS5 backend (no gRPC), then times a mix of tenant-scoped queries.
// Figures: index.search_p50_ms / index.search_p95_ms (target p95 <= 50 ms at 1M
// messages), index.load_docs_per_s, and the longest write transaction.
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { join } from "node:path";

import { SqliteIndexBackend, labelToken, type IndexDocument, type SearchQuery } from "@sessiontrack/index";
import { Event, Role, StoredEvent } from "@sessiontrack/proto";
import { createLogger } from "@sessiontrack/runtime";

/** Options for {@link benchIndexSearch}. */
export interface IndexSearchBenchOptions {
  /** Messages to load; default 1,000,000. */
  messages?: number;
  /** Timed queries after the warm-up; default 1000. */
  queries?: number;
  /** Keep the database here (and reuse it when it already holds the corpus) instead of a temp dir. */
  dataDir?: string;
  /** Progress lines; default console.log. */
  log?: (line: string) => void;
}

/** A small deterministic PRNG (mulberry32), so every run loads the same corpus. */
function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const TENANTS = 20;
const DAY = 86_400_000;
const START = Date.UTC(2026, 0, 1);
const SPAN_DAYS = 60;

const SLOTS: Record<string, string[]> = {
  product: [
    "running shoes",
    "rain jacket",
    "coffee grinder",
    "desk lamp",
    "yoga mat",
    "backpack",
    "headphones",
    "blender",
    "phone case",
    "water bottle",
    "winter boots",
    "office chair",
  ],
  city: [
    "Berlin",
    "Lisbon",
    "Oslo",
    "Madrid",
    "Leeds",
    "Lyon",
    "Porto",
    "Vienna",
    "Dublin",
    "Krakow",
    "Gothenburg",
    "Utrecht",
  ],
  day: ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"],
  device: ["iPhone", "Android phone", "laptop", "tablet", "smart TV", "router"],
  plan: ["basic plan", "family plan", "premium plan", "annual plan", "student plan"],
  carrier: ["DHL", "UPS", "DPD", "GLS", "the post office"],
  error: ["error 502", "timeout", "blank screen", "login loop", "sync failure", "crash on start"],
};

const TOPICS: Array<{ user: string[]; assistant: string[] }> = [
  {
    user: [
      "Where is my order {order}? The tracking page has not changed since {day}.",
      "My {product} was supposed to arrive in {city} on {day} but nothing came.",
      "Can you tell me when the {product} will be delivered? {carrier} says label created.",
    ],
    assistant: [
      "I have checked order {order}: {carrier} collected the parcel and it is at the hub near {city}.",
      "The current delivery estimate for your {product} is {day} before noon.",
      "If the parcel has not moved by {day}, I will arrange a free express replacement.",
    ],
  },
  {
    user: [
      "I want a refund for the {product}, it broke after two days.",
      "How long does a refund take? I returned order {order} on {day}.",
      "The {product} is the wrong size, can I exchange it or get my money back?",
    ],
    assistant: [
      "I am sorry the {product} let you down. I have started a refund for order {order}.",
      "Refunds reach your card within five working days after the return is scanned.",
      "You can exchange the {product} for free; print the return label from your account.",
    ],
  },
  {
    user: [
      "I cannot log in on my {device}, the password reset link says it expired.",
      "The app shows {error} every time I open it on my {device}.",
      "How do I turn on two factor authentication for my account?",
    ],
    assistant: [
      "I have sent a new password reset link; it is valid for one hour.",
      "Please update the app on your {device} and clear the cache; {error} is fixed in the latest version.",
      "Two factor authentication is under Settings, Security; scan the code with an authenticator app.",
    ],
  },
  {
    user: [
      "Why was I charged twice for the {plan} this month?",
      "I need an invoice for order {order} with my company address in {city}.",
      "Can I switch from the {plan} to a cheaper subscription?",
    ],
    assistant: [
      "I see two charges for the {plan}; the second one is a pending authorisation and will drop off.",
      "Your invoice for order {order} is attached; I added the company address in {city}.",
      "You can switch plans at any time; the change takes effect at the next billing date.",
    ],
  },
  {
    user: [
      "Do you ship the {product} to {city}?",
      "Is the {product} in stock in the store in {city}?",
      "What is the warranty on the {product}?",
    ],
    assistant: [
      "Yes, we ship to {city} within three to five days with {carrier}.",
      "The store in {city} has the {product} in stock today; you can reserve it online.",
      "The {product} comes with a two year warranty covering manufacturing defects.",
    ],
  },
  {
    user: [
      "Please cancel my subscription, I am moving to {city}.",
      "I want to close my account and delete my data.",
      "How do I pause the {plan} for a month?",
    ],
    assistant: [
      "I have cancelled your subscription; you keep access until the end of the billing period.",
      "Your account deletion request is confirmed; all data is removed within thirty days.",
      "You can pause the {plan} from the account page for up to three months.",
    ],
  },
];

const MODELS: Array<[string, string]> = [
  ["openai", "gpt-4o-mini"],
  ["openai", "gpt-4o"],
  ["anthropic", "claude-sonnet-4"],
  ["aws.bedrock", "llama-3-70b"],
];

/** Generates the corpus tenant by tenant, session by session, in batches of documents. */
class CorpusGenerator {
  private readonly rand = random(42);
  private readonly tenantWeights: number[];
  private sessionCounter = 0;
  private eventCounter = 0;

  constructor() {
    // A few big tenants and a long tail, as a hosted service would see.
    const raw = Array.from({ length: TENANTS }, (_, index) => 1 / (index + 1) ** 0.8);
    const total = raw.reduce((sum, weight) => sum + weight, 0);
    this.tenantWeights = raw.map((weight) => weight / total);
  }

  private pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.rand() * items.length)]!;
  }

  private fill(template: string): string {
    return template.replace(/\{(\w+)\}/g, (_, slot: string) =>
      slot === "order" ? String(10000 + Math.floor(this.rand() * 90000)) : this.pick(SLOTS[slot]!),
    );
  }

  private tenant(): string {
    let roll = this.rand();
    for (let index = 0; index < TENANTS; index += 1) {
      roll -= this.tenantWeights[index]!;
      if (roll <= 0) return `tenant-${index}`;
    }
    return `tenant-${TENANTS - 1}`;
  }

  /** One session's messages (4 to 16) as index documents. */
  session(): IndexDocument[] {
    this.sessionCounter += 1;
    const tenant = this.tenant();
    const sessionId = `sess-${this.sessionCounter.toString(36)}`;
    const botId = `bot-${Math.floor(this.rand() * 5)}`;
    const userId = `user-${Math.floor(this.rand() * 5000)}`;
    const labels = {
      env: this.rand() < 0.9 ? "prod" : "staging",
      locale: this.pick(["en-GB", "de-DE", "fr-FR", "es-ES"]),
    };
    const topic = this.pick(TOPICS);
    const [provider, model] = this.pick(MODELS);
    const start = START + Math.floor(this.rand() * SPAN_DAYS * DAY);
    const length = 4 + Math.floor(this.rand() * 13);
    const documents: IndexDocument[] = [];
    for (let seq = 1; seq <= length; seq += 1) {
      const user = seq % 2 === 1;
      const text = user
        ? this.fill(this.pick(topic.user))
        : `${this.fill(this.pick(topic.assistant))} ${this.fill(this.pick(topic.assistant))}`;
      this.eventCounter += 1;
      const eventId = `0190${this.eventCounter.toString(16).padStart(28, "0")}`;
      const time = new Date(start + seq * 20_000);
      const role = user ? Role.ROLE_USER : Role.ROLE_ASSISTANT;
      const event = Event.fromPartial({
        eventId,
        sessionId,
        seq,
        time,
        botId,
        userId,
        labels,
        payload: {
          $case: "message",
          value: {
            turnId: `turn-${Math.ceil(seq / 2)}`,
            turnIndex: Math.ceil(seq / 2) - 1,
            role,
            provider,
            model,
            parts: [{ kind: { $case: "text", value: { text } } }],
          },
        },
      });
      const stored = StoredEvent.encode({
        tenant,
        eventId,
        sessionId,
        seq,
        receivedAt: time,
        event: Buffer.from(Event.encode(event).finish()),
        redactions: [],
      }).finish();
      documents.push({
        tenant,
        eventId,
        sessionId,
        seq,
        timeMs: time.getTime(),
        botId,
        userId,
        model,
        provider,
        role,
        labels: [labelToken("env", labels.env), labelToken("locale", labels.locale)],
        text,
        stored,
      });
    }
    return documents;
  }
}

const QUERY_WORDS = [
  "refund",
  "parcel",
  "password",
  "invoice",
  "subscription",
  "warranty",
  "delivery",
  "express",
  "account",
  "charged",
  "stock",
  "exchange",
];
const QUERY_PAIRS = [
  "password reset",
  "express replacement",
  "cancel subscription",
  "return label",
  "tracking page",
  "two factor",
  "company address",
  "billing date",
];
const QUERY_PHRASES = ['"tracking page"', '"refund for order"', '"wrong size"', '"in stock"'];

/** A realistic query mix, each scoped to one tenant. */
function queryMix(rand: () => number): Array<{ kind: string; query: SearchQuery }> {
  const pick = <T>(items: readonly T[]): T => items[Math.floor(rand() * items.length)]!;
  const base = (tenant: string): SearchQuery => ({
    tenant,
    text: "",
    botIds: [],
    userIds: [],
    models: [],
    labels: [],
    sessionIds: [],
    roles: [],
    sinceMs: undefined,
    untilMs: undefined,
    offset: 0,
    limit: 20,
    hitsPerSession: 3,
    preTag: "<mark>",
    postTag: "</mark>",
  });
  const out: Array<{ kind: string; query: SearchQuery }> = [];
  for (let index = 0; index < 2000; index += 1) {
    // Tenants are picked uniformly, so the big ones are queried as often as the small ones.
    const tenant = `tenant-${Math.floor(rand() * TENANTS)}`;
    const roll = rand();
    const q = base(tenant);
    let kind: string;
    if (roll < 0.3) {
      kind = "word";
      q.text = pick(QUERY_WORDS);
    } else if (roll < 0.5) {
      kind = "two-words";
      q.text = pick(QUERY_PAIRS);
    } else if (roll < 0.6) {
      kind = "order-number";
      q.text = String(10000 + Math.floor(rand() * 90000));
    } else if (roll < 0.7) {
      kind = "phrase";
      q.text = pick(QUERY_PHRASES);
    } else if (roll < 0.8) {
      kind = "word+bot";
      q.text = pick(QUERY_WORDS);
      q.botIds = [`bot-${Math.floor(rand() * 5)}`];
    } else if (roll < 0.85) {
      kind = "word+last-week";
      q.text = pick(QUERY_WORDS);
      q.sinceMs = START + (SPAN_DAYS - 7) * DAY;
    } else if (roll < 0.9) {
      kind = "word+role+label";
      q.text = pick(QUERY_WORDS);
      q.roles = [Role.ROLE_USER];
      q.labels = [labelToken("locale", "de-DE")];
    } else if (roll < 0.95) {
      kind = "user-sessions";
      q.userIds = [`user-${Math.floor(rand() * 5000)}`];
    } else {
      kind = "browse-page-2";
      q.offset = 20;
    }
    out.push({ kind, query: q });
  }
  return out;
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

const round = (value: number, digits = 2): number => Number(value.toFixed(digits));

/** Loads the corpus and times the query mix; returns flat figures. */
export async function benchIndexSearch(
  options: IndexSearchBenchOptions = {},
): Promise<Record<string, number>> {
  const messages = options.messages ?? 1_000_000;
  const timed = options.queries ?? 1000;
  const log = options.log ?? ((line: string) => console.log(line));
  const dir = options.dataDir ?? mkdtempSync(join(tmpdir(), "sessiontrack-bench-index-"));
  const backend = await SqliteIndexBackend.open({
    dataDir: dir,
    logger: createLogger({ name: "bench", level: "silent" }),
  });
  try {
    const generator = new CorpusGenerator();
    let loaded = 0;
    let generateMs = 0;
    const batchMs: number[] = [];
    const existing = backend.count();
    if (existing > 0 && existing !== messages)
      throw new Error(`${dir} holds ${existing} messages, not ${messages}`);
    if (existing === messages) log(`  index bench: reusing ${existing} messages in ${dir}`);
    // Batches go through the backend's writer thread exactly as IndexEvents' do, one in
    // flight while the next is generated; the main thread's event-loop delay is sampled
    // throughout to show what writes cost the thread that answers searches.
    const BATCH = 2000;
    const loopDelay = monitorEventLoopDelay({ resolution: 5 });
    loopDelay.enable();
    const loadStart = performance.now();
    let inFlight: Promise<void> = Promise.resolve();
    let pending: IndexDocument[] = [];
    while (existing === 0 && loaded < messages) {
      const generateStart = performance.now();
      while (pending.length < BATCH) {
        pending.push(...generator.session());
        // Generate in small steps so the benchmark's own work does not read as a stall.
        if (pending.length % 250 < 16) await new Promise((resolve) => setImmediate(resolve));
      }
      generateMs += performance.now() - generateStart;
      const batch = pending.slice(0, Math.min(BATCH, messages - loaded));
      pending = pending.slice(batch.length);
      await inFlight;
      const sent = performance.now();
      inFlight = backend.index(batch).then(() => {
        batchMs.push(performance.now() - sent);
      });
      loaded += batch.length;
      if (loaded % 100_000 === 0) {
        log(
          `  index bench: loaded ${loaded} messages (${Math.round(loaded / ((performance.now() - loadStart) / 1000))} docs/s)`,
        );
      }
    }
    await inFlight;
    const loadMs = performance.now() - loadStart;
    loopDelay.disable();
    const databaseBytes =
      statSync(join(dir, "index.sqlite")).size +
      (() => {
        try {
          return statSync(join(dir, "index.sqlite-wal")).size;
        } catch {
          return 0;
        }
      })();

    const mix = queryMix(random(7));
    const warmUp = 100;
    const latencies: number[] = [];
    // CPU time per query (all threads of the process): the work a query costs, apart from
    // how long it waited for a core on a shared machine.
    const cpuMs: number[] = [];
    let phaseWall = 0;
    let phaseCpu = 0;
    const byKind = new Map<string, number[]>();
    let hits = 0;
    for (let index = 0; index < warmUp + timed; index += 1) {
      const { kind, query } = mix[index % mix.length]!;
      const cpuBefore = process.cpuUsage();
      const start = performance.now();
      const result = await backend.search(query);
      const took = performance.now() - start;
      const cpu = process.cpuUsage(cpuBefore);
      if (index < warmUp) continue;
      latencies.push(took);
      cpuMs.push((cpu.user + cpu.system) / 1000);
      phaseWall += took;
      phaseCpu += (cpu.user + cpu.system) / 1000;
      hits += result.totalHits;
      const list = byKind.get(kind) ?? [];
      list.push(took);
      byKind.set(kind, list);
    }
    latencies.sort((a, b) => a - b);
    cpuMs.sort((a, b) => a - b);
    log(`  index bench: ${timed} queries, mean ${Math.round(hits / timed)} matching events per query`);
    for (const [kind, list] of [...byKind].sort()) {
      list.sort((a, b) => a - b);
      log(
        `    ${kind.padEnd(18)} n=${String(list.length).padEnd(5)} p50 ${round(percentile(list, 50))} ms  p95 ${round(percentile(list, 95))} ms  max ${round(list.at(-1) ?? 0)} ms`,
      );
    }
    const figures: Record<string, number> = { "index.messages": existing === 0 ? loaded : existing };
    if (existing === 0) {
      batchMs.sort((a, b) => a - b);
      figures["index.load_docs_per_s"] = Math.round(loaded / (loadMs / 1000));
      figures["index.generate_docs_per_s"] = Math.round(loaded / (generateMs / 1000));
      figures["index.batch_2000_docs_p50_ms"] = round(percentile(batchMs, 50));
      figures["index.batch_2000_docs_max_ms"] = round(batchMs.at(-1) ?? 0);
      figures["index.load_event_loop_delay_p99_ms"] = round(loopDelay.percentile(99) / 1e6);
      figures["index.load_event_loop_delay_max_ms"] = round(loopDelay.max / 1e6);
    }
    figures["index.db_mib"] = round(databaseBytes / 1048576, 0);
    figures["index.search_p50_ms"] = round(percentile(latencies, 50));
    figures["index.search_p95_ms"] = round(percentile(latencies, 95));
    figures["index.search_p99_ms"] = round(percentile(latencies, 99));
    figures["index.search_cpu_p50_ms"] = round(percentile(cpuMs, 50));
    figures["index.search_cpu_p95_ms"] = round(percentile(cpuMs, 95));
    // Below 1: the queries waited for a core (other processes on the machine).
    figures["index.search_cpu_per_wall"] = round(phaseCpu / phaseWall);
    return figures;
  } finally {
    await backend.close();
    if (options.dataDir === undefined) rmSync(dir, { recursive: true, force: true });
  }
}

// `node test/dist/bench/index-search.js [messages]` runs this benchmark alone.
if (process.argv[1]?.endsWith("index-search.js") === true) {
  const messages = process.argv[2] === undefined ? undefined : Number(process.argv[2]);
  const dataDir = process.argv[3];
  const figures = await benchIndexSearch({
    ...(messages === undefined ? {} : { messages }),
    ...(dataDir === undefined ? {} : { dataDir }),
  });
  console.log(JSON.stringify(figures, null, 2));
}
