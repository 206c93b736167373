import { closeSync, openSync, readFileSync, writeSync } from "node:fs";

/**
 * An append-only file of ids (one per line) the bot keeps for the accuracy check: every
 * acknowledged event id and every captured session id. On disk rather than in the heap, so
 * a long run's hundreds of thousands of ids do not grow the capturing bot's heap (and its
 * garbage collections) and get counted as capture's CPU overhead. Session ids are held in a
 * small buffer and written with the next acknowledgement, one write a batch.
 */
export class IdLog {
  private readonly fd: number;
  private pending: string[] = [];
  private lines = 0;

  constructor(private readonly path: string) {
    this.fd = openSync(path, "w");
  }

  /** Ids written or buffered so far. */
  get count(): number {
    return this.lines + this.pending.length;
  }

  /** Buffers one id; written by the next {@link append} or {@link readAll}. */
  add(id: string): void {
    this.pending.push(id);
  }

  /** Writes `ids` (and anything buffered) now. */
  append(ids: readonly string[]): void {
    const batch = this.pending.length === 0 ? ids : [...this.pending, ...ids];
    this.pending = [];
    if (batch.length === 0) return;
    writeSync(this.fd, `${batch.join("\n")}\n`);
    this.lines += batch.length;
  }

  /** Every id written, each once, in first-seen order. */
  readAll(): string[] {
    this.append([]);
    const ids = readFileSync(this.path, "utf8").split("\n");
    return [...new Set(ids.filter((id) => id !== ""))];
  }

  close(): void {
    this.append([]);
    closeSync(this.fd);
  }
}
