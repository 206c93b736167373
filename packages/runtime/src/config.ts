import type { z } from "zod";

import { ConfigError } from "@sessiontrack/errors";

/** A parsed `HOST:PORT`. */
export interface HostPort {
  host: string;
  port: number;
}

/**
 * Parses `HOST:PORT` (IPv6 as `[::1]:PORT`); port 0 asks the OS for a free one.
 * Throws ConfigError naming `settingName` when the value is malformed.
 */
export function parseHostPort(value: string, settingName: string): HostPort {
  const match = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]\s]+)):(\d{1,5})$/.exec(value.trim());
  const port = match === null ? Number.NaN : Number(match[3]);
  if (match === null || !Number.isInteger(port) || port > 65535) {
    throw new ConfigError(`${settingName}: "${value}" is not HOST:PORT (for example 127.0.0.1:7070)`);
  }
  return { host: match[1] ?? match[2] ?? "", port };
}

/** Formats a host and port as a dialable `host:port` (brackets for IPv6). */
export function formatHostPort(host: string, port: number): string {
  return host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
}

type DeepReadonly<T> = T extends (infer U)[]
  ? readonly DeepReadonly<U>[]
  : T extends object
    ? { readonly [K in keyof T]: DeepReadonly<T[K]> }
    : T;

function deepFreeze<T>(value: T): DeepReadonly<T> {
  if (value !== null && typeof value === "object" && !Object.isFrozen(value)) {
    for (const child of Object.values(value)) deepFreeze(child);
    Object.freeze(value);
  }
  return value as DeepReadonly<T>;
}

/**
 * Validates `input` against `schema` once, at start-up, and returns a deeply frozen,
 * typed object. On failure throws one ConfigError listing every bad setting by name,
 * prefixed with where the settings came from (`sourceLabel`).
 */
export function parseConfig<Schema extends z.ZodType>(
  schema: Schema,
  input: unknown,
  sourceLabel: string,
): DeepReadonly<z.infer<Schema>> {
  const result = schema.safeParse(input);
  if (!result.success) {
    const problems = result.error.issues.map((issue) => {
      const setting = issue.path.length === 0 ? "(settings)" : issue.path.map(String).join(".");
      return `${setting}: ${issue.message}`;
    });
    throw new ConfigError(`invalid ${sourceLabel}:\n  ${problems.join("\n  ")}`);
  }
  return deepFreeze(result.data);
}
