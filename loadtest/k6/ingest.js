/* global __ENV */
// Drives ingest directly over gRPC with k6/net/grpc, loading the .proto files from protos/:
// a `stream` scenario (IngestService.Stream: each iteration opens a stream, writes BATCHES
// numbered batches and waits for every ack) and an `append` scenario (unary Append).
// Thresholds: no errors, ack latency p99 and Append latency p99.
//
// env: INGEST (host:port), API_KEY, PROTO_DIR, DURATION, STREAM_RATE (streams/s),
//      APPEND_RATE (calls/s), SUMMARY_PATH.
import grpc from "k6/net/grpc";
import exec from "k6/execution";
import { check } from "k6";
import { Counter, Rate, Trend } from "k6/metrics";

const DURATION = __ENV.DURATION || "10s";
const BATCHES = 5;
const EVENTS_PER_BATCH = 100;
const APPEND_EVENTS = 50;

const ackLatency = new Trend("ingest_ack_latency", true);
const ackedEvents = new Counter("ingest_acked_events");
const rejected = new Counter("ingest_rejected_batches");
const streamErrors = new Rate("ingest_stream_errors");

export const options = {
  scenarios: {
    stream: {
      executor: "constant-arrival-rate",
      exec: "stream",
      rate: Number(__ENV.STREAM_RATE || 4),
      timeUnit: "1s",
      duration: DURATION,
      preAllocatedVUs: 4,
      maxVUs: 16,
    },
    append: {
      executor: "constant-arrival-rate",
      exec: "append",
      rate: Number(__ENV.APPEND_RATE || 10),
      timeUnit: "1s",
      duration: DURATION,
      preAllocatedVUs: 4,
      maxVUs: 16,
    },
  },
  thresholds: {
    ingest_stream_errors: ["rate==0"],
    ingest_rejected_batches: ["count==0"],
    // Ack latency as the client sees it (write → ack, k6's JS event loop included).
    ingest_ack_latency: ["p(99)<250"],
    "grpc_req_duration{scenario:append}": ["p(99)<250"],
    "checks{scenario:append}": ["rate==1"],
  },
  summaryTrendStats: ["avg", "min", "med", "max", "count", "p(50)", "p(90)", "p(95)", "p(99)"],
};

const client = new grpc.Client();
client.load([__ENV.PROTO_DIR], "sessiontrack/v1/ingest.proto");
const params = { metadata: { authorization: `Bearer ${__ENV.API_KEY}` } };
let connected = false;

function connect() {
  if (!connected) {
    client.connect(__ENV.INGEST, { plaintext: true, reflect: false });
    connected = true;
  }
}

function hex(n) {
  let out = "";
  for (let i = 0; i < n; i += 1) out += Math.floor(Math.random() * 16).toString(16);
  return out;
}

/** A UUIDv7-shaped id: 48-bit ms timestamp, version 7, variant 10. */
function uuidv7() {
  const ts = Date.now().toString(16).padStart(12, "0");
  return `${ts.slice(0, 8)}-${ts.slice(8, 12)}-7${hex(3)}-${"89ab"[Math.floor(Math.random() * 4)]}${hex(3)}-${hex(12)}`;
}

const TEXT =
  "Where is my parcel? It was due on Monday and the tracking page has not changed since. " +
  "I have tried calling the depot twice and nobody answers. Could you check what is going on " +
  "and tell me when it will arrive? The order number is in my account, the email is the usual one.";

let seq = 0;
function event(sessionId) {
  seq += 1;
  return {
    eventId: uuidv7(),
    sessionId,
    seq: String(seq),
    time: new Date().toISOString(),
    botId: "k6-ingest",
    userId: "k6-user",
    labels: { source: "k6" },
    message: {
      turnId: uuidv7(),
      turnIndex: seq % 20,
      role: seq % 2 === 0 ? "ROLE_ASSISTANT" : "ROLE_USER",
      provider: "openai",
      model: "gpt-4o-mini",
      parts: [{ text: { text: TEXT } }],
      usage: { inputTokens: 240, outputTokens: 60 },
    },
  };
}

function batchOf(size) {
  const sessionId = `k6-${exec.vu.idInTest}-${exec.scenario.iterationInTest}`;
  const events = [];
  for (let i = 0; i < size; i += 1) events.push(event(sessionId));
  return events;
}

export function stream() {
  connect();
  // Built before the first write, so building events in JavaScript is not timed as ack latency.
  // Marshaling is: k6 marshals each write as it is made, and handles acks only after this
  // function returns, so an early batch's ack waits for the later writes.
  const batches = [];
  for (let b = 1; b <= BATCHES; b += 1) batches.push(batchOf(EVENTS_PER_BATCH));
  const s = new grpc.Stream(client, "sessiontrack.v1.IngestService/Stream", params);
  const sentAt = {};
  let answered = 0;
  s.on("data", (response) => {
    if (response.ack) {
      const batchSeq = response.ack.batchSeq;
      ackLatency.add(Date.now() - sentAt[batchSeq]);
      ackedEvents.add(response.ack.accepted + response.ack.duplicates);
      streamErrors.add(false);
    } else {
      rejected.add(1);
      streamErrors.add(true);
      console.error(`batch rejected: ${JSON.stringify(response.rejected)}`);
    }
    answered += 1;
    if (answered === BATCHES) s.end();
  });
  s.on("error", (err) => {
    streamErrors.add(true);
    console.error(`stream error: ${err.message}`);
  });
  for (let b = 1; b <= BATCHES; b += 1) {
    sentAt[String(b)] = Date.now();
    s.write({ batchSeq: String(b), events: batches[b - 1] });
  }
}

export function append() {
  connect();
  const response = client.invoke(
    "sessiontrack.v1.IngestService/Append",
    { events: batchOf(APPEND_EVENTS) },
    params,
  );
  const ok = check(response, {
    "append status OK": (r) => r && r.status === grpc.StatusOK,
    "append stored every event": (r) =>
      r && r.message && r.message.accepted + r.message.duplicates === APPEND_EVENTS,
  });
  if (ok) ackedEvents.add(APPEND_EVENTS);
  else console.error(`append failed: ${JSON.stringify(response && response.error)}`);
}

export function handleSummary(data) {
  const out = {};
  if (__ENV.SUMMARY_PATH) out[__ENV.SUMMARY_PATH] = JSON.stringify(data, null, 2);
  const ack = data.metrics.ingest_ack_latency;
  const events = data.metrics.ingest_acked_events;
  out.stdout =
    `k6 ingest: acked ${events ? events.values.count : 0} events` +
    (ack
      ? `, stream ack p50=${ack.values["p(50)"].toFixed(1)}ms p99=${ack.values["p(99)"].toFixed(1)}ms`
      : "") +
    "\n";
  return out;
}
