import { EventEmitter } from "node:events";
import { Worker } from "node:worker_threads";
import * as grpc from "@grpc/grpc-js";
import { owned } from "./transport-protocol.js";
import type { FromTransport, ToTransport } from "./transport-protocol.js";

/**
 * One worker thread that owns grpc-js for a client (option `transport: "worker"`). The
 * bot's thread keeps capture, encoding, the spool and every delivery decision; requests
 * cross to the worker as serialized bytes (transferred, not cloned, when they own their
 * buffer) and responses come back as bytes. So grpc-js's HTTP/2 sockets and their error
 * paths run in the worker's V8 isolate: when ingest dies, the bot's Node stream and HTTP
 * code is not deoptimized and recompiled (loadtest/README.md, tenth pass).
 */
export class TransportWorker {
  private readonly worker: Worker;
  private readonly channels = new Map<number, RemoteChannel>();
  private readonly calls = new Map<number, RemoteCall>();
  private nextId = 1;
  private closed = false;
  /** Set once the worker crashed or exited on its own (reported once). */
  private lost = false;

  constructor(private readonly onError: (err: Error) => void) {
    this.worker = new Worker(new URL("./transport-host.js", import.meta.url), {
      // The bot's own flags (--input-type, --eval, loaders for its sources) are not the worker's business.
      execArgv: [],
    });
    this.worker.on("message", (message: FromTransport) => this.receive(message));
    this.worker.on("error", (err) => this.failAll(`transport worker crashed: ${err.message}`));
    this.worker.on("exit", (code) => this.failAll(`transport worker exited unexpectedly (code ${code})`));
    // Like the client's own timers, the worker does not keep the bot alive.
    this.worker.unref();
  }

  /** A grpc.Client look-alike whose channel lives in the worker. */
  client(target: string, options: grpc.ChannelOptions): grpc.Client {
    const id = this.nextId++;
    const channel = new RemoteChannel(this, id);
    this.channels.set(id, channel);
    this.post({ t: "channel", channel: id, target, options });
    if (this.lost) channel.update(grpc.connectivityState.TRANSIENT_FAILURE);
    return new RemoteGrpcClient(this, channel) as unknown as grpc.Client;
  }

  /** Stops the worker; calls still open end with UNAVAILABLE. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.failAll("transport closed");
    await this.worker.terminate();
  }

  post(message: ToTransport, transfer?: ArrayBuffer[]): void {
    if (this.closed) return;
    this.worker.postMessage(message, transfer);
  }

  openCall(call: RemoteCall): number {
    const id = this.nextId++;
    this.calls.set(id, call);
    // No worker to answer: the call fails as a call to a dead channel would, after its caller set up.
    if (this.lost || this.closed)
      queueMicrotask(() =>
        this.receive({
          t: "status",
          call: id,
          code: grpc.status.UNAVAILABLE,
          details: "transport worker gone",
        }),
      );
    return id;
  }

  private receive(message: FromTransport): void {
    try {
      switch (message.t) {
        case "state":
          this.channels.get(message.channel)?.update(message.state);
          // A closed channel (a canary lane that went away, say) is not heard of again.
          if (message.state === grpc.connectivityState.SHUTDOWN) this.channels.delete(message.channel);
          return;
        case "data":
          this.calls.get(message.call)?.deliver(message.bytes);
          return;
        case "status": {
          const call = this.calls.get(message.call);
          this.calls.delete(message.call);
          call?.finish(message.code, message.details);
          return;
        }
      }
    } catch (err) {
      this.onError(err instanceof Error ? err : new Error(String(err)));
    }
  }

  /** Ends every open call with UNAVAILABLE and marks every channel down (worker gone or closed). */
  private failAll(reason: string): void {
    if (!this.closed) {
      if (this.lost) return;
      this.lost = true;
      this.onError(new Error(reason));
    }
    const calls = [...this.calls.values()];
    this.calls.clear();
    for (const call of calls) call.finish(grpc.status.UNAVAILABLE, reason);
    for (const channel of this.channels.values())
      channel.update(
        this.closed ? grpc.connectivityState.SHUTDOWN : grpc.connectivityState.TRANSIENT_FAILURE,
      );
  }
}

/** The channel's state as the worker last reported it, with grpc-js's watch semantics. */
class RemoteChannel {
  private state = grpc.connectivityState.IDLE;
  private watchers: { from: grpc.connectivityState; callback: (err?: Error) => void }[] = [];

  constructor(
    private readonly transport: TransportWorker,
    readonly id: number,
  ) {}

  getConnectivityState(tryToConnect: boolean): grpc.connectivityState {
    if (tryToConnect && this.state === grpc.connectivityState.IDLE)
      this.transport.post({ t: "connect", channel: this.id });
    return this.state;
  }

  watchConnectivityState(
    currentState: grpc.connectivityState,
    _deadline: grpc.Deadline,
    callback: (err?: Error) => void,
  ): void {
    if (this.state === grpc.connectivityState.SHUTDOWN) throw new Error("channel has been shut down");
    if (currentState !== this.state) {
      queueMicrotask(() => callback());
      return;
    }
    this.watchers.push({ from: currentState, callback });
  }

  update(state: grpc.connectivityState): void {
    if (state === this.state) return;
    this.state = state;
    const due = this.watchers.filter((w) => w.from !== state);
    this.watchers = this.watchers.filter((w) => w.from === state);
    for (const watcher of due) watcher.callback();
  }
}

/** The subset of grpc.Client the SDK uses: streams, the channel's state, close. */
class RemoteGrpcClient {
  constructor(
    private readonly transport: TransportWorker,
    private readonly channel: RemoteChannel,
  ) {}

  getChannel(): RemoteChannel {
    return this.channel;
  }

  makeBidiStreamRequest<Req, Res>(
    path: string,
    serialize: (value: Req) => Buffer,
    deserialize: (bytes: Buffer) => Res,
    metadata: grpc.Metadata,
  ): RemoteCall {
    return this.start(path, serialize, deserialize, metadata, undefined);
  }

  makeServerStreamRequest<Req, Res>(
    path: string,
    serialize: (value: Req) => Buffer,
    deserialize: (bytes: Buffer) => Res,
    request: Req,
    metadata: grpc.Metadata,
  ): RemoteCall {
    return this.start(path, serialize, deserialize, metadata, request);
  }

  close(): void {
    this.transport.post({ t: "close", channel: this.channel.id });
  }

  private start<Req, Res>(
    path: string,
    serialize: (value: Req) => Buffer,
    deserialize: (bytes: Buffer) => Res,
    metadata: grpc.Metadata,
    request: Req | undefined,
  ): RemoteCall {
    const call = new RemoteCall(this.transport, serialize as (value: unknown) => Buffer, deserialize);
    const headers: Record<string, string> = {};
    for (const [key, value] of Object.entries(metadata.getMap()))
      if (typeof value === "string") headers[key] = value;
    const bytes = request === undefined ? undefined : owned(serialize(request));
    this.transport.post(
      { t: "call", channel: this.channel.id, call: call.id, path, metadata: headers, request: bytes },
      bytes === undefined ? undefined : [bytes.buffer as ArrayBuffer],
    );
    return call;
  }
}

/** A call as the SDK sees a grpc-js stream: write, cancel, and data / error / status events. */
class RemoteCall extends EventEmitter {
  readonly id: number;
  private ended = false;

  constructor(
    private readonly transport: TransportWorker,
    private readonly serialize: (value: unknown) => Buffer,
    private readonly deserialize: (bytes: Buffer) => unknown,
  ) {
    super();
    this.id = transport.openCall(this);
  }

  write(value: unknown): boolean {
    if (this.ended) return false;
    const bytes = owned(this.serialize(value));
    this.transport.post({ t: "write", call: this.id, bytes }, [bytes.buffer as ArrayBuffer]);
    return true;
  }

  cancel(): void {
    if (!this.ended) this.transport.post({ t: "cancel", call: this.id });
  }

  deliver(bytes: Uint8Array): void {
    if (this.ended) return;
    this.emit("data", this.deserialize(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)));
  }

  finish(code: grpc.status, details: string): void {
    if (this.ended) return;
    this.ended = true;
    if (code !== grpc.status.OK)
      this.emit(
        "error",
        Object.assign(new Error(`${code} ${grpc.status[code]}: ${details}`), { code, details }),
      );
    this.emit("status", { code, details, metadata: new grpc.Metadata() });
  }
}
