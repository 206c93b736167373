// Applies a tenant's policy to an event: every free-text field is scanned, matches are
// masked or hashed, or the field is dropped, and each field's hits are recorded.
import { createHmac } from "node:crypto";

import { BinaryWriter, Event, type RedactionHit } from "@sessiontrack/proto";

import type { CompiledRule, RedactionPolicy, RedactionSettings } from "./policy.js";
import { compileRedactionPolicy } from "./policy.js";
import { mayContainSensitiveData, textCores } from "./prefilter.js";

/** Hex characters of HMAC-SHA256 kept in a hashed token (64 bits). */
const HASH_HEX_CHARS = 16;

/** The outcome of redacting one string. */
export interface TextRedaction {
  /** The redacted text ("" when dropped). */
  text: string;
  /** True when a rule with action drop matched: the whole field goes. */
  dropped: boolean;
  /** Matches per rule, with the action actually applied. */
  hits: Array<{ rule: string; action: string; count: number }>;
}

/** An event after redaction: the bytes to store and what was changed. */
export interface RedactedEvent {
  /** Encoded sessiontrack.v1.Event: the original bytes when nothing matched. */
  event: Uint8Array;
  redactions: RedactionHit[];
}

/** A field's path, or a function building it (only called when the field had hits). */
type Path = string | (() => string);

interface Span {
  start: number;
  end: number;
  rule: CompiledRule;
  value: string;
}

const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** A map key or object field as a path step: `.name`, or `["odd key"]`. */
function step(key: string): string {
  return IDENTIFIER.test(key) ? `.${key}` : `[${JSON.stringify(key)}]`;
}

/**
 * Redacts events for one tenant: its compiled policy plus a scratch protobuf writer, so
 * share one per tenant within a thread (calls are synchronous).
 */
export class Redactor {
  private readonly usesBuiltIns: boolean;
  // Reused across events: the writer keeps its grown buffer, and finish() copies out.
  private readonly writer = new BinaryWriter();

  constructor(readonly policy: RedactionPolicy) {
    this.usesBuiltIns = policy.rules.some((rule) => rule.detector.cores !== undefined);
  }

  /** The token a hashed value becomes: `[<rule>:<16 hex of HMAC-SHA256(salt, value)>]`. */
  hashToken(rule: string, value: string): string {
    const digest = createHmac("sha256", this.policy.hashSalt ?? "")
      .update(value, "utf8")
      .digest("hex");
    return `[${rule}:${digest.slice(0, HASH_HEX_CHARS)}]`;
  }

  /** Redacts one string; null when no rule matched. */
  redactText(text: string): TextRedaction | null {
    if (text.length === 0) return null;
    const spans: Span[] = [];
    // One scan says which built-ins can match at all; the others are skipped.
    const cores = this.usesBuiltIns ? textCores(text) : 0;
    for (const rule of this.policy.rules) {
      const needs = rule.detector.cores;
      if (needs !== undefined && (needs & cores) === 0) continue;
      for (const match of rule.detector.find(text, cores)) {
        // An earlier rule's match wins an overlap.
        if (spans.some((span) => match.start < span.end && span.start < match.end)) continue;
        spans.push({ start: match.start, end: match.end, rule, value: match.value });
      }
    }
    if (spans.length === 0) return null;
    const dropped = spans.some((span) => span.rule.action === "drop");
    const counts = new Map<string, { rule: string; action: string; count: number }>();
    for (const span of spans) {
      const action = dropped ? "drop" : span.rule.action;
      const hit = counts.get(span.rule.name);
      if (hit === undefined) counts.set(span.rule.name, { rule: span.rule.name, action, count: 1 });
      else hit.count += 1;
    }
    if (dropped) return { text: "", dropped, hits: [...counts.values()] };
    spans.sort((a, b) => a.start - b.start);
    let out = "";
    let at = 0;
    for (const span of spans) {
      out += text.slice(at, span.start);
      out += span.rule.action === "hash" ? this.hashToken(span.rule.name, span.value) : `[${span.rule.name}]`;
      at = span.end;
    }
    out += text.slice(at);
    return { text: out, dropped, hits: [...counts.values()] };
  }

  /**
   * Redacts every free-text field of a decoded event in place and returns the hits:
   * text parts, tool call arguments, tool results, feedback comments, custom data string
   * values (recursively), label values and session start attribute values.
   */
  redactEvent(event: Event): RedactionHit[] {
    const hits: RedactionHit[] = [];
    // Returns the new value, or undefined when the field is to be dropped.
    // Paths are built only for fields that had hits.
    const field = (value: string, path: Path): string | undefined => {
      const result = this.redactText(value);
      if (result === null) return value;
      const where = typeof path === "string" ? path : path();
      for (const hit of result.hits) hits.push({ ...hit, path: where });
      return result.dropped ? undefined : result.text;
    };
    const map = (entries: { [key: string]: string }, path: string): void => {
      for (const [key, value] of Object.entries(entries)) {
        const next = field(value, () => `${path}${step(key)}`);
        if (next === undefined) delete entries[key];
        else entries[key] = next;
      }
    };
    map(event.labels, "labels");
    const payload = event.payload;
    switch (payload?.$case) {
      case "sessionStart":
        map(payload.value.attributes, "session_start.attributes");
        break;
      case "message":
        payload.value.parts.forEach((part, index) => {
          const kind = part.kind;
          const at = `message.parts[${index}]`;
          switch (kind?.$case) {
            case "text":
              kind.value.text = field(kind.value.text, `${at}.text`) ?? "";
              break;
            case "toolCall":
              kind.value.argumentsJson =
                field(kind.value.argumentsJson, `${at}.tool_call.arguments_json`) ?? "";
              break;
            case "toolResult":
              kind.value.content = field(kind.value.content, `${at}.tool_result.content`) ?? "";
              break;
            default:
              break;
          }
        });
        break;
      case "feedback":
        payload.value.comment = field(payload.value.comment, "feedback.comment") ?? "";
        break;
      case "custom":
        if (payload.value.data !== undefined) this.redactStruct(payload.value.data, "custom.data", field);
        break;
      default:
        break;
    }
    return hits;
  }

  private redactStruct(
    object: { [key: string]: unknown },
    path: string,
    field: (value: string, path: Path) => string | undefined,
  ): void {
    for (const [key, value] of Object.entries(object)) {
      const at = `${path}${step(key)}`;
      if (typeof value === "string") {
        const next = field(value, at);
        if (next === undefined) delete object[key];
        else object[key] = next;
      } else if (Array.isArray(value)) {
        this.redactList(value, at, field);
      } else if (typeof value === "object" && value !== null) {
        this.redactStruct(value as { [key: string]: unknown }, at, field);
      }
    }
  }

  private redactList(
    list: unknown[],
    path: string,
    field: (value: string, path: Path) => string | undefined,
  ): void {
    list.forEach((value, index) => {
      const at = `${path}[${index}]`;
      if (typeof value === "string") {
        // A dropped list element becomes null, so the other elements keep their indexes.
        list[index] = field(value, at) ?? null;
      } else if (Array.isArray(value)) {
        this.redactList(value, at, field);
      } else if (typeof value === "object" && value !== null) {
        this.redactStruct(value as { [key: string]: unknown }, at, field);
      }
    });
  }

  /**
   * Redacts an encoded event. Events the byte prefilter clears are returned as they came,
   * without decoding; the others are decoded (or `decoded` is used, and modified), redacted
   * and re-encoded, unless nothing matched after all.
   */
  redactEncoded(bytes: Uint8Array, decoded?: Event): RedactedEvent {
    if (this.policy.rules.length === 0) return { event: bytes, redactions: [] };
    if (this.policy.prefilterable && !mayContainSensitiveData(bytes)) return { event: bytes, redactions: [] };
    const event = decoded ?? Event.decode(bytes);
    const redactions = this.redactEvent(event);
    if (redactions.length === 0) return { event: bytes, redactions };
    return { event: Event.encode(event, this.writer).finish(), redactions };
  }
}

/** Compiles a tenant's settings (ConfigError when invalid) into a Redactor. */
export function createRedactor(tenant: string, settings: RedactionSettings = {}): Redactor {
  return new Redactor(compileRedactionPolicy(tenant, settings));
}
