import { startServiceEndpoints, TenantDirectory, type Logger } from "@sessiontrack/runtime";

import { createIndexBackend } from "./backend-factory.js";
import type { IndexBackend } from "./backend.js";
import type { IndexConfig } from "./config.js";
import { IndexService, RawIndexServiceDefinition } from "./index-service.js";
import { IndexMetrics } from "./metrics.js";

/** A running index service. */
export interface IndexServer {
  /** gRPC `host:port` actually bound. */
  address: string;
  /** Metrics `host:port` actually bound. */
  metricsAddress: string;
  backend: IndexBackend;
  /** Stops taking calls, answers the ones in flight, closes the backend. */
  close(): Promise<void>;
}

/**
 * Starts the index service: loads tenants (failing fast on a bad file), opens the
 * backend, then serves gRPC and metrics.
 */
export async function startIndexServer(config: IndexConfig, logger: Logger): Promise<IndexServer> {
  const tenants = TenantDirectory.load(config.tenantsFile);
  const metrics = new IndexMetrics();
  const backend = await createIndexBackend(config, logger, metrics);
  const service = new IndexService({
    backend,
    tenants,
    metrics,
    logger: logger.child({ component: "index-service" }),
    maxBatchEvents: config.maxBatchEvents,
  });
  let closing = false;
  let endpoints;
  try {
    endpoints = await startServiceEndpoints({
      listen: config.listen,
      metricsListen: config.metricsListen,
      services: [
        {
          name: "sessiontrack.v1.IndexService",
          definition: RawIndexServiceDefinition,
          implementation: service.implementation(),
        },
      ],
      registry: metrics.registry,
      isReady: () => !closing,
      maxReceiveMessageBytes: 64 * 1024 * 1024,
      logger,
    });
  } catch (error) {
    await backend.close();
    throw error;
  }
  logger.info(
    { backend: backend.kind, tenants: tenants.size, address: endpoints.grpc.address },
    "index started",
  );
  const { grpc, http } = endpoints;
  let closed: Promise<void> | undefined;
  return {
    address: grpc.address,
    metricsAddress: http.address,
    backend,
    close() {
      closed ??= (async () => {
        closing = true;
        await grpc.shutdown(config.shutdownGraceMs);
        await service.drain();
        await backend.close();
        await http.close();
        logger.info("index stopped");
      })();
      return closed;
    },
  };
}
