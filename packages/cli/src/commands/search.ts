import { IndexServiceClient, Role, SearchResponse, type SearchRequest } from "@sessiontrack/proto";

import { parseCommandArgs, UsageError } from "../args.js";
import { bearer, call, CLIENT_OPTIONS, DEFAULT_URLS, parseTarget, readApiKey } from "../remote.js";

const USAGE = `Usage: sessiontrack search "<query>" [options]

Full-text search over the caller's tenant, grouped by session, best first.

  --bot ID[,ID]          only these bots
  --user ID[,ID]         only these end users
  --model NAME[,NAME]    only messages of these models
  --role ROLE[,ROLE]     only user, assistant, system or tool messages
  --session ID[,ID]      only these sessions
  --since TIME           from TIME (inclusive): 2026-11-25, 2026-11-25T08:00:00Z, or 30m / 24h / 7d ago
  --until TIME           before TIME (exclusive), same forms
  --limit N              sessions per page, 1-100 (default 20)
  --hits N               hits shown per session, 1-50 (default 3)
  --page-token TOKEN     the next page, from a previous search
  --json                 print the SearchResponse as JSON
  --index-url ADDR       index service (default ${DEFAULT_URLS.index})
  --api-key-file FILE    tenant API key with role read or admin (or SESSIONTRACK_API_KEY)`;

/** Parses an absolute ISO time or a relative "N(s|m|h|d) ago" duration; names `flag` when bad. */
export function parseTime(value: string, flag: string, usage: string, now = Date.now()): Date {
  const relative = /^(\d+)(s|m|h|d)$/.exec(value.trim());
  if (relative !== null) {
    const unit = { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 }[relative[2] as "s" | "m" | "h" | "d"];
    return new Date(now - Number(relative[1]) * unit);
  }
  if (/^\d{4}-\d{2}-\d{2}([T ][\d:.]+(Z|[+-]\d{2}:?\d{2})?)?$/.test(value.trim())) {
    const date = new Date(value.trim());
    if (!Number.isNaN(date.getTime())) return date;
  }
  throw new UsageError(
    `--${flag}: "${value}" is not a time (use 2026-11-25, 2026-11-25T08:00:00Z, or a duration ago like 30m, 24h, 7d)`,
    usage,
  );
}

/** Parses a whole number in [min, max] for `flag`. */
export function parseCount(value: string | undefined, flag: string, min: number, max: number, usage: string) {
  if (value === undefined) return undefined;
  const number = Number(value);
  if (!Number.isInteger(number) || number < min || number > max) {
    throw new UsageError(`--${flag}: "${value}" must be a whole number from ${min} to ${max}`, usage);
  }
  return number;
}

const list = (value: string | undefined): string[] =>
  value === undefined
    ? []
    : value
        .split(",")
        .map((item) => item.trim())
        .filter((item) => item !== "");

const ROLES: Record<string, Role> = {
  user: Role.ROLE_USER,
  assistant: Role.ROLE_ASSISTANT,
  system: Role.ROLE_SYSTEM,
  tool: Role.ROLE_TOOL,
};

/** Lower-case role name of a Role ("assistant"). */
export function roleName(role: Role): string {
  return Object.entries(ROLES).find(([, value]) => value === role)?.[0] ?? "event";
}

/** `sessiontrack search` */
export async function runSearch(argv: readonly string[]): Promise<number> {
  const args = parseCommandArgs(
    argv,
    {
      bot: { type: "string" },
      user: { type: "string" },
      model: { type: "string" },
      role: { type: "string" },
      session: { type: "string" },
      since: { type: "string" },
      until: { type: "string" },
      limit: { type: "string" },
      hits: { type: "string" },
      "page-token": { type: "string" },
      json: { type: "boolean", default: false },
      "index-url": { type: "string", default: DEFAULT_URLS.index },
      "api-key-file": { type: "string" },
      help: { type: "boolean", short: "h" },
    },
    USAGE,
  );
  if (args.booleans["help"] === true) {
    console.log(USAGE);
    return 0;
  }
  if (args.positionals.length > 1) {
    throw new UsageError(
      `search takes one query, got ${args.positionals.length} words: quote it ("${args.positionals.join(" ")}")`,
      USAGE,
    );
  }
  const query = args.positionals[0] ?? "";
  const roles = list(args.flags["role"]).map((name) => {
    const role = ROLES[name.toLowerCase()];
    if (role === undefined)
      throw new UsageError(`--role: "${name}" is not user, assistant, system or tool`, USAGE);
    return role;
  });
  const request: SearchRequest = {
    query,
    botIds: list(args.flags["bot"]),
    userIds: list(args.flags["user"]),
    models: list(args.flags["model"]),
    labels: {},
    sessionIds: list(args.flags["session"]),
    roles,
    since: args.flags["since"] === undefined ? undefined : parseTime(args.flags["since"], "since", USAGE),
    until: args.flags["until"] === undefined ? undefined : parseTime(args.flags["until"], "until", USAGE),
    pageSize: parseCount(args.flags["limit"], "limit", 1, 100, USAGE) ?? 20,
    pageToken: args.flags["page-token"] ?? "",
    hitsPerSession: parseCount(args.flags["hits"], "hits", 1, 50, USAGE) ?? 3,
    highlightPreTag: args.booleans["json"] === true ? "" : "«",
    highlightPostTag: args.booleans["json"] === true ? "" : "»",
  };
  const target = parseTarget(args.flags["index-url"] ?? DEFAULT_URLS.index, "index-url", USAGE);
  const key = readApiKey(args.flags["api-key-file"], USAGE);
  const client = new IndexServiceClient(target.address, target.credentials, CLIENT_OPTIONS);
  try {
    const response = await call<SearchResponse>(
      "index",
      target.address,
      (metadata, options, callback) => client.search(request, metadata, options, callback),
      bearer(key),
    );
    if (args.booleans["json"] === true) {
      console.log(JSON.stringify(SearchResponse.toJSON(response), null, 2));
      return 0;
    }
    printResults(query, response);
    return 0;
  } finally {
    client.close();
  }
}

/** Prints a search response as sessions with their highlighted hits. */
export function printResults(query: string, response: SearchResponse): void {
  if (response.sessions.length === 0) {
    console.log(`No matches for "${query}".`);
    return;
  }
  for (const session of response.sessions) {
    console.log(
      `session ${session.sessionId}  bot=${session.botId}  user=${session.userId}  (${session.sessionHits} matching event${session.sessionHits === 1 ? "" : "s"})`,
    );
    for (const hit of session.hits) {
      const model = hit.model === "" ? "" : ` ${hit.provider === "" ? "" : `${hit.provider}/`}${hit.model}`;
      const time = hit.time?.toISOString().replace(/\.\d{3}Z$/, "Z") ?? "";
      console.log(
        `  #${hit.seq}  ${time}  ${roleName(hit.role)}${model}: ${hit.highlight.replace(/\s+/g, " ")}`,
      );
    }
  }
  console.log(
    `\n${response.totalHits} matching event${response.totalHits === 1 ? "" : "s"} in ${response.sessions.length} session${response.sessions.length === 1 ? "" : "s"} (${response.tookMs} ms)` +
      (response.nextPageToken === "" ? "" : `; more: --page-token ${response.nextPageToken}`),
  );
}
