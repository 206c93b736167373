import { join } from "node:path";

import { startServiceEndpoints, TenantDirectory, type Logger } from "@sessiontrack/runtime";
import { PrivacyServiceService } from "@sessiontrack/proto";
import { WriteAheadLog } from "@sessiontrack/wal";

import { CaptureConfigSource } from "./capture-config.js";
import type { IngestConfig } from "./config.js";
import { DrainSignal } from "./drain-signal.js";
import { IngestService, RawIngestServiceDefinition } from "./ingest-service.js";
import { IngestMetrics, ShipperMetrics } from "./metrics.js";
import { PrivacyService } from "./privacy-service.js";
import { loadTenantRedactors } from "./redaction.js";
import { Shipper } from "./shipper.js";
import { CanarySinkRoutes } from "./shipper-canary.js";
import { createSinkClients, openSinkTransport, sinkTransports, type SinkClients } from "./shipper-sinks.js";

/** A running ingest service. */
export interface IngestServer {
  /** gRPC `host:port` actually bound. */
  address: string;
  /** Metrics `host:port` actually bound. */
  metricsAddress: string;
  wal: WriteAheadLog;
  /** Delivers the WAL to archive and index; undefined when no sink is configured. */
  shipper: Shipper | undefined;
  /** The operator's drain request (pod annotation via the downward API); never set without --drain-file. */
  drainSignal: DrainSignal;
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
  const redactorFor = loadTenantRedactors(tenants);
  const captureConfig = new CaptureConfigSource(
    config.captureConfigFile,
    logger.child({ component: "capture-config" }),
  );
  const sinkClients: SinkClients | undefined =
    config.shipping === undefined ? undefined : createSinkClients(config.shipping, config.shipTimeoutMs);
  const transports = sinkClients === undefined ? [] : sinkTransports(sinkClients);
  // Each configured sink keeps a cursor; a segment goes only once all of them confirmed it.
  const wal = await WriteAheadLog.open({
    dir: walDirectory(config.dataDir),
    segmentBytes: config.walSegmentBytes,
    maxRetainedBytes: config.walMaxRetainedBytes,
    sinks: transports.map((transport) => transport.name),
    logger: logger.child({ component: "wal" }),
  });
  const metrics = new IngestMetrics(wal);
  const { shipping } = config;
  // An index or archive canary named by the capture config gets its cohort's events; the
  // canary client uses the stable sink's TLS setting, service key and deadline.
  const canaryRoutes =
    sinkClients === undefined || shipping === undefined
      ? undefined
      : new CanarySinkRoutes(
          () => captureConfig.config.canary,
          (sink, address) =>
            openSinkTransport(sink, { address, tls: shipping[sink]?.tls ?? false }, sinkClients),
        );
  const shipper =
    transports.length === 0
      ? undefined
      : new Shipper({
          wal,
          sinks: transports,
          metrics: new ShipperMetrics(
            metrics.registry,
            wal,
            transports.map((transport) => transport.name),
          ),
          logger: logger.child({ component: "shipper" }),
          batch: { maxRecords: config.shipBatchEvents, maxBytes: config.shipBatchBytes },
          ...(canaryRoutes === undefined ? {} : { canary: canaryRoutes }),
        });
  const privacy = new PrivacyService({
    wal,
    tenants,
    shipper,
    sinks: sinkClients,
    shipWaitMs: config.eraseWaitMs,
    logger: logger.child({ component: "privacy" }),
  });
  const service = new IngestService({
    wal,
    tenants,
    captureConfig,
    limits: config,
    metrics,
    logger: logger.child({ component: "ingest-service" }),
    redactorFor,
  });
  const drainSignal = new DrainSignal(config.drainFile, logger.child({ component: "drain" }));
  let draining = false;
  let endpoints: Awaited<ReturnType<typeof startServiceEndpoints>> | undefined;
  // Draining before a scale-down: not ready (the Service stops routing here), intake closed,
  // the shipper goes on until the WAL is shipped. The gauge the operator trusts turns 1 only
  // once no batch accepted before is still waiting for its ack; then the clients' watches
  // end and their connections get GOAWAY, so they re-resolve to ready pods. Withdrawn: all
  // of it reverts (clients come back through the Service).
  let drainRequest = 0;
  const followDrain = (requested: boolean): void => {
    const request = (drainRequest += 1);
    if (!requested) {
      metrics.draining.set(0);
      service.openIntake();
      return;
    }
    service
      .closeIntake()
      .then(() => {
        if (request !== drainRequest || draining) return;
        metrics.draining.set(1);
        const watchers = service.releaseWatchers(
          "this ingest replica is draining before a scale-down; watch again to reach another replica",
        );
        const grpcServer = endpoints?.grpc;
        if (grpcServer !== undefined) grpcServer.server.drain(grpcServer.address, config.shutdownGraceMs);
        logger.info({ watchers }, "intake closed and acked: watches ended, connections sent GOAWAY");
      })
      .catch((error: unknown) => logger.error({ err: error }, "closing intake failed"));
  };
  followDrain(drainSignal.draining);
  drainSignal.subscribe(followDrain);
  try {
    endpoints = await startServiceEndpoints({
      listen: config.listen,
      metricsListen: config.metricsListen,
      services: [
        {
          name: "sessiontrack.v1.IngestService",
          definition: RawIngestServiceDefinition,
          implementation: service.implementation(),
        },
        {
          name: "sessiontrack.v1.PrivacyService",
          definition: PrivacyServiceService,
          implementation: privacy.implementation(),
        },
      ],
      registry: metrics.registry,
      isReady: () => !draining && !drainSignal.draining && wal.stats().failed === null,
      maxReceiveMessageBytes: config.maxBatchBytes + 1024 * 1024,
      logger,
    });
  } catch (error) {
    drainSignal.close();
    captureConfig.close();
    sinkClients?.close();
    canaryRoutes?.close();
    await wal.close();
    throw error;
  }
  shipper?.start();
  if (shipper !== undefined && canaryRoutes !== undefined) {
    let route = JSON.stringify(captureConfig.config.canary ?? null);
    captureConfig.subscribe((next) => {
      const changed = JSON.stringify(next.canary ?? null);
      if (changed === route) return;
      route = changed;
      shipper.routeChanged();
    });
  }
  logger.info(
    {
      tenants: tenants.size,
      walLastLsn: wal.lastDurableLsn(),
      truncated: wal.replay.truncated.length,
      shipping: shipper?.status() ?? "off",
    },
    "ingest started",
  );
  const { grpc, http } = endpoints;
  let closing: Promise<void> | undefined;
  return {
    address: grpc.address,
    metricsAddress: http.address,
    wal,
    shipper,
    drainSignal,
    close() {
      closing ??= (async () => {
        draining = true;
        drainSignal.close();
        await service.drain();
        await grpc.shutdown(config.shutdownGraceMs);
        captureConfig.close();
        // Ship what is already durable while the sinks answer; the rest waits in the WAL.
        await shipper?.stop(config.shutdownGraceMs);
        sinkClients?.close();
        canaryRoutes?.close();
        await wal.close();
        await http.close();
        logger.info({ walLastLsn: wal.lastDurableLsn() }, "ingest stopped");
      })();
      return closing;
    },
  };
}
