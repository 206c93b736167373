import { startMetricsServer, type Logger } from "@sessiontrack/runtime";

import type { OperatorConfig } from "./config.js";
import { SessionStoreController } from "./controller.js";
import { KubeClient, LeaderElector, type KubeConnection } from "./k8s/index.js";
import { OperatorMetrics } from "./metrics.js";

/** A running operator. */
export interface RunningOperator {
  /** host:port of /metrics, /healthz and /readyz. */
  metricsAddress: string;
  client: KubeClient;
  controller: SessionStoreController;
  metrics: OperatorMetrics;
  /** True while this instance holds the lease (always true without leader election). */
  isLeader(): boolean;
  /** Stops reconciling, releases the lease (unless `releaseLease` is false), closes the metrics server. */
  close(options?: { releaseLease?: boolean }): Promise<void>;
}

/**
 * Starts the operator: caches filled, leader election campaigning, reconciling once it
 * leads, metrics served. `connection` overrides the kubeconfig from `config` (tests).
 */
export async function startOperator(
  config: OperatorConfig,
  logger: Logger,
  connection?: KubeConnection,
): Promise<RunningOperator> {
  const metrics = new OperatorMetrics({ defaultMetrics: true });
  const kube: KubeConnection =
    connection ?? (config.inCluster ? { inCluster: true } : { kubeconfigPath: config.kubeconfig ?? "" });
  const client = new KubeClient(kube, logger.child({ component: "kubernetes" }), {
    requestTimeoutMs: config.requestTimeoutMs,
  });
  client.onWrite((write) => metrics.writes.inc({ verb: write.verb, kind: write.kind }));
  const controller = new SessionStoreController({
    client,
    logger: logger.child({ component: "controller" }),
    metrics,
    ...(config.namespace === undefined ? {} : { namespace: config.namespace }),
    watchSilenceMs: config.watchSilenceMs,
    resyncMs: config.resyncMs,
    analysisIntervalMs: config.analysisIntervalMs,
    workers: config.workers,
  });
  metrics.reportRelists(() => controller.relists());
  let elector: LeaderElector | undefined;
  let leading = !config.leaderElection;
  if (config.leaderElection) {
    elector = new LeaderElector(
      client,
      {
        namespace: config.leaseNamespace,
        leaseName: config.leaseName,
        identity: config.identity,
        leaseDurationMs: config.leaseDurationMs,
        renewDeadlineMs: config.renewDeadlineMs,
        retryPeriodMs: config.retryPeriodMs,
      },
      logger.child({ component: "leader-election" }),
    );
    client.setWriteGuard(() => elector?.isLeader === true);
  }
  metrics.leader.set(leading ? 1 : 0);
  await controller.start();
  let synced = true;
  let closed = false;
  const server = await startMetricsServer({
    host: config.metricsListen.host,
    port: config.metricsListen.port,
    registry: metrics.registry,
    isReady: () => synced,
    logger,
  });
  if (elector !== undefined) {
    elector.onChange((isLeader) => {
      leading = isLeader;
      metrics.leader.set(isLeader ? 1 : 0);
      controller.setLeading(isLeader);
    });
    elector.start();
  } else {
    controller.setLeading(true);
  }
  logger.info(
    { metrics: server.address, identity: config.identity, leaderElection: config.leaderElection },
    "operator started",
  );
  return {
    metricsAddress: server.address,
    client,
    controller,
    metrics,
    isLeader: () => leading,
    close: async (options = {}) => {
      if (closed) return;
      closed = true;
      synced = false;
      controller.setLeading(false);
      await controller.stop();
      await elector?.stop({ release: options.releaseLease !== false });
      await server.close();
      client.close();
    },
  };
}
