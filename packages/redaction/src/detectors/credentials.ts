// Credentials: API keys, JWTs, passwords, private keys, bearer and basic tokens.
import {
  CORE_AT,
  CORE_BEARER_BASIC,
  CORE_JWT,
  CORE_KEY_PREFIX,
  CORE_KEY_VALUE,
  CORE_PASSWORD_IS,
  CORE_PRIVATE_KEY,
} from "../categories.js";
import { ALL, scan, groupSpan, shannonEntropy, type Detector, type Match } from "./common.js";

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

export const apiKey: Detector = {
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

export const jwt: Detector = {
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

export const secret: Detector = {
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
