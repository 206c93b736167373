import { EndReason, Role } from "@sessiontrack/proto";
import type { CaptureConfig, Part } from "@sessiontrack/proto";
import { decideCapture } from "./sampling.js";
import type { AssistantMessageInput, CaptureInput, DeepPartial, SessionCapture } from "./types.js";
import { uuidv7 } from "./uuidv7.js";

/** What the client keeps per session: next seq and the cached sampling decision. */
export interface SessionState {
  readonly sessionId: string;
  /** The last seq given to an event of the session (events are numbered when encoded). */
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

/** A session's state before its first event: nothing decided, nothing encoded. */
export function newSessionState(sessionId: string): SessionState {
  return {
    sessionId,
    seq: 0,
    captured: true,
    decidedUnder: -1,
    toCanary: false,
    laneDecided: false,
    userId: undefined,
    userGroups: undefined,
    labels: undefined,
    sessionField: undefined,
    tail: undefined,
    tailUserId: undefined,
    tailLabels: undefined,
  };
}

/**
 * The session's sampling decision under `config`, cached on the state until the config
 * generation changes (the cohort hash keeps it sticky).
 */
export function decideSession(
  state: SessionState,
  config: CaptureConfig | undefined,
  generation: number,
  botId: string,
): boolean {
  if (state.decidedUnder !== generation) {
    state.captured = decideCapture(config, {
      sessionId: state.sessionId,
      botId,
      userId: state.userId,
      userGroups: state.userGroups,
    });
    state.decidedUnder = generation;
  }
  return state.captured;
}

type Payload = CaptureInput["payload"];
type PartInput = DeepPartial<Part>;

/** A turn of a session: its id is made when its first event is encoded, unless the bot gave one. */
export interface Turn {
  id: string | undefined;
  index: number;
}

/** What a {@link SessionRecorder} call was; with its two arguments it is turned into a payload at encode time. */
export enum RecordedKind {
  Start,
  UserMessage,
  AssistantMessage,
  ToolResult,
  Feedback,
  Custom,
  End,
}

/**
 * Where a recorder's calls go: the client checks closing and the kill switch at once and
 * notes the call as it was made (kind and arguments, no payload objects yet).
 */
export type RecordCall = (state: SessionState, kind: RecordedKind, a: unknown, b: unknown) => void;

/**
 * {@link SessionCapture} over one session of a client. A call only notes what was recorded
 * and the turn bookkeeping; {@link recordedPayload} builds the payload when its batch is
 * encoded, in one loop with the batch's other events. (A bot's capture calls run between
 * its own work, with the SDK's code cold; building payloads there cost several times more.)
 */
export class SessionRecorder implements SessionCapture {
  private turnCount = 0;
  private turn: Turn | undefined;

  constructor(
    readonly sessionId: string,
    private readonly state: SessionState,
    private readonly record: RecordCall,
    private readonly isCaptured: (state: SessionState) => boolean,
  ) {}

  get captured(): boolean {
    return this.isCaptured(this.state);
  }

  start(opts: { channel?: string; locale?: string } = {}): void {
    this.record(this.state, RecordedKind.Start, opts, this.state.userGroups);
  }

  userMessage(text: string, opts: { turnId?: string } = {}): void {
    this.turn = { id: opts.turnId, index: this.turnCount++ };
    this.record(this.state, RecordedKind.UserMessage, text, this.turn);
  }

  assistantMessage(m: AssistantMessageInput): void {
    this.record(this.state, RecordedKind.AssistantMessage, m, this.currentTurn());
  }

  toolResult(r: { callId: string; name: string; content: string; isError?: boolean }): void {
    this.record(this.state, RecordedKind.ToolResult, r, this.currentTurn());
  }

  feedback(f: { score: number; kind?: string; comment?: string; targetEventId?: string }): void {
    this.record(this.state, RecordedKind.Feedback, f, undefined);
  }

  custom(name: string, data: Record<string, unknown>): void {
    this.record(this.state, RecordedKind.Custom, name, data);
  }

  end(reason: EndReason = EndReason.END_REASON_COMPLETED): void {
    this.record(this.state, RecordedKind.End, reason, this.turnCount);
  }

  /** The open turn; a bot that starts with the assistant speaking still gets a turn to hang it on. */
  private currentTurn(): Turn {
    this.turn ??= { id: undefined, index: this.turnCount++ };
    return this.turn;
  }
}

/** Strings are kept as given; anything else is left for the encoder to reject with the field's name. */
function text(value: unknown): string {
  return value === undefined || value === null ? "" : (value as string);
}

function message(
  role: Role,
  turn: Turn,
  timeMs: number,
  parts: PartInput[],
  m: Partial<AssistantMessageInput> = {},
): Payload {
  turn.id ??= uuidv7(timeMs);
  return {
    $case: "message",
    value: {
      turnId: turn.id,
      turnIndex: turn.index,
      role,
      provider: text(m.provider),
      model: text(m.model),
      parts,
      usage: m.usage,
      finishReason: text(m.finishReason),
      latencyMs: m.latencyMs ?? 0,
    },
  };
}

/**
 * The payload of a recorded call, as the recorder's method documents it; `timeMs` (when
 * the call was made) dates a turn id made now. Runs in capture order, so turn ids are
 * made in order too.
 */
export function recordedPayload(kind: RecordedKind, a: unknown, b: unknown, timeMs: number): Payload {
  switch (kind) {
    case RecordedKind.Start: {
      const opts = a as { channel?: string; locale?: string };
      return {
        $case: "sessionStart",
        value: {
          channel: text(opts.channel),
          locale: text(opts.locale),
          userGroups: (b as string[] | undefined) ?? [],
          attributes: {},
        },
      };
    }
    case RecordedKind.UserMessage:
      return message(Role.ROLE_USER, b as Turn, timeMs, [
        { kind: { $case: "text", value: { text: a as string } } },
      ]);
    case RecordedKind.AssistantMessage: {
      const m = a as AssistantMessageInput;
      const parts: PartInput[] = [];
      if (m.text !== undefined) parts.push({ kind: { $case: "text", value: { text: m.text } } });
      for (const call of m.toolCalls ?? []) parts.push({ kind: { $case: "toolCall", value: call } });
      return message(Role.ROLE_ASSISTANT, b as Turn, timeMs, parts, m);
    }
    case RecordedKind.ToolResult: {
      const r = a as { callId: string; name: string; content: string; isError?: boolean };
      return message(Role.ROLE_TOOL, b as Turn, timeMs, [{ kind: { $case: "toolResult", value: r } }]);
    }
    case RecordedKind.Feedback: {
      const f = a as { score: number; kind?: string; comment?: string; targetEventId?: string };
      return {
        $case: "feedback",
        value: {
          score: f.score,
          kind: text(f.kind),
          comment: text(f.comment),
          targetEventId: text(f.targetEventId),
        },
      };
    }
    case RecordedKind.Custom:
      return { $case: "custom", value: { name: a as string, data: b as Record<string, unknown> } };
    case RecordedKind.End:
      return { $case: "sessionEnd", value: { reason: a as EndReason, turnCount: b as number } };
  }
}
