import { join } from "node:path";

import {
  PROTO_DIR,
  sessionTrackProtoFiles,
  startGrpcServer,
  startMetricsServer,
  TenantDirectory,
  type Logger,
} from "@sessiontrack/runtime";
import { WriteAheadLog } from "@sessiontrack/wal";

import { CaptureConfigSource } from "./capture-config.js";
import type { IngestConfig } from "./config.js";
import { IngestService, RawIngestServiceDefinition } from "./ingest-service.js";
import { IngestMetrics } from "./metrics.js";

/** A running ingest service. */
export interface IngestServer {
  /** gRPC `host:port` actually bound. */
  address: string;
  /** Metrics `host:port` actually bound. */
  metricsAddress: string;
  wal: WriteAheadLog;
  /** Graceful drain: refuse new batches, ack the ones in flight, end calls, close the WAL. */
  close(): Promise<void>;
}

/** The WAL lives in `<data dir>/wal`. */
export function walDirectory(dataDir: string): string {
  return join(dataDir, "wal");
}

/**
 * Starts ingest: loads tenants and capture config (failing fast on bad files), opens
 * and replays the WAL, then serves gRPC and metrics.
 */
export async function startIngestServer(config: IngestConfig, logger: Logger): Promise<IngestServer> {
  const tenants = TenantDirectory.load(config.tenantsFile);
  const captureConfig = new CaptureConfigSource(
    config.captureConfigFile,
    logger.child({ component: "capture-config" }),
  );
  const wal = await WriteAheadLog.open({
    dir: walDirectory(config.dataDir),
    segmentBytes: config.walSegmentBytes,
    maxRetainedBytes: config.walMaxRetainedBytes,
    logger: logger.child({ component: "wal" }),
  });
  const metrics = new IngestMetrics(wal);
  const service = new IngestService({
    wal,
    tenants,
    captureConfig,
    limits: config,
    metrics,
    logger: logger.child({ component: "ingest-service" }),
  });
  let draining = false;
  let grpcServer;
  let metricsServer;
  try {
    grpcServer = await startGrpcServer({
      host: config.listen.host,
      port: config.listen.port,
      logger: logger.child({ component: "grpc" }),
      services: [
        {
          name: "sessiontrack.v1.IngestService",
          definition: RawIngestServiceDefinition,
          implementation: service.implementation(),
        },
      ],
      reflection: { protoFiles: sessionTrackProtoFiles(), includeDirs: [PROTO_DIR] },
      maxReceiveMessageBytes: config.maxBatchBytes + 1024 * 1024,
    });
    metricsServer = await startMetricsServer({
      host: config.metricsListen.host,
      port: config.metricsListen.port,
      registry: metrics.registry,
      isReady: () => !draining && wal.stats().failed === null,
      logger: logger.child({ component: "metrics" }),
    });
  } catch (error) {
    await grpcServer?.shutdown(0);
    captureConfig.close();
    await wal.close();
    throw error;
  }
  logger.info(
    { tenants: tenants.size, walLastLsn: wal.lastDurableLsn(), truncated: wal.replay.truncated.length },
    "ingest started",
  );
  const grpc = grpcServer;
  const http = metricsServer;
  let closing: Promise<void> | undefined;
  return {
    address: grpc.address,
    metricsAddress: http.address,
    wal,
    close() {
      closing ??= (async () => {
        draining = true;
        await service.drain();
        await grpc.shutdown(config.shutdownGraceMs);
        captureConfig.close();
        await wal.close();
        await http.close();
        logger.info({ walLastLsn: wal.lastDurableLsn() }, "ingest stopped");
      })();
      return closing;
    },
  };
}
