import type { CaptureConfig } from "@sessiontrack/proto";

const TWO_POW_32 = 0x1_0000_0000;

/**
 * Stable 32-bit hash of a session id: FNV-1a (offset basis 0x811C9DC5, prime 0x01000193)
 * over the id's UTF-8 bytes, as an unsigned integer in [0, 2^32).
 *
 * A session is in a cohort of rate `r` (0..1) exactly when `cohortHash(id) / 2^32 < r`.
 * The same function decides SDK sampling and the operator's canary cohorts, so a session
 * keeps its place in both for its whole life. Lone surrogates are encoded as U+FFFD, as
 * `TextEncoder` does.
 */
export function cohortHash(sessionId: string): number {
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

/** What {@link decideCapture} needs to know about a session. */
export interface CaptureContext {
  sessionId: string;
  botId: string;
  userId?: string | undefined;
  userGroups?: readonly string[] | undefined;
}

/** True when `hash / 2^32 < rate`; a rate ≥ 1 takes everything and ≤ 0 (or NaN) nothing. */
export function inCohort(sessionId: string, rate: number): boolean {
  if (!(rate > 0)) return false;
  if (rate >= 1) return true;
  return cohortHash(sessionId) / TWO_POW_32 < rate;
}

/**
 * Whether a session is captured under `config`:
 * 1. no config yet → captured (a bot that starts while ingest is down loses nothing);
 * 2. `enabled` false → not captured;
 * 3. the user or the bot is in `optOut` → not captured (wins over every rule);
 * 4. the first cohort rule whose non-empty `botIds` contains the bot and whose non-empty
 *    `userGroups` shares a group with the user sets the rate; otherwise `sampleRate` does;
 * 5. captured when {@link inCohort}(sessionId, rate) — sticky for a session id.
 */
export function decideCapture(config: CaptureConfig | undefined, ctx: CaptureContext): boolean {
  if (config === undefined) return true;
  if (!config.enabled) return false;
  const optOut = config.optOut;
  if (optOut !== undefined) {
    if (ctx.userId !== undefined && ctx.userId !== "" && optOut.userIds.includes(ctx.userId)) return false;
    if (optOut.botIds.includes(ctx.botId)) return false;
  }
  let rate = config.sampleRate;
  for (const rule of config.cohorts) {
    if (rule.botIds.length > 0 && !rule.botIds.includes(ctx.botId)) continue;
    if (rule.userGroups.length > 0 && !(ctx.userGroups ?? []).some((g) => rule.userGroups.includes(g)))
      continue;
    rate = rule.sampleRate;
    break;
  }
  return inCohort(ctx.sessionId, rate);
}
