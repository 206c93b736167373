import {
  ArchiveServiceClient,
  IndexServiceClient,
  type ArchiveServiceGetSessionResponse,
  type GetSessionResponse,
} from "@sessiontrack/proto";

import { parseCommandArgs, UsageError } from "../args.js";
import { bearer, call, CLIENT_OPTIONS, DEFAULT_URLS, parseTarget, readApiKey } from "../remote.js";
import { renderTranscript, storedEventJson } from "../transcript.js";

const USAGE = `Usage: sessiontrack session get <session-id> [options]

Prints a session's transcript, oldest event first.

  --from archive|index   read from the archive (the source of truth, default) or the index
  --json                 one JSON object per event (metadata + the decoded event)
  --archive-url ADDR     archive service (default ${DEFAULT_URLS.archive})
  --index-url ADDR       index service (default ${DEFAULT_URLS.index})
  --api-key-file FILE    tenant API key with role read or admin (or SESSIONTRACK_API_KEY)`;

/** `sessiontrack session get` */
export async function runSessionGet(argv: readonly string[]): Promise<number> {
  const args = parseCommandArgs(
    argv,
    {
      from: { type: "string", default: "archive" },
      json: { type: "boolean", default: false },
      "archive-url": { type: "string", default: DEFAULT_URLS.archive },
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
  const [sessionId, ...extra] = args.positionals;
  if (sessionId === undefined || sessionId === "") throw new UsageError("a session id is required", USAGE);
  if (extra.length > 0) throw new UsageError(`unexpected argument "${extra[0]}"`, USAGE);
  const from = args.flags["from"];
  if (from !== "archive" && from !== "index") {
    throw new UsageError(`--from: "${from}" must be archive or index`, USAGE);
  }
  const key = readApiKey(args.flags["api-key-file"], USAGE);
  let events;
  if (from === "archive") {
    const target = parseTarget(args.flags["archive-url"]!, "archive-url", USAGE);
    const client = new ArchiveServiceClient(target.address, target.credentials, CLIENT_OPTIONS);
    try {
      events = (
        await call<ArchiveServiceGetSessionResponse>(
          "archive",
          target.address,
          (metadata, options, callback) => client.getSession({ sessionId }, metadata, options, callback),
          bearer(key),
        )
      ).events;
    } finally {
      client.close();
    }
  } else {
    const target = parseTarget(args.flags["index-url"]!, "index-url", USAGE);
    const client = new IndexServiceClient(target.address, target.credentials, CLIENT_OPTIONS);
    try {
      events = (
        await call<GetSessionResponse>(
          "index",
          target.address,
          (metadata, options, callback) => client.getSession({ sessionId }, metadata, options, callback),
          bearer(key),
        )
      ).events;
    } finally {
      client.close();
    }
  }
  if (args.booleans["json"] === true) {
    for (const event of events) console.log(JSON.stringify(storedEventJson(event)));
  } else {
    console.log(renderTranscript(events));
  }
  return 0;
}
