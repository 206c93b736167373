// Test support shared by the index's test files: a small corpus of realistic events from
// two tenants, encoded as StoredEvents exactly as ingest's shipper sends them.
import { Event, Role, StoredEvent } from "@sessiontrack/proto";

/** 2026-01-10T10:00:00Z: the fixture corpus's first event. */
export const T0 = Date.UTC(2026, 0, 10, 10, 0, 0);
const MINUTE = 60_000;

type Payload = NonNullable<Event["payload"]>;

interface FixtureSession {
  tenant: string;
  sessionId: string;
  botId: string;
  userId: string;
  labels: Record<string, string>;
  /** Minutes after T0 of the first event. */
  startMinute: number;
  payloads: Payload[];
}

const text = (role: Role, body: string, model = "gpt-4o", provider = "openai"): Payload => ({
  $case: "message",
  value: {
    turnId: "t",
    turnIndex: 0,
    role,
    provider,
    model,
    parts: [{ kind: { $case: "text", value: { text: body } } }],
    usage: undefined,
    finishReason: "",
    latencyMs: 0,
  },
});

/** The fixture sessions. */
export const SESSIONS: FixtureSession[] = [
  {
    tenant: "acme",
    sessionId: "s-a1",
    botId: "support-bot",
    userId: "u1",
    labels: { env: "prod" },
    startMinute: 0,
    payloads: [
      { $case: "sessionStart", value: { channel: "web", locale: "en-GB", userGroups: [], attributes: {} } },
      text(Role.ROLE_USER, "My parcel never arrived and I would like a refund"),
      text(Role.ROLE_ASSISTANT, "I am sorry about the parcel. I have started a refund for order 1234."),
      {
        $case: "message",
        value: {
          turnId: "t",
          turnIndex: 1,
          role: Role.ROLE_ASSISTANT,
          provider: "openai",
          model: "gpt-4o",
          parts: [
            {
              kind: {
                $case: "toolCall",
                value: { callId: "c1", name: "lookup_order", argumentsJson: '{"order":"1234"}' },
              },
            },
          ],
          usage: undefined,
          finishReason: "tool_calls",
          latencyMs: 0,
        },
      },
      {
        $case: "feedback",
        value: { targetEventId: "", score: 1, comment: "quick refund, thanks", kind: "thumbs" },
      },
    ],
  },
  {
    tenant: "acme",
    sessionId: "s-a2",
    botId: "sales-bot",
    userId: "u2",
    labels: { env: "staging" },
    startMinute: 60,
    payloads: [
      text(Role.ROLE_USER, "Do you ship to Norway?", "claude-sonnet-4", "anthropic"),
      text(
        Role.ROLE_ASSISTANT,
        "Yes, we ship every parcel to Norway within five days.",
        "claude-sonnet-4",
        "anthropic",
      ),
      {
        $case: "custom",
        value: { name: "retrieval", data: { source: "shipping-faq", note: "norway tariffs" } },
      },
    ],
  },
  {
    tenant: "acme",
    sessionId: "s-a3",
    botId: "support-bot",
    userId: "u1",
    labels: { env: "prod" },
    startMinute: 120,
    payloads: [
      text(Role.ROLE_USER, "The password reset link expired", "gpt-4o-mini"),
      text(Role.ROLE_ASSISTANT, "Here is a new password reset link, valid for an hour.", "gpt-4o-mini"),
    ],
  },
  {
    tenant: "acme",
    sessionId: "s-shared",
    botId: "support-bot",
    userId: "u3",
    labels: {},
    startMinute: 180,
    payloads: [text(Role.ROLE_USER, "acme question about invoices")],
  },
  {
    tenant: "globex",
    sessionId: "s-g1",
    botId: "support-bot",
    userId: "u1",
    labels: { env: "prod" },
    startMinute: 10,
    payloads: [
      text(Role.ROLE_USER, "Globex secret: refund my parcel please"),
      text(Role.ROLE_ASSISTANT, "Globex will refund the parcel."),
    ],
  },
  {
    tenant: "globex",
    sessionId: "s-shared",
    botId: "support-bot",
    userId: "u9",
    labels: {},
    startMinute: 200,
    payloads: [text(Role.ROLE_USER, "globex question about invoices and refund")],
  },
];

/** One fixture event with its encoded StoredEvent. */
export interface FixtureEvent {
  tenant: string;
  event: Event;
  stored: Buffer;
}

/** Encodes an event as the StoredEvent ingest writes for `tenant`. */
export function storedEventBytes(tenant: string, event: Event): Buffer {
  return Buffer.from(
    StoredEvent.encode({
      tenant,
      eventId: event.eventId,
      sessionId: event.sessionId,
      seq: event.seq,
      receivedAt: new Date(event.time!.getTime() + 5),
      event: Buffer.from(Event.encode(event).finish()),
      redactions: [],
    }).finish(),
  );
}

/** Every fixture event, in session order. Event ids are stable across calls. */
export function fixtureEvents(): FixtureEvent[] {
  const out: FixtureEvent[] = [];
  for (const session of SESSIONS) {
    session.payloads.forEach((payload, index) => {
      const event = Event.fromPartial({
        eventId: `${session.tenant}-${session.sessionId}-${index + 1}`,
        sessionId: session.sessionId,
        seq: index + 1,
        time: new Date(T0 + (session.startMinute + index) * MINUTE),
        botId: session.botId,
        userId: session.userId,
        labels: session.labels,
        payload,
      });
      out.push({ tenant: session.tenant, event, stored: storedEventBytes(session.tenant, event) });
    });
  }
  return out;
}

/** The fixture events of one session of one tenant, in seq order. */
export function sessionEvents(tenant: string, sessionId: string): FixtureEvent[] {
  return fixtureEvents().filter((e) => e.tenant === tenant && e.event.sessionId === sessionId);
}
