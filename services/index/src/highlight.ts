/** A run of letters or digits: what the FTS5 unicode61 tokenizer calls a token. */
const TOKEN = /[\p{L}\p{N}]+/gu;

/** A token as FTS5 (unicode61, remove_diacritics 2) compares it: lower case, no diacritics. */
export function normalizeToken(token: string): string {
  return token.normalize("NFKD").replace(/\p{M}/gu, "").toLowerCase();
}

/** Every searchable token of a query, normalized. */
export function queryTokens(query: string): Set<string> {
  const tokens = new Set<string>();
  for (const match of query.matchAll(TOKEN)) tokens.add(normalizeToken(match[0]));
  return tokens;
}

/** Options for {@link highlight}. */
export interface HighlightOptions {
  preTag: string;
  postTag: string;
  /** Tokens kept before the first match. Default 8. */
  before?: number;
  /** Tokens kept from the first match on. Default 24. */
  after?: number;
}

/**
 * The text around the first matching token, cut at token boundaries with "…" where text
 * was left out, and every matching token in the window between the tags. Without a match,
 * the start of the text.
 */
export function highlight(text: string, terms: ReadonlySet<string>, options: HighlightOptions): string {
  const before = options.before ?? 8;
  const after = options.after ?? 24;
  const tokens: Array<{ start: number; end: number; hit: boolean }> = [];
  let first = -1;
  for (const match of text.matchAll(TOKEN)) {
    const hit = terms.has(normalizeToken(match[0]));
    if (hit && first < 0) first = tokens.length;
    tokens.push({ start: match.index, end: match.index + match[0].length, hit });
  }
  if (tokens.length === 0) return text.slice(0, 200);
  const from = Math.max(0, (first < 0 ? 0 : first) - before);
  const to = Math.min(tokens.length, (first < 0 ? 0 : first) + after);
  const startChar = from === 0 ? 0 : tokens[from]!.start;
  const endChar = to === tokens.length ? text.length : tokens[to - 1]!.end;
  let out = from === 0 ? "" : "…";
  let cursor = startChar;
  for (let index = from; index < to; index += 1) {
    const token = tokens[index]!;
    if (!token.hit) continue;
    out +=
      text.slice(cursor, token.start) + options.preTag + text.slice(token.start, token.end) + options.postTag;
    cursor = token.end;
  }
  out += text.slice(cursor, endChar);
  return endChar < text.length ? `${out}…` : out;
}
