import { pino, type Logger, type LevelWithSilent } from "pino";

import { ConfigError } from "@sessiontrack/errors";

export type { Logger } from "pino";

const LEVELS: readonly LevelWithSilent[] = ["trace", "debug", "info", "warn", "error", "fatal", "silent"];

/** Paths whose values never reach a log line. */
const REDACT_PATHS = [
  "authorization",
  "*.authorization",
  "apiKey",
  "*.apiKey",
  "api_key",
  "*.api_key",
  "password",
  "*.password",
  "token",
  "*.token",
  "secret",
  "*.secret",
  "key",
  "*.key",
];

/** Options for {@link createLogger}. */
export interface LoggerOptions {
  /** Component name, printed as `name` on every line. */
  name: string;
  /** trace | debug | info | warn | error | fatal | silent; default info. */
  level?: string;
  /** Where lines go; default stdout. Tests pass a stream to read them. */
  destination?: NodeJS.WritableStream;
}

/** True when `level` is a pino level name. */
export function isLogLevel(level: string): level is LevelWithSilent {
  return (LEVELS as readonly string[]).includes(level);
}

/**
 * The one way SessionTrack builds a logger: pino JSON lines, secrets redacted.
 * Components receive `logger.child({ component })` rather than importing a global.
 */
export function createLogger(options: LoggerOptions): Logger {
  const level = options.level ?? "info";
  if (!isLogLevel(level)) {
    throw new ConfigError(`log level "${level}" is not one of ${LEVELS.join(", ")}`);
  }
  const settings = {
    name: options.name,
    level,
    redact: { paths: REDACT_PATHS, censor: "[redacted]" },
    timestamp: pino.stdTimeFunctions.isoTime,
  };
  return options.destination === undefined ? pino(settings) : pino(settings, options.destination);
}
