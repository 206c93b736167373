import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { ReflectionService } from "@grpc/reflection";
import { HealthImplementation, protoPath as healthProtoPath } from "grpc-health-check";

import { StorageUnavailableError } from "@sessiontrack/errors";

import { formatHostPort } from "./config.js";
import type { Logger } from "./logger.js";

/** One service to serve: a grpc-js definition and its handlers. */
export interface GrpcServiceRegistration {
  /** Fully qualified name, for health status, e.g. `sessiontrack.v1.IngestService`. */
  name: string;
  definition: grpc.ServiceDefinition;
  implementation: grpc.UntypedServiceImplementation;
}

/** Options for {@link startGrpcServer}. */
export interface GrpcServerOptions {
  host: string;
  port: number;
  services: GrpcServiceRegistration[];
  logger: Logger;
  /** .proto files (relative to includeDirs) to describe through server reflection. */
  reflection?: { protoFiles: string[]; includeDirs: string[] };
  /** Largest request message accepted, in bytes; larger ones get RESOURCE_EXHAUSTED. Default 32 MiB. */
  maxReceiveMessageBytes?: number;
}

/** A running gRPC server. */
export interface RunningGrpcServer {
  /** `host:port` actually bound. */
  address: string;
  port: number;
  server: grpc.Server;
  /** Reports a service (and the overall "" service) as SERVING or NOT_SERVING. */
  setServing(serviceName: string, serving: boolean): void;
  /** NOT_SERVING, then a graceful shutdown bounded by graceMs, then a forced one. */
  shutdown(graceMs: number): Promise<void>;
}

/**
 * Starts a grpc-js server with the given services plus grpc.health.v1.Health and
 * server reflection, so grpcurl and k6 work against it with no extra files.
 */
export async function startGrpcServer(options: GrpcServerOptions): Promise<RunningGrpcServer> {
  const { logger } = options;
  const server = new grpc.Server({
    "grpc.max_receive_message_length": options.maxReceiveMessageBytes ?? 32 * 1024 * 1024,
    "grpc.keepalive_permit_without_calls": 1,
    "grpc.http2.min_ping_interval_without_data_ms": 5_000,
  });
  const health = new HealthImplementation({ "": "NOT_SERVING" });
  health.addToServer(server);
  for (const service of options.services) {
    server.addService(service.definition, service.implementation);
    health.setStatus(service.name, "NOT_SERVING");
  }
  if (options.reflection !== undefined) {
    const definition = protoLoader.loadSync([...options.reflection.protoFiles, healthProtoPath], {
      includeDirs: options.reflection.includeDirs,
      keepCase: true,
    });
    new ReflectionService(definition).addToServer(server);
  }
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync(
      formatHostPort(options.host, options.port),
      grpc.ServerCredentials.createInsecure(),
      (error, boundPort) => {
        if (error !== null) {
          reject(
            new StorageUnavailableError(
              `cannot listen on ${formatHostPort(options.host, options.port)}: ${error.message}`,
              { cause: error },
            ),
          );
        } else resolve(boundPort);
      },
    );
  });
  const setServing = (serviceName: string, serving: boolean): void => {
    health.setStatus(serviceName, serving ? "SERVING" : "NOT_SERVING");
  };
  setServing("", true);
  for (const service of options.services) setServing(service.name, true);
  logger.debug({ port }, "grpc: listening");

  let shutdown: Promise<void> | undefined;
  return {
    address: formatHostPort(options.host, port),
    port,
    server,
    setServing,
    shutdown(graceMs: number) {
      shutdown ??= new Promise<void>((resolve) => {
        setServing("", false);
        for (const service of options.services) setServing(service.name, false);
        const force = setTimeout(() => {
          logger.warn({ graceMs }, "grpc: grace period over, cancelling remaining calls");
          server.forceShutdown();
          resolve();
        }, graceMs);
        force.unref();
        server.tryShutdown(() => {
          clearTimeout(force);
          resolve();
        });
      });
      return shutdown;
    },
  };
}
