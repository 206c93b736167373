import type { Logger } from "@sessiontrack/runtime";

import type { KubeClient } from "./k8s/index.js";
import type { Condition, SessionStore, SessionStoreStatus } from "./spec.js";

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
      lastTransitionTime: changed ? iso(now) : before.lastTransitionTime,
      reason: next.reason,
      message: next.message,
    };
  });
  return { conditions, transitions };
}

/** An Event to record on the SessionStore. */
export interface EventNote {
  type: "Normal" | "Warning";
  reason: string;
  message: string;
}

/** RFC 3339 without milliseconds, as metav1.Time prints. */
export const iso = (date: Date): string => date.toISOString().replace(/\.\d{3}Z$/, "Z");

/** The summary phase the conditions add up to. */
export function phaseOf(conditions: readonly Condition[]): NonNullable<SessionStoreStatus["phase"]> {
  const isTrue = (type: ConditionType) => conditions.some((c) => c.type === type && c.status === "True");
  if (isTrue("Degraded")) return "Degraded";
  if (isTrue("RolledBack")) return "RolledBack";
  if (isTrue("Progressing")) return "Progressing";
  return isTrue("Ready") ? "Ready" : "Progressing";
}

/** Patches a SessionStore's status only when it changed, then records an Event per transition and per note. */
export class StatusWriter {
  constructor(
    private readonly client: KubeClient,
    private readonly logger: Logger,
  ) {}

  async write(
    store: SessionStore,
    next: SessionStoreStatus,
    desired: readonly DesiredCondition[],
    events: readonly EventNote[],
    now: Date,
  ): Promise<SessionStore | undefined> {
    const previous = store.status ?? {};
    const generation = store.metadata.generation ?? 0;
    const { conditions, transitions } = settleConditions(previous.conditions, desired, generation, now);
    const status: SessionStoreStatus = { ...next, phase: phaseOf(conditions), conditions };
    let written: SessionStore | undefined;
    if (JSON.stringify(sortKeys(status)) !== JSON.stringify(sortKeys(previous))) {
      const patch: Record<string, unknown> = { ...status };
      // Merge patch: absent fields would be kept, so cleared ones are sent as null.
      for (const field of [
        "canary",
        "captureRollout",
        "promotionCheck",
        "ingestDrain",
        "canaryIngestDrain",
        "lastRollback",
      ] as const)
        if (status[field] === undefined) patch[field] = null;
      written = await this.client.mergePatch<SessionStore>(
        {
          apiVersion: store.apiVersion,
          kind: "SessionStore",
          namespace: store.metadata.namespace ?? "default",
          name: store.metadata.name ?? "",
        },
        { status: patch },
        { subresource: "status" },
      );
    }
    const notes: EventNote[] = [
      ...events,
      ...transitions.map((transition): EventNote => ({
        type:
          (transition.type === "Degraded" || transition.type === "RolledBack") === (transition.to === "True")
            ? "Warning"
            : "Normal",
        reason: `${transition.type}${transition.to === "True" ? "" : "Cleared"}`,
        message:
          `${transition.type} is now ${transition.to} (${transition.reason}): ${transition.message}`.slice(
            0,
            1000,
          ),
      })),
    ];
    for (const note of notes) {
      try {
        await this.client.event(store, note.type, note.reason, note.message);
      } catch (error) {
        this.logger.warn({ err: error, reason: note.reason }, "recording an event failed");
      }
    }
    return written;
  }
}

function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value !== null && typeof value === "object") {
    return Object.fromEntries(
      Object.entries(value as Record<string, unknown>)
        .filter(([, v]) => v !== undefined)
        .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
        .map(([k, v]) => [k, sortKeys(v)]),
    );
  }
  return value;
}
