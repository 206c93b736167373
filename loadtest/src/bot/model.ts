// The simulated language model of the reference bot: a latency drawn from a log-normal
// distribution and real CPU work (tokenizing the prompt, sampling the reply) so that CPU
// per request means something when capture's cost is compared with it.

/** Log-normal model latency: median 40 ms, 95th percentile 120 ms (σ = ln 3 / 1.645). */
export const MODEL_LATENCY = Object.freeze({ p50Ms: 40, p95Ms: 120, maxMs: 1500 });
const SIGMA = Math.log(MODEL_LATENCY.p95Ms / MODEL_LATENCY.p50Ms) / 1.6449;
const MU = Math.log(MODEL_LATENCY.p50Ms);

/** FNV-1a 32-bit over a string's UTF-16 code units: a cheap, stable seed. */
export function seedOf(text: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i += 1) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash;
}

/** mulberry32: a small seeded PRNG, so both bot variants draw the same numbers for a request. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A log-normal latency in ms for one model call (Box–Muller on two uniforms). */
export function modelLatencyMs(random: () => number): number {
  const u1 = Math.max(random(), 1e-12);
  const u2 = random();
  const normal = Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
  return Math.min(MODEL_LATENCY.maxMs, Math.exp(MU + SIGMA * normal));
}

const WORDS = (
  "the a to of and in is it you that for on my your with this be have not are can order parcel " +
  "delivery refund account password invoice payment shipping address change cancel status track " +
  "help please thanks hello could would should when where why how what which there here today " +
  "tomorrow monday week days price plan upgrade downgrade subscription support agent ticket " +
  "number email phone card charged twice error message screen app login reset code sent received " +
  "late missing damaged return label warehouse courier estimate window confirm details sorry " +
  "understand checking looks like shows expected arrive between information policy within"
).split(" ");

/**
 * A byte-pair-style vocabulary: every word plus its prefixes and suffixes of length 2..6,
 * so greedy longest-match tokenizing does work proportional to the prompt's length, as a
 * real tokenizer does.
 */
function buildVocabulary(): Map<string, number> {
  const vocabulary = new Map<string, number>();
  const add = (piece: string): void => {
    if (!vocabulary.has(piece)) vocabulary.set(piece, vocabulary.size);
  };
  for (let c = 32; c < 127; c += 1) add(String.fromCharCode(c));
  for (const word of WORDS) {
    add(word);
    for (let n = 2; n <= Math.min(6, word.length); n += 1) {
      add(word.slice(0, n));
      add(word.slice(-n));
    }
  }
  return vocabulary;
}

const VOCABULARY = buildVocabulary();
const MAX_PIECE = 12;

/** Greedy longest-match tokenization; returns token ids. */
export function tokenize(text: string): number[] {
  const ids: number[] = [];
  const lower = text.toLowerCase();
  let i = 0;
  while (i < lower.length) {
    let matched = 1;
    let id = VOCABULARY.get(lower[i] ?? " ") ?? 0;
    for (let n = Math.min(MAX_PIECE, lower.length - i); n >= 2; n -= 1) {
      const found = VOCABULARY.get(lower.slice(i, i + n));
      if (found !== undefined) {
        matched = n;
        id = found;
        break;
      }
    }
    ids.push(id);
    i += matched;
  }
  return ids;
}

/** One turn the bot remembers. */
export interface HistoryTurn {
  user: string;
  assistant: string;
}

/** Renders the chat template the model sees: system prompt, the last turns, the new message. */
export function renderPrompt(systemPrompt: string, history: readonly HistoryTurn[], message: string): string {
  const parts = [`<|system|>\n${systemPrompt}\n`];
  for (const turn of history) {
    parts.push(`<|user|>\n${turn.user}\n<|assistant|>\n${turn.assistant}\n`);
  }
  parts.push(`<|user|>\n${message}\n<|assistant|>\n`);
  return parts.join("");
}

/** Samples a reply of `tokens` words from the prompt's token statistics (a unigram "model"). */
export function sampleReply(promptTokens: readonly number[], tokens: number, random: () => number): string {
  const counts = new Map<number, number>();
  for (const id of promptTokens) counts.set(id, (counts.get(id) ?? 0) + 1);
  let vocabularyMass = 0;
  for (const count of counts.values()) vocabularyMass += count;
  const words: string[] = [];
  for (let i = 0; i < tokens; i += 1) {
    // Mostly common support vocabulary, sometimes echoing a word weighted by the prompt.
    const pick = random();
    if (pick < 0.8 || vocabularyMass === 0) {
      words.push(WORDS[Math.floor(random() * WORDS.length)] ?? "ok");
    } else {
      words.push(WORDS[(counts.size + i) % WORDS.length] ?? "ok");
    }
  }
  const text = words.join(" ");
  return `${text.charAt(0).toUpperCase()}${text.slice(1)}.`;
}

/** A user message of 8–40 words, deterministic for a seed. */
export function userMessageFor(random: () => number): string {
  const length = 8 + Math.floor(random() * 33);
  const words: string[] = [];
  for (let i = 0; i < length; i += 1) words.push(WORDS[Math.floor(random() * WORDS.length)] ?? "help");
  return `${words.join(" ")}?`;
}
