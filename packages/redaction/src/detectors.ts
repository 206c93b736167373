// The built-in detectors. Each finds spans of one kind of sensitive value in a string.
//
// Soundness rule shared with prefilter.ts: every character class that separates or
// surrounds the "core" of a match is ASCII-only (no \s, no \b on non-ASCII), so a match
// in a decoded string always implies the prefilter's core pattern in the raw UTF-8 bytes.
import { isIPv6 } from "node:net";

import {
  CORE_AT,
  CORE_BEARER_BASIC,
  CORE_DIGITS,
  CORE_IPV4,
  CORE_IPV6,
  CORE_JWT,
  CORE_KEY_PREFIX,
  CORE_KEY_VALUE,
  CORE_PASSWORD_IS,
  CORE_PRIVATE_KEY,
} from "./categories.js";

/** Names of the built-in detectors, as recorded in StoredEvent.redactions. */
export const DETECTOR_NAMES = [
  "email",
  "phone",
  "payment_card",
  "ip_address",
  "api_key",
  "jwt",
  "secret",
] as const;

/** A built-in detector's name. */
export type DetectorName = (typeof DETECTOR_NAMES)[number];

/** Every core bit set: run every part of a detector. */
const ALL = -1;

/** One match: [start, end) in the string, and the value used for hashing. */
export interface Match {
  start: number;
  end: number;
  /** The matched value normalised for hashing (e.g. lower-cased email, digits of a phone). */
  value: string;
}

/** Finds every match of one kind in a string. */
export interface Detector {
  readonly name: string;
  /**
   * For built-ins: prefilter cores (CORE_* bits) of which every match contains at least
   * one, so text without them is skipped. Absent: always run.
   */
  readonly cores?: number;
  /** `cores`, when given, are the text's (see textCores): parts that cannot match are skipped. */
  find(text: string, cores?: number): Match[];
}

/** Runs a global regex; `accept` turns a regex match into a Match or rejects it (null). */
function scan(
  regex: RegExp,
  text: string,
  accept: (match: RegExpExecArray) => Match | Match[] | null,
  out: Match[] = [],
): Match[] {
  regex.lastIndex = 0;
  let match: RegExpExecArray | null;
  while ((match = regex.exec(text)) !== null) {
    if (match[0].length === 0) {
      regex.lastIndex += 1;
      continue;
    }
    const found = accept(match);
    if (found === null) continue;
    if (Array.isArray(found)) out.push(...found);
    else out.push(found);
  }
  return out;
}

/** Bounds of the first capture group that took part (regexes with the `d` flag), else the whole match. */
function groupSpan(match: RegExpExecArray): [number, number] {
  const indices = match.indices;
  if (indices !== undefined) {
    for (let group = 1; group < indices.length; group += 1) {
      const span = indices[group];
      if (span !== undefined) return span;
    }
  }
  return [match.index, match.index + match[0].length];
}

const countDigits = (text: string): number => {
  let count = 0;
  for (let i = 0; i < text.length; i += 1) {
    const code = text.charCodeAt(i);
    if (code >= 48 && code <= 57) count += 1;
  }
  return count;
};

const digitsOf = (text: string): string => text.replace(/[^0-9]/g, "");

/** Shannon entropy in bits per character. */
export function shannonEntropy(text: string): number {
  const counts = new Map<string, number>();
  for (const char of text) counts.set(char, (counts.get(char) ?? 0) + 1);
  let entropy = 0;
  for (const count of counts.values()) {
    const p = count / text.length;
    entropy -= p * Math.log2(p);
  }
  return entropy;
}

// ---------------------------------------------------------------------------------------
// email

// File names like icon@2x.png look like addresses; these "TLDs" are file extensions.
const FILE_EXTENSIONS = new Set([
  "png",
  "jpg",
  "jpeg",
  "gif",
  "svg",
  "webp",
  "bmp",
  "ico",
  "js",
  "ts",
  "css",
  "json",
  "txt",
  "pdf",
  "mp4",
  "mov",
]);
const EMAIL =
  /(?<![A-Za-z0-9._%+-])[A-Za-z0-9_%+-](?:[A-Za-z0-9._%+-]{0,62}[A-Za-z0-9_%+-])?@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+([A-Za-z]{2,24})(?![A-Za-z0-9-]|\.[A-Za-z0-9])/g;

const EMAIL_AT = new RegExp(EMAIL.source, "y");
const LOCAL_CHAR = /[A-Za-z0-9._%+-]/;
const MAX_LOCAL = 64;

const email: Detector = {
  name: "email",
  cores: CORE_AT,
  // Anchored on each '@' rather than trying the regex at every position of the text.
  find(text) {
    const out: Match[] = [];
    let searchFrom = 0;
    for (let at = text.indexOf("@"); at !== -1; at = text.indexOf("@", Math.max(at + 1, searchFrom))) {
      let start = at;
      while (start > 0 && at - start < MAX_LOCAL && LOCAL_CHAR.test(text[start - 1]!)) start -= 1;
      for (let from = start; from < at; from += 1) {
        EMAIL_AT.lastIndex = from;
        const match = EMAIL_AT.exec(text);
        if (match === null) continue;
        if (!FILE_EXTENSIONS.has(match[1]!.toLowerCase()) && !match[0].includes("..")) {
          out.push({ start: from, end: from + match[0].length, value: match[0].toLowerCase() });
          searchFrom = from + match[0].length;
        }
        break;
      }
    }
    return out;
  },
};

// ---------------------------------------------------------------------------------------
// phone

const PHONE_MIN_DIGITS = 8;
const PHONE_MIN_NATIONAL_DIGITS = 9;
const PHONE_MAX_DIGITS = 15;
// Three shapes: international (+ or 00 and a country code), North American national
// ((555) 123-4567, 555-123-4567) and European national with a trunk 0 (030 12345678,
// 06 12 34 56 78, 07911 123456, 0612345678). Separators between digit groups are at
// most ") (" — prefilter.ts relies on that bound. National groups use one separator
// consistently, so "01.02.2024 10:30" is a date, not a number.
const PHONE = new RegExp(
  [
    String.raw`(?<![\w+#./:-])`,
    "(?:",
    String.raw`(?:\+|00)[1-9]\d{0,2}(?:[ .-]?\(?\d{1,5}\)?){1,6}`,
    "|",
    String.raw`(?:1[ .-])?(?:\([2-9]\d{2}\)[ .-]?|[2-9]\d{2}[ .-])\d{3}[ .-]\d{4}`,
    "|",
    String.raw`\(0[1-9]\d{0,4}\) ?\d{2,8}(?:[ .-]\d{2,8}){0,3}`,
    "|",
    String.raw`0[1-9]\d{0,4}([ ./-])\d{2,8}(?:\1\d{2,8}){0,4}`,
    "|",
    String.raw`0[1-9]\d{8,10}`,
    ")",
    String.raw`(?![\w@]|[./:-]\d)`,
  ].join(""),
  "g",
);
const TRAILING_GROUP = /[ .-]?\(?\d+\)?$/;

const phone: Detector = {
  name: "phone",
  cores: CORE_DIGITS,
  find(text) {
    return scan(PHONE, text, (match) => {
      let value = match[0];
      let digits = countDigits(value);
      // A greedy international match may swallow a following number: trim whole groups.
      while (digits > PHONE_MAX_DIGITS && TRAILING_GROUP.test(value)) {
        value = value.replace(TRAILING_GROUP, "");
        digits = countDigits(value);
      }
      // A national number with a trunk 0 has 9 digits or more; 8 would be a date (05-11-2023).
      const min = /^\(?0[1-9]/.test(value) ? PHONE_MIN_NATIONAL_DIGITS : PHONE_MIN_DIGITS;
      if (digits < min || digits > PHONE_MAX_DIGITS) return null;
      // "(+1 555 123 4567)": the closing parenthesis is the sentence's, not the number's.
      if (value.endsWith(")") && value.split("(").length < value.split(")").length)
        value = value.slice(0, -1);
      const plus = value.startsWith("+") ? "+" : "";
      return { start: match.index, end: match.index + value.length, value: plus + digitsOf(value) };
    });
  },
};

// ---------------------------------------------------------------------------------------
// payment card

/** Luhn checksum over a string of digits. */
export function luhnValid(digits: string): boolean {
  let sum = 0;
  let double = false;
  for (let i = digits.length - 1; i >= 0; i -= 1) {
    let digit = digits.charCodeAt(i) - 48;
    if (double) {
      digit *= 2;
      if (digit > 9) digit -= 9;
    }
    sum += digit;
    double = !double;
  }
  return sum % 10 === 0;
}

// A run of digit groups joined by single spaces or dashes; the card is searched for among
// contiguous groups of the run, so "ref 1234 4111 1111 1111 1111 cvv 123" still finds it.
const DIGIT_RUN = /(?<![\w.,-])\d+(?:[ -]\d+)*(?![\w]|[.,]\d)/g;
const CARD_MIN = 13;
const CARD_MAX = 19;

function cardIn(groups: string[], offsets: number[]): [number, number, string] | null {
  // Longest window first, then leftmost.
  for (let size = groups.length; size >= 1; size -= 1) {
    for (let first = 0; first + size <= groups.length; first += 1) {
      const digits = groups.slice(first, first + size).join("");
      if (digits.length < CARD_MIN || digits.length > CARD_MAX) continue;
      const lead = digits.charCodeAt(0);
      if (lead < 50 || lead > 54) continue; // issuers' numbers start with 2..6
      if (!luhnValid(digits)) continue;
      const last = first + size - 1;
      return [offsets[first]!, offsets[last]! + groups[last]!.length, digits];
    }
  }
  return null;
}

const paymentCard: Detector = {
  name: "payment_card",
  cores: CORE_DIGITS,
  find(text) {
    return scan(DIGIT_RUN, text, (match) => {
      const run = match[0];
      if (countDigits(run) < CARD_MIN) return null;
      const groups: string[] = [];
      const offsets: number[] = [];
      const group = /\d+/g;
      let part: RegExpExecArray | null;
      while ((part = group.exec(run)) !== null) {
        groups.push(part[0]);
        offsets.push(match.index + part.index);
      }
      const found: Match[] = [];
      // Search left to right: a run may hold more than one card.
      let from = 0;
      while (from < groups.length) {
        const card = cardIn(groups.slice(from), offsets.slice(from));
        if (card === null) break;
        found.push({ start: card[0], end: card[1], value: card[2] });
        const next = offsets.findIndex((offset) => offset >= card[1]);
        if (next === -1) break;
        from = next;
      }
      return found.length === 0 ? null : found;
    });
  },
};

// ---------------------------------------------------------------------------------------
// IP addresses

const OCTET = String.raw`(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)`;
// Not inside a longer dotted sequence (1.2.3.4.5, OIDs) and not a version ("v1.2.3.4",
// "version 1.2.3.4").
const IPV4 = new RegExp(
  String.raw`(?<![\w.-])(?<!(?:version|ver|release|build|v)[ \t]?)${OCTET}(?:\.${OCTET}){3}(?![\w-]|\.\d)`,
  "gi",
);
const IPV6_CANDIDATE =
  /(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?:\.(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}|[0-9A-Fa-f]{1,4})?(?![\w:]|\.\d)/g;

const ipAddress: Detector = {
  name: "ip_address",
  cores: CORE_IPV4 | CORE_IPV6,
  find(text, cores = ALL) {
    const out: Match[] = [];
    if (cores & CORE_IPV6 && text.includes(":")) {
      scan(
        IPV6_CANDIDATE,
        text,
        (match) => {
          const candidate = match[0];
          if (!isIPv6(candidate)) return null;
          // "::1", "::" and hex words ("dead::beef") are not anyone's address.
          const groups = candidate.split(/[:.]/).filter((group) => group !== "");
          if (groups.length < 2 || !/\d/.test(candidate)) return null;
          return {
            start: match.index,
            end: match.index + candidate.length,
            value: candidate.toLowerCase(),
          };
        },
        out,
      );
    }
    if ((cores & CORE_IPV4) === 0) return out;
    // IPv4, unless inside an IPv6 address already found (::ffff:192.0.2.1).
    const v6 = out.length;
    return scan(
      IPV4,
      text,
      (match) => {
        const start = match.index;
        const end = start + match[0].length;
        for (let i = 0; i < v6; i += 1) if (start < out[i]!.end && out[i]!.start < end) return null;
        return { start, end, value: match[0] };
      },
      out,
    );
  },
};

// ---------------------------------------------------------------------------------------
// API keys

/** Key formats with a recognisable prefix; the bodies are also prefilter.ts's cores. */
export const API_KEY_BODIES = [
  String.raw`sk-[A-Za-z0-9_-]{20,}`, // OpenAI, Anthropic (sk-ant-…), DeepSeek…
  String.raw`(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}`, // AWS access key ids
  String.raw`gh[pousr]_[A-Za-z0-9]{36,255}`, // GitHub tokens
  String.raw`github_pat_[A-Za-z0-9_]{22,255}`, // GitHub fine-grained tokens
  String.raw`xox[abposr]-[A-Za-z0-9-]{10,}`, // Slack tokens
  String.raw`[rs]k_(?:live|test)_[A-Za-z0-9]{16,}`, // Stripe secret / restricted keys
  String.raw`AIza[0-9A-Za-z_-]{35}`, // Google API keys
  String.raw`glpat-[A-Za-z0-9_-]{20,}`, // GitLab personal access tokens
  String.raw`npm_[A-Za-z0-9]{36}`, // npm tokens
  String.raw`hf_[A-Za-z0-9]{34,}`, // Hugging Face tokens
  String.raw`SG\.[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43}`, // SendGrid
  String.raw`st_[A-Za-z0-9_-]{43}`, // SessionTrack's own API keys
] as const;
const PREFIXED_KEY = new RegExp(
  String.raw`(?<![A-Za-z0-9_-])(?:${API_KEY_BODIES.join("|")})(?![A-Za-z0-9_-])`,
  "g",
);
// key=value / "key": "value" where the key names a secret and the value looks random.
export const GENERIC_KEY_NAME = String.raw`(?:key|token|secret)`;
const GENERIC_KEY = new RegExp(
  String.raw`(?:api[_-]?key|apikey|access[_-]?key|secret[_-]?(?:access[_-]?)?key|private[_-]?key|client[_-]?secret|(?:auth|access|refresh|api|id|session)[_-]?token|token|secret)["']?[ \t]*[:=][ \t]*["']?([A-Za-z0-9_+/.=-]{16,})`,
  "gid",
);
const PLACEHOLDER = /^(?:[A-Z_]+|.*(?:x{4}|X{4}|\*{3}|your|example|placeholder|redacted|changeme).*)$/i;

/** Whether a key=value value looks like a real secret rather than a word or placeholder. */
export function looksRandom(value: string): boolean {
  if (PLACEHOLDER.test(value)) return false;
  if (!/[0-9]/.test(value) || !/[A-Za-z]/.test(value)) return false;
  return shannonEntropy(value) >= 3;
}

const apiKey: Detector = {
  name: "api_key",
  cores: CORE_KEY_PREFIX | CORE_KEY_VALUE,
  find(text, cores = ALL) {
    const out: Match[] = [];
    if (cores & CORE_KEY_PREFIX) {
      scan(
        PREFIXED_KEY,
        text,
        (match) => {
          const key = match[0];
          // sk-… is also ordinary hyphenated text ("sk-learn-compatible"): demand a real key's mix.
          if (key.startsWith("sk-") && !(/[0-9]/.test(key) && /[A-Z]/.test(key) && /[a-z]/.test(key))) {
            return null;
          }
          if (key.startsWith("xox") && !/[0-9]/.test(key)) return null;
          return { start: match.index, end: match.index + key.length, value: key };
        },
        out,
      );
    }
    if ((cores & CORE_KEY_VALUE) === 0) return out;
    return scan(
      GENERIC_KEY,
      text,
      (match) => {
        const [start, end] = groupSpan(match);
        const value = text.slice(start, end);
        return looksRandom(value) ? { start, end, value } : null;
      },
      out,
    );
  },
};

// ---------------------------------------------------------------------------------------
// JWT

const JWT = /(?<![A-Za-z0-9_-])eyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*/g;

const jwt: Detector = {
  name: "jwt",
  cores: CORE_JWT,
  find(text) {
    if (!text.includes("eyJ")) return [];
    return scan(JWT, text, (match) => {
      const header = match[0].slice(0, match[0].indexOf("."));
      try {
        const parsed: unknown = JSON.parse(Buffer.from(header, "base64url").toString("utf8"));
        if (typeof parsed !== "object" || parsed === null || !("alg" in parsed || "typ" in parsed)) {
          return null;
        }
      } catch {
        return null;
      }
      return { start: match.index, end: match.index + match[0].length, value: match[0] };
    });
  },
};

// ---------------------------------------------------------------------------------------
// secrets

const PRIVATE_KEY =
  /-----BEGIN[ A-Z0-9]*PRIVATE KEY(?: BLOCK)?-----[\s\S]*?(?:-----END[ A-Z0-9]*PRIVATE KEY(?: BLOCK)?-----|$)/g;
// A quoted value runs to its closing quote; a bare one to a space or separator.
const PASSWORD =
  /(?:password|passwd|passphrase|pwd)["']?[ \t]*[:=][ \t]*(?:"([^"\r\n]{3,})"|'([^'\r\n]{3,})'|([^ \t\r\n"',;&<>]{3,}))/dgi;
const PASSWORD_SENTENCE = /(?<![A-Za-z])password[ \t]+is[ \t]+["']?([^ \t\r\n"',;]{4,})/dgi;
const BEARER = /(?<![A-Za-z])bearer[ \t]+([A-Za-z0-9_.~+/-]{16,}=*)/dgi;
const BASIC =
  /(?<![A-Za-z])authorization["']?[ \t]*[:=][ \t]*["']?basic[ \t]+([A-Za-z0-9+/]{8,}={0,2})(?![A-Za-z0-9+/=])/dgi;
const URL_PASSWORD = /[A-Za-z][A-Za-z0-9+.-]*:\/\/[^\s:/@]+:([^\s@/]+)@/dg;
const NOT_A_PASSWORD = new Set([
  "true",
  "false",
  "null",
  "none",
  "nil",
  "undefined",
  "required",
  "optional",
  "string",
  "empty",
  "redacted",
  "hidden",
  "secret",
  "password",
]);

function secretValue(text: string, match: RegExpExecArray): Match | null {
  const [start, end] = groupSpan(match);
  const value = text.slice(start, end);
  if (NOT_A_PASSWORD.has(value.toLowerCase())) return null;
  if (/^\*+$|^\[|^\$\{|^\{\{|^%\(/.test(value)) return null;
  return { start, end, value };
}

const secret: Detector = {
  name: "secret",
  cores: CORE_PRIVATE_KEY | CORE_KEY_VALUE | CORE_PASSWORD_IS | CORE_BEARER_BASIC | CORE_AT,
  find(text, cores = ALL) {
    const out: Match[] = [];
    if (cores & CORE_PRIVATE_KEY && text.includes("-----BEGIN")) {
      scan(
        PRIVATE_KEY,
        text,
        (match) => ({ start: match.index, end: match.index + match[0].length, value: match[0] }),
        out,
      );
    }
    if (cores & CORE_KEY_VALUE) scan(PASSWORD, text, (match) => secretValue(text, match), out);
    if (cores & CORE_PASSWORD_IS) {
      scan(
        PASSWORD_SENTENCE,
        text,
        // In prose, only a value with a digit or symbol: "password is required" is not one.
        (match) => (/[^A-Za-z]/.test(match[1]!) ? secretValue(text, match) : null),
        out,
      );
    }
    if (cores & CORE_BEARER_BASIC) {
      scan(BEARER, text, (match) => secretValue(text, match), out);
      scan(BASIC, text, (match) => secretValue(text, match), out);
    }
    if (cores & CORE_AT && text.includes("://"))
      scan(URL_PASSWORD, text, (match) => secretValue(text, match), out);
    return out;
  },
};

/**
 * The built-in detectors in priority order: where two matches overlap, the one of the
 * earlier detector wins (a JWT inside "Bearer …" is reported as jwt, digits inside a key
 * are not a phone number).
 */
export const BUILT_IN_DETECTORS: readonly Detector[] = [
  jwt,
  secret,
  apiKey,
  email,
  paymentCard,
  ipAddress,
  phone,
];

/** A built-in detector by name. */
export function builtInDetector(name: DetectorName): Detector {
  const found = BUILT_IN_DETECTORS.find((detector) => detector.name === name);
  if (found === undefined) throw new Error(`no built-in detector "${name}"`);
  return found;
}
