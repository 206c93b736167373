import type { Condition } from "./spec.js";

export const CONDITION_TYPES = ["Ready", "Progressing", "Degraded", "RolledBack"] as const;
export type ConditionType = (typeof CONDITION_TYPES)[number];

/** A condition as computed this reconcile, before transition times are settled. */
export interface DesiredCondition {
  type: ConditionType;
  status: "True" | "False";
  reason: string;
  message: string;
}

/** A condition whose status changed, for the Event that announces it. */
export interface Transition {
  type: ConditionType;
  from: string | undefined;
  to: "True" | "False";
  reason: string;
  message: string;
}

/**
 * Merges desired conditions into the previous ones: lastTransitionTime changes only when
 * a condition's status changes; reason/message/observedGeneration follow the latest.
 */
export function settleConditions(
  previous: readonly Condition[] | undefined,
  desired: readonly DesiredCondition[],
  generation: number,
  now: Date,
): { conditions: Condition[]; transitions: Transition[] } {
  const transitions: Transition[] = [];
  const conditions = desired.map((next): Condition => {
    const before = previous?.find((condition) => condition.type === next.type);
    const changed = before === undefined || before.status !== next.status;
    if (changed)
      transitions.push({
        type: next.type,
        from: before?.status,
        to: next.status,
        reason: next.reason,
        message: next.message,
      });
    return {
      type: next.type,
      status: next.status,
      observedGeneration: generation,
      lastTransitionTime: changed ? now.toISOString().replace(/\.\d{3}Z$/, "Z") : before.lastTransitionTime,
      reason: next.reason,
      message: next.message,
    };
  });
  return { conditions, transitions };
}
