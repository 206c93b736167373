import type * as grpc from "@grpc/grpc-js";

/**
 * The messages between {@link RemoteGrpcClient} (the bot's thread) and the transport worker
 * (transport-host.ts), which owns the grpc-js channels. Requests and responses cross as
 * serialized protobuf bytes; ids name the channels and calls.
 */
export type ToTransport =
  | { t: "channel"; channel: number; target: string; options: grpc.ChannelOptions }
  | { t: "connect"; channel: number }
  | { t: "close"; channel: number }
  | {
      t: "call";
      channel: number;
      call: number;
      path: string;
      metadata: Record<string, string>;
      /** The request of a server-streaming call; undefined for a bidi stream. */
      request: Uint8Array | undefined;
    }
  | { t: "write"; call: number; bytes: Uint8Array }
  | { t: "cancel"; call: number };

export type FromTransport =
  | { t: "state"; channel: number; state: grpc.connectivityState }
  | { t: "data"; call: number; bytes: Uint8Array }
  | { t: "status"; call: number; code: grpc.status; details: string };

/** A copy of `bytes` that owns its whole ArrayBuffer, so it can be transferred to the other thread. */
export function ownedCopy(bytes: Uint8Array): Uint8Array {
  return Uint8Array.prototype.slice.call(bytes);
}

/** `bytes` itself when it owns its whole ArrayBuffer (so it can be transferred), else {@link ownedCopy}. */
export function owned(bytes: Uint8Array): Uint8Array {
  if (
    bytes.byteOffset === 0 &&
    bytes.byteLength === bytes.buffer.byteLength &&
    !(bytes.buffer instanceof SharedArrayBuffer)
  )
    return bytes;
  return ownedCopy(bytes);
}
