import type { SessionTrackClient } from "@sessiontrack/client";

/** One scripted turn of a demo conversation. */
interface DemoTurn {
  user: string;
  provider: string;
  model: string;
  tool?: { name: string; args: Record<string, unknown>; result: Record<string, unknown> };
  assistant: string;
}

interface DemoSession {
  userId: string;
  userGroups: string[];
  channel: string;
  locale: string;
  turns: DemoTurn[];
  feedback?: { score: number; comment: string };
}

/**
 * Realistic multi-turn sessions: a support chat that calls a tool and switches to a
 * larger model for a refund decision, a travel booking, and a short coding question.
 */
export const DEMO_SESSIONS: readonly DemoSession[] = [
  {
    userId: "user-1042",
    userGroups: ["customers"],
    channel: "web",
    locale: "en-GB",
    turns: [
      {
        user: "Hi, my order 88213 hasn't arrived yet. It was due on Monday.",
        provider: "openai",
        model: "gpt-4o-mini",
        tool: {
          name: "lookup_order",
          args: { order_id: "88213" },
          result: { status: "delayed", carrier: "DHL", eta: "Thursday" },
        },
        assistant: "I've checked order 88213: DHL reports a delay and now expects to deliver it on Thursday.",
      },
      {
        user: "That's the second delay. Can I get a refund of the shipping fee? Email me at jane.doe@example.com or call +44 20 7946 0958.",
        provider: "anthropic",
        model: "claude-sonnet-4",
        assistant:
          "I'm sorry about the repeated delay. I've refunded the £4.99 shipping fee to your original payment method; it should show within 3–5 working days, and a confirmation is on its way by email.",
      },
    ],
    feedback: { score: 1, comment: "quick and helpful" },
  },
  {
    userId: "user-2077",
    userGroups: ["beta-testers"],
    channel: "slack",
    locale: "de-DE",
    turns: [
      {
        user: "Find me a train from Berlin to Munich tomorrow morning, first class.",
        provider: "openai",
        model: "gpt-4o",
        tool: {
          name: "search_trains",
          args: { from: "Berlin Hbf", to: "München Hbf", date: "tomorrow", class: 1 },
          result: { options: [{ dep: "07:04", arr: "11:02", price_eur: 139.9 }] },
        },
        assistant: "The ICE at 07:04 arrives in Munich at 11:02; first class costs €139.90. Shall I book it?",
      },
      {
        user: "Yes please, window seat.",
        provider: "openai",
        model: "gpt-4o",
        assistant: "Booked: ICE 507, coach 11, seat 45 (window). Your ticket is in the app.",
      },
    ],
  },
  {
    userId: "user-3150",
    userGroups: ["developers"],
    channel: "web",
    locale: "en-US",
    turns: [
      {
        user: "Why does my Node.js stream stop emitting data after the first chunk?",
        provider: "anthropic",
        model: "claude-haiku-4",
        assistant:
          "A readable stream in paused mode only emits when read() is called or a 'data' listener is attached; check that nothing calls pause() and that the consumer drains the writable side.",
      },
    ],
    feedback: { score: -1, comment: "wanted a code sample" },
  },
];

/** Plays {@link DEMO_SESSIONS} through the SDK, the way a bot would; returns the session ids. */
export function runDemoBot(client: SessionTrackClient, runId: string): string[] {
  const sessionIds: string[] = [];
  DEMO_SESSIONS.forEach((demo, index) => {
    const sessionId = `demo-${runId}-${index + 1}`;
    sessionIds.push(sessionId);
    const session = client.session(sessionId, { userId: demo.userId, userGroups: demo.userGroups });
    session.start({ channel: demo.channel, locale: demo.locale });
    demo.turns.forEach((turn, turnIndex) => {
      session.userMessage(turn.user);
      if (turn.tool !== undefined) {
        const callId = `call-${index + 1}-${turnIndex + 1}`;
        session.assistantMessage({
          provider: turn.provider,
          model: turn.model,
          toolCalls: [{ callId, name: turn.tool.name, argumentsJson: JSON.stringify(turn.tool.args) }],
          finishReason: "tool_calls",
        });
        session.toolResult({ callId, name: turn.tool.name, content: JSON.stringify(turn.tool.result) });
      }
      session.assistantMessage({
        text: turn.assistant,
        provider: turn.provider,
        model: turn.model,
        usage: { inputTokens: 120 + turn.user.length, outputTokens: Math.round(turn.assistant.length / 4) },
        latencyMs: 400 + turn.assistant.length * 3,
        finishReason: "stop",
      });
    });
    if (demo.feedback !== undefined) session.feedback({ kind: "thumbs", ...demo.feedback });
    session.end();
  });
  return sessionIds;
}
