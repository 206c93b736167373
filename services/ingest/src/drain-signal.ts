// Whether this replica is asked to drain before a scale-down, read from a file the pod's
// downward-API volume keeps up to date (so ingest never talks to the Kubernetes API).
import { readFileSync } from "node:fs";

import type { Logger } from "@sessiontrack/runtime";

/** The pod annotation the operator sets on a replica it is about to remove. */
export const DRAIN_ANNOTATION = "sessiontrack.io/drain";

const POLL_MS = 250;

/**
 * True when a downward-API annotations file (one `key="value"` line per annotation,
 * values quoted like Go's %q) sets {@link DRAIN_ANNOTATION} to "true". Lines that are not
 * annotations are ignored, so an empty or foreign file means "not draining".
 */
export function drainRequested(text: string): boolean {
  for (const line of text.split("\n")) {
    const equals = line.indexOf("=");
    if (equals < 0 || line.slice(0, equals).trim() !== DRAIN_ANNOTATION) continue;
    const raw = line.slice(equals + 1).trim();
    let value = raw;
    try {
      value = raw.startsWith('"') ? (JSON.parse(raw) as string) : raw;
    } catch {
      // A value that is not a valid quoted string is compared as written.
    }
    return value.trim() === "true";
  }
  return false;
}

/**
 * Polls the drain file (a downward-API volume swaps a symlink on update, which fs.watch
 * misses) and tells subscribers when the drain request appears or goes away. Without a
 * file the replica never drains this way (SIGTERM still drains it).
 */
export class DrainSignal {
  private current = false;
  private missingLogged = false;
  private readonly listeners = new Set<(draining: boolean) => void>();
  private readonly timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly path: string | undefined,
    private readonly logger: Logger,
  ) {
    if (path === undefined) return;
    this.current = this.read() ?? false;
    if (this.current) logger.warn({ path }, "drain requested at start: intake stays closed");
    this.timer = setInterval(() => this.poll(), POLL_MS);
    this.timer.unref();
  }

  /** True while the operator asks this replica to drain. */
  get draining(): boolean {
    return this.current;
  }

  /** Calls `listener` on every change; returns the unsubscribe function. */
  subscribe(listener: (draining: boolean) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  close(): void {
    clearInterval(this.timer);
    this.listeners.clear();
  }

  /** The file's verdict, or undefined when it cannot be read (the last verdict stands). */
  private read(): boolean | undefined {
    try {
      const text = readFileSync(this.path!, "utf8");
      this.missingLogged = false;
      return drainRequested(text);
    } catch (error) {
      if (!this.missingLogged) {
        this.missingLogged = true;
        this.logger.error({ err: error, path: this.path }, "drain file unreadable; keeping the last state");
      }
      return undefined;
    }
  }

  private poll(): void {
    const next = this.read();
    if (next === undefined || next === this.current) return;
    this.current = next;
    this.logger.warn(
      { path: this.path },
      next
        ? "drain requested: refusing new streams and batches, shipping the WAL until it is empty"
        : "drain withdrawn: accepting streams and batches again",
    );
    for (const listener of this.listeners) {
      try {
        listener(next);
      } catch (error) {
        this.logger.error({ err: error }, "drain listener failed");
      }
    }
  }
}
