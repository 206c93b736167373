import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from "prom-client";

import type { WriteAheadLog } from "@sessiontrack/wal";

/** Ingest's Prometheus metrics, on a registry of their own. */
export class IngestMetrics {
  readonly registry = new Registry();
  readonly events = new Counter({
    name: "sessiontrack_ingest_events_total",
    help: "Events acknowledged, by result: accepted (newly stored) or duplicate (already stored, acked again).",
    labelNames: ["result"] as const,
    registers: [this.registry],
  });
  readonly rejectedBatches = new Counter({
    name: "sessiontrack_ingest_rejected_batches_total",
    help: "Batches refused, by gRPC status code name.",
    labelNames: ["code"] as const,
    registers: [this.registry],
  });
  readonly batches = new Counter({
    name: "sessiontrack_ingest_batches_total",
    help: "Batches received, by RPC.",
    labelNames: ["rpc"] as const,
    registers: [this.registry],
  });
  readonly ackLatency = new Histogram({
    name: "sessiontrack_ingest_ack_latency_seconds",
    help: "Time from a batch's arrival to its acknowledgement (after fdatasync).",
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [this.registry],
  });
  readonly openStreams = new Gauge({
    name: "sessiontrack_ingest_open_streams",
    help: "Open Stream calls.",
    registers: [this.registry],
  });
  readonly configWatchers = new Gauge({
    name: "sessiontrack_ingest_config_watchers",
    help: "Open WatchConfig calls.",
    registers: [this.registry],
  });

  constructor(wal: WriteAheadLog) {
    collectDefaultMetrics({ register: this.registry, prefix: "sessiontrack_ingest_" });
    const walGauge = (name: string, help: string, read: () => number): void => {
      new Gauge({
        name,
        help,
        registers: [this.registry],
        collect() {
          this.set(read());
        },
      });
    };
    walGauge("sessiontrack_wal_segments", "Retained WAL segment files.", () => wal.stats().segments);
    walGauge(
      "sessiontrack_wal_retained_bytes",
      "Bytes in retained WAL segments.",
      () => wal.stats().retainedBytes,
    );
    walGauge("sessiontrack_wal_last_lsn", "Last durable log sequence number.", () => wal.stats().lastLsn);
    walGauge(
      "sessiontrack_wal_syncs",
      "fdatasync calls since start (group commits).",
      () => wal.stats().syncs,
    );
    walGauge("sessiontrack_wal_records", "Records made durable since start.", () => wal.stats().records);
    walGauge("sessiontrack_wal_failed", "1 when the WAL has failed closed and refuses appends.", () =>
      wal.stats().failed === null ? 0 : 1,
    );
  }
}
