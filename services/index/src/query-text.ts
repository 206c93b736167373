/** Characters the FTS5 unicode61 tokenizer keeps inside a token. */
const TOKEN_CHAR = /[\p{L}\p{N}]/u;

/**
 * Splits a user's query into phrases: a "quoted phrase" stays one phrase, every other
 * whitespace-separated word is its own. Words without a letter or digit are dropped.
 */
export function queryPhrases(query: string): string[] {
  const phrases: string[] = [];
  const pattern = /"([^"]*)"?|(\S+)/g;
  for (const match of query.matchAll(pattern)) {
    const phrase = (match[1] ?? match[2] ?? "").trim();
    if (TOKEN_CHAR.test(phrase)) phrases.push(phrase);
  }
  return phrases;
}

/**
 * The text part of an FTS5 MATCH expression for a user's query: every phrase must
 * match (implicit AND). Each phrase is an FTS5 string, so no user input is read as
 * FTS5 syntax. Undefined when the query has no terms.
 */
export function ftsMatchText(query: string): string | undefined {
  const phrases = queryPhrases(query);
  if (phrases.length === 0) return undefined;
  return phrases.map((phrase) => `"${phrase.replaceAll('"', '""')}"`).join(" ");
}
