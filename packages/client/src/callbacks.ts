/**
 * Calls one of the bot's callbacks (onDrop, onError, onAck) with `value`. A callback that
 * throws must not reach the bot's capture call or stop delivery: what it throws is ignored.
 */
export function callBack<T>(callback: ((value: T) => void) | undefined, value: T): void {
  if (callback === undefined) return;
  try {
    callback(value);
  } catch {
    // Ignored, as documented for every callback option.
  }
}
