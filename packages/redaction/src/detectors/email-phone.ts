// Contact details: email addresses and phone numbers.
import { CORE_AT, CORE_DIGITS } from "../categories.js";
import { scan, countDigits, digitsOf, type Detector, type Match } from "./common.js";

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

export const email: Detector = {
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

export const phone: Detector = {
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
