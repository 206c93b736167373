import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";

import type { Registry } from "prom-client";

import { formatHostPort } from "./config.js";
import type { Logger } from "./logger.js";

/** Options for {@link startMetricsServer}. */
export interface MetricsServerOptions {
  host: string;
  port: number;
  registry: Registry;
  /** /readyz answers 200 while this returns true, else 503. */
  isReady: () => boolean;
  logger: Logger;
}

/** A running metrics endpoint. */
export interface MetricsServer {
  /** `host:port` actually bound. */
  address: string;
  port: number;
  close(): Promise<void>;
}

/**
 * Serves `/metrics` (Prometheus text), `/healthz` (200 while the process lives) and
 * `/readyz` (200 when ready, 503 otherwise) on their own port, apart from gRPC.
 */
export async function startMetricsServer(options: MetricsServerOptions): Promise<MetricsServer> {
  const { registry, isReady, logger } = options;
  const server: Server = createServer((request, response) => {
    const path = (request.url ?? "/").split("?")[0];
    if (request.method !== "GET" && request.method !== "HEAD") {
      response.writeHead(405, { allow: "GET, HEAD" }).end();
      return;
    }
    if (path === "/metrics") {
      registry.metrics().then(
        (text) => response.writeHead(200, { "content-type": registry.contentType }).end(text),
        (error: unknown) => {
          logger.error({ err: error }, "metrics: collecting failed");
          response.writeHead(500).end("collecting metrics failed\n");
        },
      );
    } else if (path === "/healthz") {
      response.writeHead(200, { "content-type": "text/plain" }).end("ok\n");
    } else if (path === "/readyz") {
      const ready = isReady();
      response
        .writeHead(ready ? 200 : 503, { "content-type": "text/plain" })
        .end(ready ? "ready\n" : "not ready\n");
    } else {
      response
        .writeHead(404, { "content-type": "text/plain" })
        .end("not found: try /metrics, /healthz, /readyz\n");
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port, options.host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  return {
    address: formatHostPort(options.host, port),
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
