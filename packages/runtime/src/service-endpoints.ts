import type { Registry } from "prom-client";

import type { HostPort } from "./config.js";
import { startGrpcServer, type GrpcServiceRegistration, type RunningGrpcServer } from "./grpc-server.js";
import type { Logger } from "./logger.js";
import { startMetricsServer, type MetricsServer } from "./metrics-server.js";
import { PROTO_DIR, sessionTrackProtoFiles } from "./protos.js";

/** What a SessionTrack service exposes: its gRPC services and its metrics registry. */
export interface ServiceEndpointsOptions {
  listen: HostPort;
  metricsListen: HostPort;
  services: GrpcServiceRegistration[];
  registry: Registry;
  /** /readyz answers 200 while this returns true. */
  isReady: () => boolean;
  /** Largest request message accepted, in bytes. */
  maxReceiveMessageBytes: number;
  logger: Logger;
}

/** A service's running gRPC server (with health and reflection) and metrics endpoint. */
export interface ServiceEndpoints {
  grpc: RunningGrpcServer;
  http: MetricsServer;
}

/**
 * Starts a service's gRPC server (with health and server reflection over the
 * sessiontrack.v1 protos) and its metrics endpoint; if the second fails to start, the
 * first is shut down again before the error is rethrown.
 */
export async function startServiceEndpoints(options: ServiceEndpointsOptions): Promise<ServiceEndpoints> {
  const { logger } = options;
  const grpc = await startGrpcServer({
    host: options.listen.host,
    port: options.listen.port,
    logger: logger.child({ component: "grpc" }),
    services: options.services,
    reflection: { protoFiles: sessionTrackProtoFiles(), includeDirs: [PROTO_DIR] },
    maxReceiveMessageBytes: options.maxReceiveMessageBytes,
  });
  try {
    const http = await startMetricsServer({
      host: options.metricsListen.host,
      port: options.metricsListen.port,
      registry: options.registry,
      isReady: options.isReady,
      logger: logger.child({ component: "metrics" }),
    });
    return { grpc, http };
  } catch (error) {
    await grpc.shutdown(0);
    throw error;
  }
}
