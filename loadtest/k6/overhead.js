/* global __ENV */
// Drives both variants of the reference bot (capture off and capture on, two processes) with
// the same constant arrival rate in the same run. Every iteration sends one request to each
// variant at the same moment (one http.batch), tagged variant=off / variant=on, so both see
// the same load at the same time. The request is the same for all of them (session, turn,
// message), and the bot derives the simulated model latency from (session, turn), so the
// variants do identical work and wait identical "model" times: common random numbers, the
// difference between the latency distributions is what capture adds, plus noise.
//
// The order inside the batch cycles through every permutation of the variants, so each is
// sent first equally often and directly after each other variant equally often. Which bot
// gets its request first matters: sent to in a fixed order, identical capture-off bots
// differed by up to 9% in CPU per request, by position alone (within about 1% with a
// rotation). With one scenario per variant, whose start order k6 picks anew each run, the
// A/A noise floor of a phase swung by ±6-14%. A plain rotation (off, on, twin → on, twin,
// off → …) still put the twin right after the capturing bot every time, and the A/A read
// −1.4% … −4.1% in every phase of three runs.
//
// env: BOT_OFF, BOT_ON (base URLs), RATE (requests/s per variant), DURATION (e.g. "45s"),
//      PHASE (names sessions), SUMMARY_PATH (where handleSummary writes the JSON summary).
import http from "k6/http";
import exec from "k6/execution";
import { check } from "k6";

const RATE = Number(__ENV.RATE || 40);
const DURATION = __ENV.DURATION || "30s";
const PHASE = __ENV.PHASE || "overhead";
const RUN = __ENV.RUN_ID || "run";
const TURNS = 6;
const OPEN_SESSIONS = 24;

const percentiles = [];
for (let p = 1; p <= 99; p += 1) percentiles.push(`p(${p})`);
percentiles.push("p(99.5)", "p(99.9)");

// BOT_TWIN (optional): a second capture-off bot driven the same way, so the same run also
// measures the method's noise floor (off vs twin, an A/A comparison).
const VARIANTS = __ENV.BOT_TWIN ? ["off", "on", "twin"] : ["off", "on"];
const URLS = { off: __ENV.BOT_OFF, on: __ENV.BOT_ON, twin: __ENV.BOT_TWIN };
const thresholds = {};
for (const variant of VARIANTS) {
  thresholds[`http_req_failed{variant:${variant}}`] = ["rate==0"];
  thresholds[`http_req_duration{variant:${variant}}`] = ["p(99)<5000"];
  thresholds[`checks{variant:${variant}}`] = ["rate==1"];
}

export const options = {
  scenarios: {
    bots: {
      executor: "constant-arrival-rate",
      rate: RATE,
      timeUnit: "1s",
      duration: DURATION,
      // An iteration lasts as long as its slowest request (model p95 120 ms, capped at 1.5 s).
      preAllocatedVUs: Math.max(8, Math.ceil(RATE / 2)),
      maxVUs: Math.max(40, RATE * 4),
    },
  },
  // Thresholds on the tagged sub-metrics make k6 report p50/p95/p99 per variant. The
  // budget itself (on vs off) is enforced by the runner, which sees both.
  thresholds,
  summaryTrendStats: ["avg", "min", "med", "max", "count", ...percentiles],
  discardResponseBodies: false,
  noConnectionReuse: false,
  // Every variant's request of an iteration goes out at once.
  batch: VARIANTS.length,
  batchPerHost: VARIANTS.length,
};

const MESSAGES = [
  "Where is my parcel? It was due on Monday and the tracking page has not changed since.",
  "I was charged twice for my last order, can you refund one of the payments please?",
  "How do I change the delivery address for an order that has already shipped?",
  "The courier left a note but I was home all day. When will they come back?",
  "Can I upgrade my plan to the yearly subscription and keep my current discount?",
  "My login code never arrives by email, I tried three times today.",
  "The parcel arrived damaged, the box was open and one item is missing. What now?",
  "Please cancel my order, I found it cheaper somewhere else.",
  "What is your return policy for items bought in the sale?",
  "Thanks, that helps. Could you also send me the invoice for March?",
  "Is there a phone number I can call to talk to a human agent?",
  "The app shows an error message when I try to reset my password.",
];

function fnv1a(text) {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i += 1) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash;
}

/** The request of iteration `i`: the same for both variants. */
function requestFor(i) {
  const slot = i % OPEN_SESSIONS;
  const round = Math.floor(i / OPEN_SESSIONS);
  const sessionId = `${RUN}-${PHASE}-${slot}-${Math.floor(round / TURNS)}`;
  const turn = round % TURNS;
  const message = MESSAGES[fnv1a(`${sessionId}:${turn}`) % MESSAGES.length];
  return {
    sessionId,
    userId: `user-${fnv1a(sessionId) % 5000}`,
    turn,
    turns: TURNS,
    message,
  };
}

/** Every order of `items`. */
function permutations(items) {
  if (items.length <= 1) return [items.slice()];
  const out = [];
  items.forEach((first, k) => {
    for (const rest of permutations(items.filter((_, j) => j !== k))) out.push([first, ...rest]);
  });
  return out;
}

/** The send orders iterations cycle through: all of them, each as often. */
const ORDERS = permutations(VARIANTS);

/** One iteration: the same request to every variant at once, in the next of ORDERS. */
export default function () {
  const i = exec.scenario.iterationInTest;
  const body = JSON.stringify(requestFor(i));
  const order = ORDERS[i % ORDERS.length];
  const responses = http.batch(
    order.map((variant) => ({
      method: "POST",
      url: `${URLS[variant]}/chat`,
      body,
      params: {
        headers: { "content-type": "application/json" },
        timeout: "10s",
        tags: { variant },
      },
    })),
  );
  responses.forEach((res, k) => {
    check(
      res,
      {
        "status is 200": (r) => r.status === 200,
        "has a reply": (r) => r.status === 200 && typeof r.json("reply") === "string",
      },
      { variant: order[k] },
    );
  });
}

export function handleSummary(data) {
  const out = {};
  if (__ENV.SUMMARY_PATH) out[__ENV.SUMMARY_PATH] = JSON.stringify(data, null, 2);
  const line = (variant) => {
    const m = data.metrics[`http_req_duration{variant:${variant}}`];
    const f = data.metrics[`http_req_failed{variant:${variant}}`];
    if (!m) return `${variant}: no requests`;
    const v = m.values;
    return `${variant}: n=${v.count} p50=${v["p(50)"].toFixed(1)}ms p95=${v["p(95)"].toFixed(1)}ms p99=${v["p(99)"].toFixed(1)}ms failed=${f ? f.values.rate : "?"}`;
  };
  out.stdout = `k6 ${PHASE}: ${VARIANTS.map(line).join(" | ")}\n`;
  return out;
}
