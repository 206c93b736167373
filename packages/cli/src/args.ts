import { parseArgs, type ParseArgsConfig } from "node:util";

/** A command-line mistake: printed with the command's usage, exit code 2. */
export class UsageError extends Error {
  constructor(
    message: string,
    readonly usage: string,
  ) {
    super(message);
    this.name = "UsageError";
  }
}

type Options = NonNullable<ParseArgsConfig["options"]>;

/** Parsed `--flag value` options keyed by flag name, plus positionals. */
export interface ParsedArgs {
  flags: Record<string, string | undefined>;
  booleans: Record<string, boolean>;
  positionals: string[];
}

/**
 * Parses argv strictly: an unknown flag or a missing value is a {@link UsageError}
 * that names the flag, never a stack trace.
 */
export function parseCommandArgs(argv: readonly string[], options: Options, usage: string): ParsedArgs {
  let parsed;
  try {
    parsed = parseArgs({ args: [...argv], options, allowPositionals: true, strict: true });
  } catch (err) {
    throw new UsageError(err instanceof Error ? err.message : String(err), usage);
  }
  const flags: Record<string, string | undefined> = {};
  const booleans: Record<string, boolean> = {};
  for (const [name, value] of Object.entries(parsed.values)) {
    if (typeof value === "string") flags[name] = value;
    else if (typeof value === "boolean") booleans[name] = value;
  }
  return { flags, booleans, positionals: parsed.positionals };
}
