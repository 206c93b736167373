import { EraseReceipt, PrivacyServiceClient, type EraseSessionResponse } from "@sessiontrack/proto";

import { parseCommandArgs, UsageError } from "../args.js";
import { bearer, call, CLIENT_OPTIONS, DEFAULT_URLS, parseTarget, readApiKey } from "../remote.js";

const USAGE = `Usage: sessiontrack erase --user <user-id> | --session <session-id> [options]

Erases every session of an end user (--user) or one session (--session) of the API
key's tenant: ingest first ships everything it already acknowledged, then the index
removes the documents and the archive destroys the data keys and deletes the objects.
Prints the erasure receipt.

  --user ID              the end user (Event.user_id) to erase
  --session ID           the session to erase
  --json                 print the receipt as JSON
  --ingest-url ADDR      ingest service, which runs the erasure (default ${DEFAULT_URLS.ingest})
  --api-key-file FILE    tenant API key with role admin (or SESSIONTRACK_API_KEY)`;

/** `sessiontrack erase` */
export async function runErase(argv: readonly string[]): Promise<number> {
  const args = parseCommandArgs(
    argv,
    {
      user: { type: "string" },
      session: { type: "string" },
      json: { type: "boolean", default: false },
      "ingest-url": { type: "string", default: DEFAULT_URLS.ingest },
      "api-key-file": { type: "string" },
      help: { type: "boolean", short: "h" },
    },
    USAGE,
  );
  if (args.booleans["help"] === true) {
    console.log(USAGE);
    return 0;
  }
  const user = args.flags["user"];
  const session = args.flags["session"];
  if ((user === undefined) === (session === undefined)) {
    throw new UsageError("give exactly one of --user or --session", USAGE);
  }
  if (args.positionals.length > 0)
    throw new UsageError(`unexpected argument "${args.positionals[0]}"`, USAGE);
  if (user === "") throw new UsageError("--user: must not be empty", USAGE);
  if (session === "") throw new UsageError("--session: must not be empty", USAGE);
  const target = parseTarget(args.flags["ingest-url"]!, "ingest-url", USAGE);
  const key = readApiKey(args.flags["api-key-file"], USAGE);
  const client = new PrivacyServiceClient(target.address, target.credentials, CLIENT_OPTIONS);
  let response: EraseSessionResponse;
  try {
    response = await call<EraseSessionResponse>(
      "ingest",
      target.address,
      (metadata, options, callback) =>
        user !== undefined
          ? client.eraseSubject({ userId: user }, metadata, options, callback)
          : client.eraseSession({ sessionId: session! }, metadata, options, callback),
      bearer(key),
    );
  } finally {
    client.close();
  }
  const receipt = response.receipt;
  if (receipt === undefined) throw new Error("ingest answered without a receipt");
  if (args.booleans["json"] === true) {
    console.log(JSON.stringify(EraseReceipt.toJSON(receipt), null, 2));
    return 0;
  }
  console.log(formatReceipt(receipt));
  return 0;
}

/** A receipt as a short human-readable block. */
export function formatReceipt(receipt: EraseReceipt): string {
  const target = receipt.target?.target;
  const what =
    target === undefined
      ? "?"
      : target.$case === "userId"
        ? `user ${target.value}`
        : `session ${target.value}`;
  return [
    `Erasure receipt ${receipt.receiptId}`,
    `  tenant                 ${receipt.tenant}`,
    `  erased                 ${what}`,
    `  at                     ${receipt.erasedAt?.toISOString() ?? ""}`,
    `  sessions               ${receipt.sessions.length === 0 ? "(none found)" : receipt.sessions.join(", ")}`,
    `  index documents gone   ${receipt.indexDocumentsRemoved}`,
    `  data keys destroyed    ${receipt.dataKeysDestroyed.length}${receipt.dataKeysDestroyed.length > 0 ? ` (${receipt.dataKeysDestroyed.join(", ")})` : ""}`,
    `  archive objects gone   ${receipt.archiveObjectsDeleted}`,
    `  audit record           ${receipt.auditRecord || "(none)"}`,
    `  shipped up to WAL lsn  ${receipt.walLsn}`,
  ].join("\n");
}
