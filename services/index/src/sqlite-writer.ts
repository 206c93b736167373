// The SQLite index's writer thread: better-sqlite3 is synchronous, and an FTS5 commit
// that merges segments can take a few hundred milliseconds, so writes run here, on their
// own connection, while the main thread keeps answering searches (WAL mode lets readers
// proceed during a write). Each request is one transaction: a batch lands whole or not at all.
import { parentPort, workerData } from "node:worker_threads";

import { createLogger } from "@sessiontrack/runtime";

import type { EraseSelector, IndexDocument } from "./backend.js";
import { SqliteIndexStore } from "./sqlite-store.js";

/** A request to the writer thread. */
export type WriterRequest =
  | { id: number; op: "index"; documents: IndexDocument[] }
  | { id: number; op: "erase"; tenant: string; selector: EraseSelector }
  | { id: number; op: "close" };

/** The writer's answer to a request, or its start-up report (id 0). */
export type WriterReply =
  { id: number; ok: true; result?: unknown } | { id: number; ok: false; message: string };

const port = parentPort;
if (port === null) throw new Error("sqlite-writer.js runs as a worker thread only");
const { dataDir } = workerData as { dataDir: string };

let store: SqliteIndexStore;
try {
  store = SqliteIndexStore.open(dataDir, createLogger({ name: "index-writer", level: "silent" }));
  port.postMessage({ id: 0, ok: true } satisfies WriterReply);
} catch (error) {
  port.postMessage({ id: 0, ok: false, message: (error as Error).message } satisfies WriterReply);
  process.exit(1);
}

port.on("message", (request: WriterRequest) => {
  let reply: WriterReply;
  try {
    switch (request.op) {
      case "index":
        store.write(request.documents);
        reply = { id: request.id, ok: true };
        break;
      case "erase":
        reply = { id: request.id, ok: true, result: store.erase(request.tenant, request.selector) };
        break;
      case "close":
        store.close();
        port.postMessage({ id: request.id, ok: true } satisfies WriterReply);
        port.close();
        return;
    }
  } catch (error) {
    reply = { id: request.id, ok: false, message: (error as Error).message };
  }
  port.postMessage(reply);
});
