import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";

/** The operator's Prometheus metrics, on a registry of their own. */
export class OperatorMetrics {
  readonly registry = new Registry();
  readonly reconcileDuration = new Histogram({
    name: "sessiontrack_operator_reconcile_duration_seconds",
    help: "Time to reconcile one SessionStore, by result (ok or error).",
    labelNames: ["result"] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [this.registry],
  });
  readonly reconcileErrors = new Counter({
    name: "sessiontrack_operator_reconcile_errors_total",
    help: "Reconciles that failed (and were retried with backoff).",
    registers: [this.registry],
  });
  readonly queueDepth = new Gauge({
    name: "sessiontrack_operator_queue_depth",
    help: "SessionStore keys waiting to be reconciled.",
    registers: [this.registry],
  });
  readonly leader = new Gauge({
    name: "sessiontrack_operator_leader",
    help: "1 while this instance holds the leader lease, else 0.",
    registers: [this.registry],
  });
  readonly writes = new Counter({
    name: "sessiontrack_operator_kubernetes_writes_total",
    help: "Writes sent to the Kubernetes API, by verb and kind.",
    labelNames: ["verb", "kind"] as const,
    registers: [this.registry],
  });
  readonly rollbacks = new Counter({
    name: "sessiontrack_operator_rollbacks_total",
    help: "Canaries rolled back automatically after an analysis breach.",
    registers: [this.registry],
  });

  private relistSource: () => Record<string, Record<string, number>> = () => ({});

  /** Relists by kind and cause (initial, gone, silent, periodic, error): how healthy the watches are. */
  readonly relists = (() => {
    const source = () => this.relistSource();
    return new Gauge({
      name: "sessiontrack_operator_informer_relists",
      help: "Informer relists since start, by kind and cause (gone = 410, silent = watchdog, periodic, error).",
      labelNames: ["kind", "cause"] as const,
      registers: [this.registry],
      collect() {
        for (const [kind, causes] of Object.entries(source())) {
          for (const [cause, count] of Object.entries(causes)) this.set({ kind, cause }, count);
        }
      },
    });
  })();

  /** Where the relist counts come from (the controller's informers). */
  reportRelists(source: () => Record<string, Record<string, number>>): void {
    this.relistSource = source;
  }

  constructor(options: { defaultMetrics?: boolean } = {}) {
    if (options.defaultMetrics === true) collectDefaultMetrics({ register: this.registry });
  }
}
