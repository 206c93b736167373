/**
 * Where the capturing bot's SDK delivers (`--sdk-thread`, for run.js and the bot alike):
 * main = SessionTrackClient on the bot's thread (the default); worker =
 * WorkerSessionTrackClient; transport = SessionTrackClient with grpc-js alone in a worker.
 */
export const SDK_THREADS = ["main", "worker", "transport"] as const;

export type SdkThread = (typeof SDK_THREADS)[number];

export function isSdkThread(value: unknown): value is SdkThread {
  return (SDK_THREADS as readonly unknown[]).includes(value);
}

/** The message for a bad `--sdk-thread` value, naming the ones there are. */
export function sdkThreadError(value: unknown): string {
  return `--sdk-thread must be ${SDK_THREADS.slice(0, -1).join(", ")} or ${SDK_THREADS.at(-1)}, got "${String(value)}"`;
}
