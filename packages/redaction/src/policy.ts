// A tenant's redaction settings (as the tenants file holds them), validated and compiled.
import { ConfigError } from "@sessiontrack/errors";

import {
  BUILT_IN_DETECTORS,
  DETECTOR_NAMES,
  type Detector,
  type DetectorName,
  type Match,
} from "./detectors.js";

/** What is done to a match: replaced by a mask, by a keyed hash, or the whole field removed. */
export type RedactionAction = "mask" | "hash" | "drop";

/** A tenant's custom rule: a regex and what to do with its matches. */
export interface CustomRuleSettings {
  /** Recorded in StoredEvent.redactions and used in the mask, e.g. "order_id" → "[order_id]". */
  name: string;
  /** JavaScript regular expression source. */
  pattern: string;
  /** Regex flags among "i", "m", "s", "u" ("g" is implied). */
  flags?: string | undefined;
  /** Defaults to mask. */
  action?: RedactionAction | undefined;
}

/** A tenant's redaction settings; every field is optional and absent means "the default". */
export interface RedactionSettings {
  /** HMAC-SHA256 key for action hash; required (16+ characters) when any rule hashes. */
  hashSalt?: string | undefined;
  /** Per built-in detector: an action, or "off". Unlisted detectors mask. */
  detectors?: { [name in DetectorName]?: RedactionAction | "off" | undefined } | undefined;
  /** Custom rules, applied before the built-in detectors. */
  rules?: readonly CustomRuleSettings[] | undefined;
}

/** One rule ready to run. */
export interface CompiledRule {
  name: string;
  action: RedactionAction;
  detector: Detector;
  builtIn: boolean;
}

/** A tenant's compiled rules, in priority order (custom rules first). */
export interface RedactionPolicy {
  tenant: string;
  rules: readonly CompiledRule[];
  hashSalt: string | undefined;
  /** True when only built-in detectors run, so the byte prefilter is exact enough to skip events. */
  prefilterable: boolean;
}

const ACTIONS = new Set<string>(["mask", "hash", "drop"]);
const RULE_NAME = /^[a-z][a-z0-9_-]{0,62}$/;
const MIN_SALT_CHARS = 16;

function customDetector(name: string, regex: RegExp): Detector {
  return {
    name,
    find(text: string): Match[] {
      const out: Match[] = [];
      regex.lastIndex = 0;
      let match: RegExpExecArray | null;
      while ((match = regex.exec(text)) !== null) {
        if (match[0].length === 0) {
          regex.lastIndex += 1;
          continue;
        }
        out.push({ start: match.index, end: match.index + match[0].length, value: match[0] });
      }
      return out;
    },
  };
}

/**
 * Validates a tenant's settings and compiles them. Every built-in detector is on with
 * action mask unless the settings say otherwise. Throws ConfigError naming the tenant and
 * the rule for a bad regex, a bad action, a duplicate name or a missing hash salt.
 */
export function compileRedactionPolicy(tenant: string, settings: RedactionSettings = {}): RedactionPolicy {
  const where = `tenant "${tenant}" redaction`;
  const rules: CompiledRule[] = [];
  const seen = new Set<string>(DETECTOR_NAMES);
  for (const [index, rule] of (settings.rules ?? []).entries()) {
    const label = `${where} rule ${index} ("${rule.name}")`;
    if (!RULE_NAME.test(rule.name)) {
      throw new ConfigError(`${label}: name must be 1-63 of a-z, 0-9, '_' or '-', starting with a letter`);
    }
    if (seen.has(rule.name)) {
      throw new ConfigError(
        `${label}: name is already used (by another rule or a built-in detector: ${DETECTOR_NAMES.join(", ")})`,
      );
    }
    seen.add(rule.name);
    const action = rule.action ?? "mask";
    if (!ACTIONS.has(action)) throw new ConfigError(`${label}: action must be mask, hash or drop`);
    const flags = rule.flags ?? "";
    if (!/^[imsu]*$/.test(flags) || new Set(flags).size !== flags.length) {
      throw new ConfigError(`${label}: flags must be some of "i", "m", "s", "u", each at most once`);
    }
    if (rule.pattern === "") throw new ConfigError(`${label}: pattern is empty`);
    let regex: RegExp;
    try {
      regex = new RegExp(rule.pattern, `${flags}g`);
    } catch (error) {
      throw new ConfigError(
        `${label}: pattern is not a valid regular expression (${(error as Error).message})`,
        {
          cause: error,
        },
      );
    }
    if (new RegExp(rule.pattern, flags).test("")) {
      throw new ConfigError(`${label}: pattern matches the empty string, so it would match everywhere`);
    }
    rules.push({ name: rule.name, action, detector: customDetector(rule.name, regex), builtIn: false });
  }
  const configured = settings.detectors ?? {};
  for (const name of Object.keys(configured)) {
    if (!(DETECTOR_NAMES as readonly string[]).includes(name)) {
      throw new ConfigError(
        `${where}: detectors.${name} is not a built-in detector (${DETECTOR_NAMES.join(", ")})`,
      );
    }
  }
  for (const detector of BUILT_IN_DETECTORS) {
    const setting = configured[detector.name as DetectorName] ?? "mask";
    if (setting === "off") continue;
    if (!ACTIONS.has(setting)) {
      throw new ConfigError(`${where}: detectors.${detector.name} must be mask, hash, drop or off`);
    }
    rules.push({ name: detector.name, action: setting, detector, builtIn: true });
  }
  const hashing = rules.filter((rule) => rule.action === "hash").map((rule) => rule.name);
  if (hashing.length > 0 && (settings.hashSalt === undefined || settings.hashSalt.length < MIN_SALT_CHARS)) {
    throw new ConfigError(
      `${where}: hashSalt of at least ${MIN_SALT_CHARS} characters is required because ${hashing.join(", ")} use${hashing.length === 1 ? "s" : ""} action hash`,
    );
  }
  return {
    tenant,
    rules,
    hashSalt: settings.hashSalt,
    prefilterable: rules.every((rule) => rule.builtIn),
  };
}
