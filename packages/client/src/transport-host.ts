/**
 * The transport worker: grpc-js channels and calls for {@link RemoteGrpcClient}s on the
 * bot's thread. It only moves bytes; every decision stays with the client.
 */
import * as grpc from "@grpc/grpc-js";
import { parentPort } from "node:worker_threads";
import { ownedCopy } from "./transport-protocol.js";
import type { FromTransport, ToTransport } from "./transport-protocol.js";

type AnyCall = grpc.ClientDuplexStream<Buffer, Buffer> | grpc.ClientReadableStream<Buffer>;

const port = parentPort!;
const channels = new Map<number, grpc.Client>();
const calls = new Map<number, AnyCall>();
const identity = (bytes: Buffer): Buffer => bytes;

function post(message: FromTransport, transfer?: ArrayBuffer[]): void {
  port.postMessage(message, transfer);
}

/** Reports the channel's state now and on every change until it shuts down. */
function watchState(id: number, client: grpc.Client): void {
  const channel = client.getChannel();
  let state: grpc.connectivityState;
  try {
    state = channel.getConnectivityState(false);
  } catch {
    return;
  }
  post({ t: "state", channel: id, state });
  if (state === grpc.connectivityState.SHUTDOWN) return;
  try {
    channel.watchConnectivityState(state, Infinity, () => {
      if (channels.get(id) === client) watchState(id, client);
    });
  } catch {
    // Closed between the two calls.
  }
}

function receive(message: ToTransport): void {
  switch (message.t) {
    case "channel": {
      const client = new grpc.Client(message.target, grpc.credentials.createInsecure(), message.options);
      channels.set(message.channel, client);
      watchState(message.channel, client);
      return;
    }
    case "connect":
      channels.get(message.channel)?.getChannel().getConnectivityState(true);
      return;
    case "close": {
      const client = channels.get(message.channel);
      channels.delete(message.channel);
      client?.close();
      post({ t: "state", channel: message.channel, state: grpc.connectivityState.SHUTDOWN });
      return;
    }
    case "call": {
      const client = channels.get(message.channel);
      if (client === undefined) {
        post({ t: "status", call: message.call, code: grpc.status.UNAVAILABLE, details: "channel closed" });
        return;
      }
      const metadata = new grpc.Metadata();
      for (const [key, value] of Object.entries(message.metadata)) metadata.set(key, value);
      const call: AnyCall =
        message.request === undefined
          ? client.makeBidiStreamRequest(message.path, identity, identity, metadata, {})
          : client.makeServerStreamRequest(
              message.path,
              identity,
              identity,
              Buffer.from(message.request.buffer, message.request.byteOffset, message.request.byteLength),
              metadata,
              {},
            );
      const id = message.call;
      calls.set(id, call);
      // grpc-js's buffer may be a slice of a pool that cannot be transferred: one copy that owns
      // its memory, moved (not cloned again) to the bot's thread.
      call.on("data", (bytes: Buffer) => {
        const copy = ownedCopy(bytes);
        post({ t: "data", call: id, bytes: copy }, [copy.buffer as ArrayBuffer]);
      });
      // 'status' always ends a call; 'error' needs a listener so grpc-js does not throw it.
      call.on("error", () => undefined);
      call.on("status", (status: grpc.StatusObject) => {
        calls.delete(id);
        post({ t: "status", call: id, code: status.code, details: status.details });
      });
      return;
    }
    case "write": {
      const call = calls.get(message.call);
      const bytes = message.bytes;
      if (call !== undefined && "write" in call)
        call.write(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
      return;
    }
    case "cancel":
      calls.get(message.call)?.cancel();
      return;
  }
}

port.on("message", (message: ToTransport) => {
  try {
    receive(message);
  } catch (err) {
    // A call that cannot even start ends like any failed call; the client's thread decides.
    if (message.t === "call")
      post({ t: "status", call: message.call, code: grpc.status.INTERNAL, details: String(err) });
  }
});
