// The reference bot: an HTTP chat endpoint doing what a real bot does per turn (parse the
// request, assemble a prompt from the history it keeps, call a model, answer), capturing
// every turn with @sessiontrack/client when capture is on.
import type { CaptureClient, SessionCapture } from "@sessiontrack/client";
import { readFileSync } from "node:fs";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";

import {
  modelLatencyMs,
  renderPrompt,
  sampleReply,
  seededRandom,
  seedOf,
  tokenize,
  type HistoryTurn,
} from "./model.js";
import type { IdLog } from "./id-log.js";

const SYSTEM_PROMPT =
  "You are the support assistant of a parcel delivery company. Answer briefly and politely. " +
  "Use the track_parcel tool when the user asks about a parcel, and never invent tracking data. " +
  "If the user is upset, apologise once and offer a human agent.";
const HISTORY_TURNS = 8;
const MAX_OPEN_SESSIONS = 20_000;
const MAX_BODY_BYTES = 64 * 1024;

/** One chat request, as k6 sends it. */
export interface ChatRequest {
  sessionId: string;
  userId: string;
  /** 0-based turn number within the session. */
  turn: number;
  /** Turns the session will have; the last one ends the session. */
  turns: number;
  message: string;
}

interface OpenSession {
  history: HistoryTurn[];
  model: string;
  capture: SessionCapture | undefined;
}

/** Counters the runner reads from `GET /stats`. */
export interface BotStats {
  variant: "on" | "off";
  requests: number;
  errors: number;
  inFlight: number;
  /** process.cpuUsage() of the bot process, µs. */
  cpuUserUs: number;
  cpuSystemUs: number;
  /**
   * CPU of the main thread alone (the event loop: the bot's handlers and the SDK's JS), µs;
   * the rest of process.cpuUsage() is V8's and libuv's worker threads (GC, compilation, fs).
   * Null where /proc/thread-self is not available (not Linux).
   */
  mainThreadCpuUs: number | null;
  uptimeMs: number;
  /** Capture calls the bot made (events it tried to record). */
  captureAttempted: number;
  /** Acknowledgements ingest sent the SDK, repeats included (distinct ids: GET /acked-ids). */
  acksReceived: number;
  sdk: ReturnType<CaptureClient["stats"]> | null;
}

/** CPU time of the calling thread from /proc/thread-self/schedstat (ns → µs), or null off Linux. */
export function threadCpuUs(path = "/proc/thread-self/schedstat"): number | null {
  try {
    const ns = Number(readFileSync(path, "utf8").split(" ")[0]);
    return Number.isFinite(ns) ? ns / 1000 : null;
  } catch {
    return null;
  }
}

/** Parses and checks a chat request body; returns an error message naming the bad field. */
export function parseChatRequest(body: string): ChatRequest | string {
  let value: unknown;
  try {
    value = JSON.parse(body);
  } catch {
    return "body: not valid JSON";
  }
  if (typeof value !== "object" || value === null) return "body: expected a JSON object";
  const v = value as Record<string, unknown>;
  for (const field of ["sessionId", "userId", "message"] as const) {
    if (typeof v[field] !== "string" || v[field] === "") return `${field}: expected a non-empty string`;
  }
  for (const field of ["turn", "turns"] as const) {
    const n = v[field];
    if (typeof n !== "number" || !Number.isInteger(n) || n < 0) return `${field}: expected an integer >= 0`;
  }
  const request = v as unknown as ChatRequest;
  if (request.turn >= request.turns) return `turn: ${request.turn} is not below turns (${request.turns})`;
  return request;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        reject(new Error(`body: larger than ${MAX_BODY_BYTES} bytes`));
        req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    req.on("error", reject);
  });
}

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = typeof body === "string" ? body : JSON.stringify(body);
  res.writeHead(status, {
    "content-type": typeof body === "string" ? "text/plain" : "application/json",
    "content-length": Buffer.byteLength(text),
  });
  res.end(text);
}

/** The chat bot; `client` undefined means capture off (the baseline variant). */
export class ChatBot {
  private readonly sessions = new Map<string, OpenSession>();
  private readonly startedAt = Date.now();
  private requests = 0;
  private errors = 0;
  private inFlight = 0;
  private captureAttempted = 0;

  /**
   * `records` (capture on): where the accuracy check's ids go — every acknowledged event id
   * (repeats included: a replay after an outage acks an id again) and every captured session.
   */
  constructor(
    private readonly client: CaptureClient | undefined,
    private readonly records?: { acked: IdLog; sessions: IdLog },
  ) {}

  /** The SDK's onAck hook: remembers every acknowledged id for the accuracy check. */
  recordAcked(eventIds: readonly string[]): void {
    this.records?.acked.append(eventIds);
    // Session ids wait in memory until here: one write a batch, none on the request path.
    this.records?.sessions.append([]);
  }

  stats(): BotStats {
    const cpu = process.cpuUsage();
    return {
      variant: this.client === undefined ? "off" : "on",
      requests: this.requests,
      errors: this.errors,
      inFlight: this.inFlight,
      cpuUserUs: cpu.user,
      cpuSystemUs: cpu.system,
      // stats() runs on the main thread (an HTTP handler), so thread-self is the event loop.
      mainThreadCpuUs: threadCpuUs(),
      uptimeMs: Date.now() - this.startedAt,
      captureAttempted: this.captureAttempted,
      acksReceived: this.records?.acked.count ?? 0,
      sdk: this.client?.stats() ?? null,
    };
  }

  /** Answers one chat turn. */
  async chat(request: ChatRequest): Promise<{ reply: string; model: string; tokens: number }> {
    const random = seededRandom(seedOf(`${request.sessionId}:${request.turn}`));
    const session = this.openSession(request);
    session.capture?.userMessage(request.message);
    this.countCapture(session, 1);

    // Some sessions escalate to a bigger model after a couple of turns: a model switch.
    if (request.turn >= 2 && seedOf(request.sessionId) % 4 === 0) session.model = "gpt-4o";

    const history = session.history.slice(-HISTORY_TURNS);
    const prompt = renderPrompt(SYSTEM_PROMPT, history, request.message);
    const promptTokens = tokenize(prompt);
    const latencyMs = modelLatencyMs(random);

    // About one turn in four calls a tool first (parcel tracking), as support bots do.
    if (random() < 0.25) {
      const callId = `call-${request.turn}`;
      const argumentsJson = JSON.stringify({ parcelId: `P-${seedOf(request.sessionId) % 100_000}` });
      session.capture?.assistantMessage({
        provider: "openai",
        model: session.model,
        toolCalls: [{ callId, name: "track_parcel", argumentsJson }],
        usage: { inputTokens: promptTokens.length, outputTokens: 12 },
        latencyMs: Math.round(latencyMs / 3),
        finishReason: "tool_calls",
      });
      await sleep(2 + random() * 8);
      const result = JSON.stringify({ status: "out for delivery", eta: "today 14:00-16:00", depot: "north" });
      session.capture?.toolResult({ callId, name: "track_parcel", content: result });
      this.countCapture(session, 2);
    }

    await sleep(latencyMs);
    const replyLength = 30 + Math.floor(random() * 60);
    const reply = sampleReply(promptTokens, replyLength, random);
    const replyTokens = tokenize(reply).length;
    session.capture?.assistantMessage({
      text: reply,
      provider: "openai",
      model: session.model,
      usage: { inputTokens: promptTokens.length, outputTokens: replyTokens },
      latencyMs: Math.round(latencyMs),
      finishReason: "stop",
    });
    this.countCapture(session, 1);
    session.history.push({ user: request.message, assistant: reply });

    if (request.turn === request.turns - 1) {
      session.capture?.end();
      this.countCapture(session, 1);
      this.sessions.delete(request.sessionId);
    }
    return { reply, model: session.model, tokens: promptTokens.length + replyTokens };
  }

  private countCapture(session: OpenSession, events: number): void {
    if (session.capture !== undefined) this.captureAttempted += events;
  }

  private openSession(request: ChatRequest): OpenSession {
    let session = this.sessions.get(request.sessionId);
    if (session === undefined) {
      if (this.sessions.size >= MAX_OPEN_SESSIONS) {
        // Sessions a client abandoned: forget the oldest (Map iterates in insertion order).
        const oldest = this.sessions.keys().next();
        if (oldest.done !== true) this.sessions.delete(oldest.value);
      }
      const capture = this.client?.session(request.sessionId, { userId: request.userId });
      if (capture !== undefined) this.records?.sessions.add(request.sessionId);
      session = { history: [], model: "gpt-4o-mini", capture };
      this.sessions.set(request.sessionId, session);
      capture?.start({ channel: "web", locale: "en-GB" });
      this.countCapture(session, 1);
    }
    return session;
  }

  /** Flushes the SDK (capture on) and returns the stats afterwards. */
  async flush(timeoutMs: number): Promise<BotStats & { flush: unknown }> {
    const flush = this.client === undefined ? null : await this.client.flush(timeoutMs);
    return { ...this.stats(), flush };
  }

  /** The HTTP server: POST /chat, GET /stats, POST /flush, GET /acked-ids, GET /sessions, GET /healthz. */
  createServer(): Server {
    return createServer((req, res) => {
      void this.route(req, res);
    });
  }

  private async route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? "/").split("?")[0];
    try {
      if (req.method === "POST" && path === "/chat") {
        this.inFlight += 1;
        try {
          const parsed = parseChatRequest(await readBody(req));
          if (typeof parsed === "string") {
            this.errors += 1;
            send(res, 400, { error: parsed });
            return;
          }
          const answer = await this.chat(parsed);
          this.requests += 1;
          send(res, 200, answer);
        } finally {
          this.inFlight -= 1;
        }
        return;
      }
      if (req.method === "GET" && path === "/stats") return send(res, 200, this.stats());
      if (req.method === "GET" && path === "/healthz") return send(res, 200, "ok\n");
      if (req.method === "POST" && path === "/flush") return send(res, 200, await this.flush(30_000));
      if (req.method === "GET" && path === "/sessions") {
        return send(res, 200, (this.records?.sessions.readAll() ?? []).join("\n"));
      }
      if (req.method === "GET" && path === "/acked-ids") {
        return send(res, 200, (this.records?.acked.readAll() ?? []).join("\n"));
      }
      send(res, 404, { error: `no route ${req.method ?? "?"} ${path ?? ""}` });
    } catch (err) {
      this.errors += 1;
      if (!res.headersSent) send(res, 500, { error: err instanceof Error ? err.message : String(err) });
      else res.destroy();
    }
  }
}
