// Every child process the load test starts, so an interrupted run (Ctrl-C, a test timeout)
// can take them all down instead of leaving bots, services and k6 running.
import type { ChildProcess } from "node:child_process";
import { rmSync } from "node:fs";

const live = new Set<ChildProcess>();
const tempDirs = new Set<string>();

/** Remembers a temp dir to delete if the run is interrupted; `untrackDir` once it is gone. */
export function trackDir(path: string): string {
  tempDirs.add(path);
  return path;
}

export function untrackDir(path: string): void {
  tempDirs.delete(path);
}

/** Remembers `child` until it exits. */
export function trackChild<T extends ChildProcess>(child: T): T {
  live.add(child);
  child.once("exit", () => live.delete(child));
  return child;
}

/** Sends SIGKILL to every tracked child that is still running, then deletes tracked temp dirs. */
export function killTrackedChildren(): void {
  for (const child of live) {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  }
  live.clear();
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
  tempDirs.clear();
}
