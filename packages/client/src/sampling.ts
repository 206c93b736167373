import { inCohort } from "@sessiontrack/cohort";
import type { CaptureConfig } from "@sessiontrack/proto";

// The cohort hash lives in @sessiontrack/cohort (shared with ingest's canary routing);
// re-exported so the SDK's public API is unchanged.
export { cohortHash, inCohort } from "@sessiontrack/cohort";

/** What {@link decideCapture} needs to know about a session. */
export interface CaptureContext {
  sessionId: string;
  botId: string;
  userId?: string | undefined;
  userGroups?: readonly string[] | undefined;
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
