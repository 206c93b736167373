// What every built-in detector shares: names, match types and the scanning helpers.
//
// Soundness rule shared with prefilter.ts: every character class that separates or
// surrounds the "core" of a match is ASCII-only (no \s, no \b on non-ASCII), so a match
// in a decoded string always implies the prefilter's core pattern in the raw UTF-8 bytes.
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
export const ALL = -1;

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
export function scan(
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
export function groupSpan(match: RegExpExecArray): [number, number] {
  const indices = match.indices;
  if (indices !== undefined) {
    for (let group = 1; group < indices.length; group += 1) {
      const span = indices[group];
      if (span !== undefined) return span;
    }
  }
  return [match.index, match.index + match[0].length];
}

export const countDigits = (text: string): number => {
  let count = 0;
  for (let i = 0; i < text.length; i += 1) {
    const code = text.charCodeAt(i);
    if (code >= 48 && code <= 57) count += 1;
  }
  return count;
};

export const digitsOf = (text: string): string => text.replace(/[^0-9]/g, "");

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
