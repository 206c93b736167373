// Payment card numbers: 13-19 digits, issuer prefix, Luhn.
import { CORE_DIGITS } from "../categories.js";
import { scan, countDigits, type Detector, type Match } from "./common.js";

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

export const paymentCard: Detector = {
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
