import * as grpc from "@grpc/grpc-js";

/**
 * Holds new calls back while their channel is in TRANSIENT_FAILURE (ingest down or
 * unreachable). A call opened then fails at once, and every such retry cost the bot a call
 * object, metadata, an Error with a stack trace and, for Stream, a serialized probe batch.
 * grpc-js keeps reconnecting on its own backoff meanwhile (the client caps it at 2 s), so
 * the SDK waits for the channel's state to change instead of asking.
 */
export class ChannelReadiness {
  private watched: grpc.ChannelInterface | undefined;

  /**
   * `onChange` runs (once per wait) when a channel found unusable changes state; what it
   * throws goes to `onError`, never into grpc-js or the bot.
   */
  constructor(
    private readonly onChange: () => void,
    private readonly onError: (err: Error) => void,
  ) {}

  /**
   * True when a call may be opened on `client` now. False while its channel is in
   * TRANSIENT_FAILURE; `onChange` then runs once the state moves (READY, IDLE, SHUTDOWN).
   * An IDLE channel is asked to connect; calls on a CONNECTING one wait for it in grpc-js.
   */
  callable(client: grpc.Client): boolean {
    let channel: grpc.ChannelInterface;
    let state: grpc.connectivityState;
    try {
      channel = client.getChannel();
      state = channel.getConnectivityState(true);
    } catch {
      // A closed client: let the call itself report what is wrong.
      return true;
    }
    if (state !== grpc.connectivityState.TRANSIENT_FAILURE) return true;
    if (this.watched !== channel) {
      this.watched = channel;
      try {
        channel.watchConnectivityState(state, Infinity, () => {
          if (this.watched === channel) this.watched = undefined;
          // grpc-js calls watchers in the middle of its state update: act once it has finished.
          queueMicrotask(() => {
            try {
              this.onChange();
            } catch (err) {
              this.onError(err instanceof Error ? err : new Error(String(err)));
            }
          });
        });
      } catch {
        // Shut down between the two calls.
        this.watched = undefined;
        return true;
      }
    }
    return false;
  }
}
