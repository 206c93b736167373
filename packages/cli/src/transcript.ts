// Renders stored events as a transcript a person can read.
import { EndReason, Event, type StoredEvent } from "@sessiontrack/proto";

import { roleName } from "./commands/search.js";

const time = (date: Date | undefined): string => date?.toISOString().replace(/\.\d{3}Z$/, "Z") ?? "";

const END_REASONS: Record<number, string> = {
  [EndReason.END_REASON_COMPLETED]: "completed",
  [EndReason.END_REASON_USER_LEFT]: "user left",
  [EndReason.END_REASON_TIMEOUT]: "timeout",
  [EndReason.END_REASON_ERROR]: "error",
  [EndReason.END_REASON_HANDOFF]: "handed off",
};

/** One line (or a few) per event, oldest first. */
export function renderTranscript(events: readonly StoredEvent[]): string {
  if (events.length === 0) return "(no events)";
  const decoded = events.map((stored) => ({ stored, event: Event.decode(stored.event) }));
  const first = decoded[0]!;
  const lines = [
    `session ${first.stored.sessionId}  tenant=${first.stored.tenant}  bot=${first.event.botId}  user=${first.event.userId}  events=${events.length}`,
  ];
  for (const { stored, event } of decoded) {
    const prefix = `  #${String(stored.seq).padEnd(3)} ${time(event.time)}  `;
    lines.push(prefix + describe(event));
    for (const hit of stored.redactions) {
      lines.push(
        `${" ".repeat(prefix.length)}(redacted ${hit.count}× ${hit.rule} in ${hit.path}: ${hit.action})`,
      );
    }
  }
  return lines.join("\n");
}

function describe(event: Event): string {
  const payload = event.payload;
  switch (payload?.$case) {
    case "sessionStart": {
      const { channel, locale, userGroups } = payload.value;
      const details = [channel, locale, userGroups.length > 0 ? `groups ${userGroups.join(",")}` : ""]
        .filter((part) => part !== "")
        .join(", ");
      return `— session started${details === "" ? "" : ` (${details})`}`;
    }
    case "sessionEnd":
      return `— session ended (${END_REASONS[payload.value.reason] ?? "unspecified"}, ${payload.value.turnCount} turns)`;
    case "feedback": {
      const { kind, score, comment } = payload.value;
      return `feedback ${kind === "" ? "" : `${kind} `}${score > 0 ? `+${score}` : score}${comment === "" ? "" : `: "${comment}"`}`;
    }
    case "custom":
      return `custom ${payload.value.name} ${JSON.stringify(payload.value.data ?? {})}`;
    case "message": {
      const message = payload.value;
      const model =
        message.model === ""
          ? ""
          : ` (${message.provider === "" ? "" : `${message.provider}/`}${message.model})`;
      const parts = message.parts.map((part) => {
        const kind = part.kind;
        switch (kind?.$case) {
          case "text":
            return kind.value.text;
          case "toolCall":
            return `→ ${kind.value.name}(${kind.value.argumentsJson})`;
          case "toolResult":
            return `← ${kind.value.name}${kind.value.isError ? " (error)" : ""}: ${kind.value.content}`;
          case "attachment":
            return `[attachment ${kind.value.name || kind.value.uri} ${kind.value.mimeType}]`;
          default:
            return "";
        }
      });
      return `${roleName(message.role)}${model}: ${parts.join(" ")}`;
    }
    default:
      return "(empty event)";
  }
}

/** A StoredEvent as JSON: metadata plus the decoded event. */
export function storedEventJson(stored: StoredEvent): Record<string, unknown> {
  return {
    tenant: stored.tenant,
    eventId: stored.eventId,
    sessionId: stored.sessionId,
    seq: stored.seq,
    receivedAt: stored.receivedAt?.toISOString(),
    redactions: stored.redactions,
    event: Event.toJSON(Event.decode(stored.event)),
  };
}
