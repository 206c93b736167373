import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from "prom-client";

/** The index service's Prometheus metrics, on a registry of their own. */
export class IndexMetrics {
  readonly registry = new Registry();
  readonly documentsIndexed = new Counter({
    name: "sessiontrack_index_documents_indexed_total",
    help: "Documents written to the index (a replayed event counts again; it overwrites).",
    registers: [this.registry],
  });
  readonly documentsErased = new Counter({
    name: "sessiontrack_index_documents_erased_total",
    help: "Documents removed by Erase.",
    registers: [this.registry],
  });
  readonly searchLatency = new Histogram({
    name: "sessiontrack_index_search_duration_seconds",
    help: "Time to answer a Search, from arrival to response.",
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [this.registry],
  });
  readonly requests = new Counter({
    name: "sessiontrack_index_requests_total",
    help: "Calls answered, by RPC and gRPC status code name.",
    labelNames: ["rpc", "code"] as const,
    registers: [this.registry],
  });
  readonly backendErrors = new Counter({
    name: "sessiontrack_index_backend_errors_total",
    help: "Backend operations that failed, by backend and operation.",
    labelNames: ["backend", "operation"] as const,
    registers: [this.registry],
  });
  readonly meiliPendingTasks = new Gauge({
    name: "sessiontrack_index_meili_pending_tasks",
    help: "Meilisearch tasks this service enqueued and is still waiting on.",
    registers: [this.registry],
  });

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: "sessiontrack_index_" });
  }
}
