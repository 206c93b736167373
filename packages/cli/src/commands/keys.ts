import { generateApiKey } from "@sessiontrack/ingest";

import { parseCommandArgs, UsageError } from "../args.js";

const USAGE = `Usage: sessiontrack keys generate [--tenant NAME] [--roles ingest,read] [--id KEY_ID]

Prints a new API key once, and the tenants-file entry that grants it. Only the
key's SHA-256 goes into the tenants file; keep the key itself in your bot's secrets.`;

const ROLES = new Set(["ingest", "read", "admin"]);

/** `sessiontrack keys generate` */
export function runKeysGenerate(argv: readonly string[]): number {
  const args = parseCommandArgs(
    argv,
    {
      tenant: { type: "string", default: "my-tenant" },
      roles: { type: "string", default: "ingest" },
      id: { type: "string" },
      help: { type: "boolean", short: "h" },
    },
    USAGE,
  );
  if (args.booleans["help"] === true) {
    console.log(USAGE);
    return 0;
  }
  const roles = (args.flags["roles"] ?? "ingest").split(",").map((role) => role.trim());
  const unknown = roles.filter((role) => !ROLES.has(role));
  if (unknown.length > 0) {
    throw new UsageError(`--roles: unknown role(s) ${unknown.join(", ")}; use ingest, read or admin`, USAGE);
  }
  const { key, sha256 } = generateApiKey();
  const id = args.flags["id"] ?? `key-${sha256.slice(0, 8)}`;
  const entry = { tenants: [{ name: args.flags["tenant"], keys: [{ id, sha256, roles }] }] };
  console.log(`API key (shown once): ${key}\n\nTenants file entry:\n${JSON.stringify(entry, null, 2)}`);
  return 0;
}
