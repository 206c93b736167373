import { ConfigError } from "@sessiontrack/errors";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { SessionTrackClientOptions } from "./types.js";

/** A numeric option: `fallback` when absent, else a positive finite number or a ConfigError naming it. */
export function positive(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!(typeof value === "number" && value > 0 && Number.isFinite(value))) {
    throw new ConfigError(
      `SessionTrackClient option ${name} must be a positive number, got ${String(value)}`,
    );
  }
  return value;
}

/** A string option that must be present and non-empty. */
export function requiredString(name: string, value: unknown): string {
  if (typeof value !== "string" || value === "") {
    throw new ConfigError(`SessionTrackClient option ${name} must be a non-empty string`);
  }
  return value;
}

/** Where a bot's events spill by default: `<os.tmpdir()>/sessiontrack-spool/<botId>`. */
export function spoolDirOf(options: SessionTrackClientOptions, botId: string): string {
  return options.spoolDir ?? join(tmpdir(), "sessiontrack-spool", botId.replace(/[^A-Za-z0-9._-]/g, "_"));
}

/** The numeric options, each checked as the client reads it (so a bad one fails before anything starts). */
export const NUMERIC_OPTIONS = [
  "flushIntervalMs",
  "spoolMaxBytes",
  "batchMaxEvents",
  "batchMaxBytes",
  "maxQueueEvents",
  "maxInFlightBatches",
  "ackTimeoutMs",
  "cpuBudgetPct",
] as const;

/**
 * Checks what a client constructor checks before it opens anything: the required strings
 * and every numeric option. Throws {@link ConfigError} naming the first bad one.
 */
export function checkOptions(options: SessionTrackClientOptions): void {
  requiredString("target", options.target);
  requiredString("apiKey", options.apiKey);
  requiredString("botId", options.botId);
  for (const name of NUMERIC_OPTIONS) positive(name, options[name], 1);
}

/** The `transport` option: "inline" (default) or "worker", which takes no `credentials` yet. */
export function transportOf(options: SessionTrackClientOptions): "inline" | "worker" {
  const transport = options.transport ?? "inline";
  if (transport !== "inline" && transport !== "worker") {
    throw new ConfigError(
      `SessionTrackClient option transport must be "inline" or "worker", got ${JSON.stringify(transport)}`,
    );
  }
  if (transport === "worker" && options.credentials !== undefined) {
    throw new ConfigError(
      'SessionTrackClient option transport "worker" runs insecure channels only; drop credentials or use transport "inline"',
    );
  }
  return transport;
}
