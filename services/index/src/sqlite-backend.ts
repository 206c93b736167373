import { Worker } from "node:worker_threads";

import { StorageUnavailableError } from "@sessiontrack/errors";
import type { Logger } from "@sessiontrack/runtime";

import type {
  BackendSearchResult,
  EraseResult,
  EraseSelector,
  IndexBackend,
  IndexDocument,
  SearchQuery,
} from "./backend.js";
import type { WriterReply, WriterRequest } from "./sqlite-writer.js";
import { sqliteIndexFile } from "./sqlite-schema.js";
import { SqliteIndexStore } from "./sqlite-store.js";

/** Options for {@link SqliteIndexBackend.open}. */
export interface SqliteBackendOptions {
  dataDir: string;
  logger: Logger;
}

/** A writer request before it gets its id. */
type Unnumbered<T> = T extends unknown ? Omit<T, "id"> : never;

type Pending = { resolve(result: unknown): void; reject(error: Error): void };

/**
 * The embedded default: SQLite FTS5 in `<dataDir>/index.sqlite`. Searches and GetSession
 * read on the calling thread (they are short); writes (IndexEvents, Erase) go to a writer
 * thread with its own connection, so a long commit never stalls the event loop.
 */
export class SqliteIndexBackend implements IndexBackend {
  readonly kind = "sqlite" as const;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private failure: StorageUnavailableError | undefined;
  private closing: Promise<void> | undefined;

  private constructor(
    private readonly reader: SqliteIndexStore,
    private readonly writer: Worker,
    private readonly logger: Logger,
  ) {
    writer.on("message", (reply: WriterReply) => {
      const pending = this.pending.get(reply.id);
      if (pending === undefined) return;
      this.pending.delete(reply.id);
      if (reply.ok) pending.resolve(reply.result);
      else pending.reject(new StorageUnavailableError(`sqlite index write failed: ${reply.message}`));
    });
    writer.on("error", (error) => this.stop(`the writer thread failed: ${error.message}`));
    writer.on("exit", (code) => this.stop(`the writer thread exited (code ${code})`));
  }

  /** Opens the database (creating it and its schema if needed) and starts the writer thread. */
  static async open(options: SqliteBackendOptions): Promise<SqliteIndexBackend> {
    const reader = SqliteIndexStore.open(options.dataDir, options.logger);
    const writer = new Worker(new URL("./sqlite-writer.js", import.meta.url), {
      workerData: { dataDir: options.dataDir },
    });
    try {
      await new Promise<void>((resolve, reject) => {
        writer.once("message", (reply: WriterReply) => {
          if (reply.ok) resolve();
          else reject(new StorageUnavailableError(`sqlite index writer: ${reply.message}`));
        });
        writer.once("error", reject);
      });
    } catch (error) {
      reader.close();
      await writer.terminate();
      throw error;
    }
    options.logger.info({ file: sqliteIndexFile(options.dataDir) }, "sqlite index opened");
    return new SqliteIndexBackend(reader, writer, options.logger);
  }

  private stop(reason: string): void {
    if (this.closing === undefined && this.failure === undefined) this.logger.error(reason);
    this.failure ??= new StorageUnavailableError(`sqlite index: ${reason}`);
    for (const pending of this.pending.values()) pending.reject(this.failure);
    this.pending.clear();
  }

  private send(request: Unnumbered<WriterRequest>): Promise<unknown> {
    if (this.failure !== undefined) return Promise.reject(this.failure);
    if (this.closing !== undefined)
      return Promise.reject(new StorageUnavailableError("the index is closing"));
    const id = this.nextId;
    this.nextId += 1;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.writer.postMessage({ ...request, id });
    });
  }

  async index(documents: readonly IndexDocument[]): Promise<void> {
    await this.send({ op: "index", documents: [...documents] });
  }

  search(query: SearchQuery): Promise<BackendSearchResult> {
    return Promise.resolve(this.reader.search(query));
  }

  getSession(tenant: string, sessionId: string): Promise<Uint8Array[]> {
    return Promise.resolve(this.reader.getSession(tenant, sessionId));
  }

  async erase(tenant: string, selector: EraseSelector): Promise<EraseResult> {
    return (await this.send({ op: "erase", tenant, selector })) as EraseResult;
  }

  /** Documents held, all tenants. */
  count(): number {
    return this.reader.count();
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      if (this.failure === undefined) {
        const id = this.nextId;
        this.nextId += 1;
        const closed = new Promise<void>((resolve) => {
          this.pending.set(id, { resolve: () => resolve(), reject: () => resolve() });
        });
        this.writer.postMessage({ op: "close", id } satisfies WriterRequest);
        await closed;
      }
      await this.writer.terminate();
      this.reader.close();
      this.logger.info("sqlite index closed");
    })();
    return this.closing;
  }
}
