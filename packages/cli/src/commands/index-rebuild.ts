import {
  ArchiveServiceClient,
  IndexServiceClient,
  type IndexEventsResponse,
  type ScanEventsResponse,
  type StoredEvent,
} from "@sessiontrack/proto";

import { parseCommandArgs } from "../args.js";
import {
  bearer,
  call,
  CLIENT_OPTIONS,
  DEFAULT_URLS,
  parseTarget,
  readKey,
  RemoteCallError,
  remoteError,
} from "../remote.js";
import { parseCount } from "./search.js";

const USAGE = `Usage: sessiontrack index rebuild [options]

Restores the index from the archive, the source of truth: streams every readable event
(ArchiveService.ScanEvents) into the index (IndexService.IndexEvents). Indexing is
idempotent on event_id, so it is safe to run against a partial or a live index.

  --tenant NAME          only this tenant (default: every tenant)
  --batch N              events per IndexEvents call (default 1000)
  --archive-url ADDR     archive service (default ${DEFAULT_URLS.archive})
  --index-url ADDR       index service (default ${DEFAULT_URLS.index})
  --service-key-file F   the internal service key (or SESSIONTRACK_SERVICE_KEY_FILE)`;

/** `sessiontrack index rebuild` */
export async function runIndexRebuild(argv: readonly string[]): Promise<number> {
  const args = parseCommandArgs(
    argv,
    {
      tenant: { type: "string", default: "" },
      batch: { type: "string", default: "1000" },
      "archive-url": { type: "string", default: DEFAULT_URLS.archive },
      "index-url": { type: "string", default: DEFAULT_URLS.index },
      "service-key-file": { type: "string" },
      help: { type: "boolean", short: "h" },
    },
    USAGE,
  );
  if (args.booleans["help"] === true) {
    console.log(USAGE);
    return 0;
  }
  const batchSize = parseCount(args.flags["batch"], "batch", 1, 20_000, USAGE) ?? 1000;
  const archiveTarget = parseTarget(args.flags["archive-url"]!, "archive-url", USAGE);
  const indexTarget = parseTarget(args.flags["index-url"]!, "index-url", USAGE);
  const key = readKey(
    {
      file: args.flags["service-key-file"],
      flag: "service-key-file",
      envKey: "SESSIONTRACK_SERVICE_KEY",
      envFile: "SESSIONTRACK_SERVICE_KEY_FILE",
    },
    USAGE,
  );
  const archive = new ArchiveServiceClient(archiveTarget.address, archiveTarget.credentials, CLIENT_OPTIONS);
  const index = new IndexServiceClient(indexTarget.address, indexTarget.credentials, CLIENT_OPTIONS);
  const started = Date.now();
  let scanned = 0;
  let indexed = 0;
  const sessions = new Set<string>();
  const flush = async (events: StoredEvent[]): Promise<void> => {
    const response = await call<IndexEventsResponse>(
      "index",
      indexTarget.address,
      (metadata, options, callback) => index.indexEvents({ events }, metadata, options, callback),
      bearer(key),
    );
    indexed += response.indexed;
  };
  try {
    const stream = archive.scanEvents({ tenant: args.flags["tenant"] ?? "" }, bearer(key));
    let pending: StoredEvent[] = [];
    try {
      // One IndexEvents call in flight at a time; the scan stream is paused meanwhile.
      for await (const chunk of stream as AsyncIterable<ScanEventsResponse>) {
        for (const event of chunk.events) {
          scanned += 1;
          sessions.add(`${event.tenant}/${event.sessionId}`);
          pending.push(event);
          if (pending.length >= batchSize) {
            const events = pending;
            pending = [];
            await flush(events);
          }
        }
      }
    } catch (error) {
      throw error instanceof RemoteCallError ? error : remoteError("archive", archiveTarget.address, error);
    }
    if (pending.length > 0) await flush(pending);
  } finally {
    archive.close();
    index.close();
  }
  console.log(
    `Rebuilt the index from the archive: ${scanned} events of ${sessions.size} sessions scanned, ${indexed} indexed in ${((Date.now() - started) / 1000).toFixed(1)} s.`,
  );
  return 0;
}
