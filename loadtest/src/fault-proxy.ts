// A TCP proxy the load test puts between the capturing bot and ingest, to slow ingest down
// without changing it: in "delay" mode every byte ingest sends (acks included) reaches the
// bot `delayMs` later, in order. HTTP/2 frames are forwarded untouched, so gRPC still works.
import { connect, createServer, type Server, type Socket } from "node:net";

/** How the proxy treats traffic right now. */
export type ProxyMode = { kind: "pass" } | { kind: "delay"; delayMs: number };

/** A loopback TCP proxy to `upstream` (`host:port`) with a switchable {@link ProxyMode}. */
export class FaultProxy {
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();
  private mode: ProxyMode = { kind: "pass" };
  /** Bytes forwarded from upstream to clients; for the report. */
  bytesDown = 0;

  constructor(private readonly upstream: { host: string; port: number }) {}

  setMode(mode: ProxyMode): void {
    this.mode = mode;
  }

  /** Listens on 127.0.0.1:port (0 = any) and resolves with the address. */
  listen(port = 0): Promise<string> {
    const server = createServer((client) => this.accept(client));
    this.server = server;
    return new Promise((resolve, reject) => {
      server.once("error", reject);
      server.listen(port, "127.0.0.1", () => {
        const address = server.address();
        resolve(typeof address === "object" && address !== null ? `127.0.0.1:${address.port}` : "");
      });
    });
  }

  private accept(client: Socket): void {
    const upstream = connect(this.upstream.port, this.upstream.host);
    this.sockets.add(client);
    this.sockets.add(upstream);
    client.setNoDelay(true);
    upstream.setNoDelay(true);
    const closeBoth = (): void => {
      client.destroy();
      upstream.destroy();
      this.sockets.delete(client);
      this.sockets.delete(upstream);
    };
    client.on("error", closeBoth);
    upstream.on("error", closeBoth);
    client.on("close", closeBoth);
    upstream.on("close", () => {
      // Deliver what is still delayed before closing the client side.
      const mode = this.mode;
      setTimeout(closeBoth, mode.kind === "delay" ? mode.delayMs + 5 : 0);
    });
    client.on("data", (chunk: Buffer) => {
      if (!upstream.destroyed) upstream.write(chunk);
    });
    // Chunks from upstream wait in one ordered queue per connection, each until its due
    // time, so switching modes never reorders the byte stream.
    const queue: { dueAt: number; chunk: Buffer }[] = [];
    let timer: NodeJS.Timeout | undefined;
    const drain = (): void => {
      timer = undefined;
      const now = Date.now();
      while (queue.length > 0 && queue[0]!.dueAt <= now) {
        const { chunk } = queue.shift()!;
        if (!client.destroyed) client.write(chunk);
      }
      if (queue.length > 0) timer = setTimeout(drain, queue[0]!.dueAt - now);
    };
    upstream.on("data", (chunk: Buffer) => {
      this.bytesDown += chunk.length;
      const mode = this.mode;
      const delay = mode.kind === "delay" ? mode.delayMs : 0;
      if (delay === 0 && queue.length === 0) {
        if (!client.destroyed) client.write(chunk);
        return;
      }
      const last = queue.length > 0 ? queue[queue.length - 1]!.dueAt : 0;
      queue.push({ dueAt: Math.max(last, Date.now() + delay), chunk });
      if (timer === undefined) timer = setTimeout(drain, Math.max(0, queue[0]!.dueAt - Date.now()));
    });
  }

  /** Closes the listener and every proxied connection. */
  async close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    this.sockets.clear();
    const server = this.server;
    if (server !== undefined) await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
