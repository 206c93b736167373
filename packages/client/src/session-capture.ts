import { EndReason, Role } from "@sessiontrack/proto";
import type { Part } from "@sessiontrack/proto";
import type { AssistantMessageInput, CaptureInput, SessionCapture } from "./types.js";
import { uuidv7 } from "./uuidv7.js";

/** What the client keeps per session: next seq and the cached sampling decision. */
export interface SessionState {
  seq: number;
  captured: boolean;
  /** Config generation the decision was made under; -1 = not decided yet. */
  decidedUnder: number;
  /**
   * Whether the session's events go to the ingest canary lane; decided once, at the
   * session's first captured event, so all of its events travel one lane, in order.
   */
  toCanary: boolean;
  laneDecided: boolean;
  userId: string | undefined;
  userGroups: string[] | undefined;
  labels: Record<string, string> | undefined;
  /** The encoded session_id field, made once per session. */
  sessionField: Uint8Array | undefined;
  /** The encoded bot_id, user_id and labels fields, and the values they were made from. */
  tail: Uint8Array | undefined;
  tailUserId: string | undefined;
  tailLabels: Record<string, string> | undefined;
}

type Payload = CaptureInput["payload"];

/** {@link SessionCapture} over one session of a client. */
export class SessionRecorder implements SessionCapture {
  private turnCount = 0;
  private turnId: string | undefined;

  constructor(
    readonly sessionId: string,
    private readonly state: SessionState,
    private readonly record: (state: SessionState, input: CaptureInput) => void,
    private readonly isCaptured: (state: SessionState) => boolean,
  ) {}

  get captured(): boolean {
    return this.isCaptured(this.state);
  }

  start(opts: { channel?: string; locale?: string } = {}): void {
    this.emit({
      $case: "sessionStart",
      value: {
        channel: opts.channel ?? "",
        locale: opts.locale ?? "",
        userGroups: this.state.userGroups ?? [],
        attributes: {},
      },
    });
  }

  userMessage(text: string, opts: { turnId?: string } = {}): void {
    this.turnId = opts.turnId ?? uuidv7();
    this.turnCount++;
    this.emitMessage(Role.ROLE_USER, [{ kind: { $case: "text", value: { text } } }], {});
  }

  assistantMessage(m: AssistantMessageInput): void {
    const parts: Part[] = [];
    if (m.text !== undefined) parts.push({ kind: { $case: "text", value: { text: m.text } } });
    for (const call of m.toolCalls ?? []) parts.push({ kind: { $case: "toolCall", value: { ...call } } });
    this.emitMessage(Role.ROLE_ASSISTANT, parts, {
      provider: m.provider,
      model: m.model,
      usage: m.usage,
      latencyMs: m.latencyMs ?? 0,
      finishReason: m.finishReason ?? "",
    });
  }

  toolResult(r: { callId: string; name: string; content: string; isError?: boolean }): void {
    const value = { callId: r.callId, name: r.name, content: r.content, isError: r.isError ?? false };
    this.emitMessage(Role.ROLE_TOOL, [{ kind: { $case: "toolResult", value } }], {});
  }

  feedback(f: { score: number; kind?: string; comment?: string; targetEventId?: string }): void {
    this.emit({
      $case: "feedback",
      value: {
        score: f.score,
        kind: f.kind ?? "",
        comment: f.comment ?? "",
        targetEventId: f.targetEventId ?? "",
      },
    });
  }

  custom(name: string, data: Record<string, unknown>): void {
    this.emit({ $case: "custom", value: { name, data } });
  }

  end(reason: EndReason = EndReason.END_REASON_COMPLETED): void {
    this.emit({ $case: "sessionEnd", value: { reason, turnCount: this.turnCount } });
  }

  private emitMessage(
    role: Role,
    parts: Part[],
    extra: {
      provider?: string;
      model?: string;
      usage?: { inputTokens: number; outputTokens: number } | undefined;
      latencyMs?: number;
      finishReason?: string;
    },
  ): void {
    if (this.turnId === undefined) {
      // A bot that starts with the assistant speaking still gets a turn to hang it on.
      this.turnId = uuidv7();
      this.turnCount++;
    }
    this.emit({
      $case: "message",
      value: {
        turnId: this.turnId,
        turnIndex: this.turnCount - 1,
        role,
        provider: extra.provider ?? "",
        model: extra.model ?? "",
        parts,
        usage: extra.usage,
        finishReason: extra.finishReason ?? "",
        latencyMs: extra.latencyMs ?? 0,
      },
    });
  }

  private emit(payload: Payload): void {
    this.record(this.state, { sessionId: this.sessionId, payload });
  }
}
