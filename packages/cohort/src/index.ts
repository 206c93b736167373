/**
 * Sticky session cohorts. One hash of the session id decides both whether the SDK
 * samples a session and whether a version canary serves it, so a session keeps its place
 * in each for its whole life; the canary cohort hashes a salted id so that it is
 * independent of the sampling cohort.
 */

const TWO_POW_32 = 0x1_0000_0000;

/** Salt prepended to the session id for the canary cohort. */
const CANARY_SALT = "canary:";

/**
 * FNV-1a 32-bit (offset basis 0x811C9DC5, prime 0x01000193) over the UTF-8 bytes of
 * `text`, as an unsigned integer. Lone surrogates are encoded as U+FFFD, as `TextEncoder`
 * does.
 */
export function fnv1a32(sessionId: string): number {
  let hash = 0x811c9dc5;
  const step = (byte: number): void => {
    hash = Math.imul(hash ^ byte, 0x01000193);
  };
  for (let i = 0; i < sessionId.length; i++) {
    let code = sessionId.charCodeAt(i);
    if (code < 0x80) {
      step(code);
      continue;
    }
    if (code < 0x800) {
      step(0xc0 | (code >> 6));
      step(0x80 | (code & 0x3f));
      continue;
    }
    if (code >= 0xd800 && code <= 0xdfff) {
      const next = sessionId.charCodeAt(i + 1);
      if (code <= 0xdbff && next >= 0xdc00 && next <= 0xdfff) {
        code = 0x10000 + ((code - 0xd800) << 10) + (next - 0xdc00);
        i++;
        step(0xf0 | (code >> 18));
        step(0x80 | ((code >> 12) & 0x3f));
        step(0x80 | ((code >> 6) & 0x3f));
        step(0x80 | (code & 0x3f));
        continue;
      }
      code = 0xfffd;
    }
    step(0xe0 | (code >> 12));
    step(0x80 | ((code >> 6) & 0x3f));
    step(0x80 | (code & 0x3f));
  }
  return hash >>> 0;
}

/**
 * Stable 32-bit hash of a session id: {@link fnv1a32} followed by MurmurHash3's fmix32
 * finalizer, as an unsigned integer in [0, 2^32). FNV-1a alone changes mostly its low bits
 * when only the last characters differ, so ids like `session-1`…`session-99` would bunch
 * in a few cohorts; the finalizer spreads every input bit over the whole word.
 *
 * A session is in a cohort of rate `r` (0..1) exactly when `cohortHash(id) / 2^32 < r`.
 */
export function cohortHash(sessionId: string): number {
  let h = fnv1a32(sessionId);
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** True when `hash / 2^32 < rate`; a rate ≥ 1 takes everything and ≤ 0 (or NaN) nothing. */
export function inCohort(sessionId: string, rate: number): boolean {
  if (!(rate > 0)) return false;
  if (rate >= 1) return true;
  return cohortHash(sessionId) / TWO_POW_32 < rate;
}

/**
 * True when a version canary of weight `weightPercent` (0..100) serves the session:
 * `cohortHash("canary:" + id) / 2^32 < weightPercent / 100`. The salt keeps the canary
 * cohort independent of sampling (a 10% canary sees 10% of the sampled sessions, not the
 * sessions sampling favours). A weight ≤ 0 (or NaN) routes nothing, ≥ 100 everything.
 */
export function inCanaryCohort(sessionId: string, weightPercent: number): boolean {
  if (!(weightPercent > 0)) return false;
  if (weightPercent >= 100) return true;
  return cohortHash(CANARY_SALT + sessionId) / TWO_POW_32 < weightPercent / 100;
}
