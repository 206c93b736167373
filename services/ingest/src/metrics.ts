import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from "prom-client";

import type { WriteAheadLog } from "@sessiontrack/wal";

import { CaptureOverheadReports } from "./capture-overhead.js";

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
  readonly batchesInFlight = new Gauge({
    name: "sessiontrack_ingest_batches_in_flight",
    help: "Batches (Stream and Append) accepted and not acknowledged yet: appending to the WAL or waiting on fsync.",
    registers: [this.registry],
  });
  readonly draining = new Gauge({
    name: "sessiontrack_ingest_draining",
    help: "1 while this replica drains before a scale-down, once its intake is closed and every batch accepted before was answered (refuses new streams and batches, ships its WAL).",
    registers: [this.registry],
  });
  readonly drainRefusals = new Counter({
    name: "sessiontrack_ingest_drain_refusals_total",
    help: "Calls and batches refused with UNAVAILABLE because the replica is draining, by RPC (not counted as rejected batches).",
    labelNames: ["rpc"] as const,
    registers: [this.registry],
  });
  readonly redactions = new Counter({
    name: "sessiontrack_ingest_redactions_total",
    help: "Values redacted in stored events, by rule and action (mask, hash, drop).",
    labelNames: ["rule", "action"] as const,
    registers: [this.registry],
  });
  readonly redactedEvents = new Counter({
    name: "sessiontrack_ingest_redacted_events_total",
    help: "Stored events that redaction changed.",
    registers: [this.registry],
  });
  readonly configWatchers = new Gauge({
    name: "sessiontrack_ingest_config_watchers",
    help: "Open WatchConfig calls.",
    registers: [this.registry],
  });
  /** The bots' capture_overhead_pct reports (sessiontrack_bot_capture_overhead_pct). */
  readonly captureOverhead = new CaptureOverheadReports(this.registry);

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

/** The shipper's Prometheus metrics, labelled by sink, on ingest's registry. */
export class ShipperMetrics {
  readonly shippedEvents: Counter<"sink">;
  readonly shippedBatches: Counter<"sink">;
  readonly errors: Counter<"sink" | "code">;
  readonly lastSuccess: Gauge<"sink">;
  readonly stalled: Gauge<"sink">;
  readonly batchSeconds: Histogram<"sink">;
  readonly canaryEvents: Counter<"sink">;

  constructor(registry: Registry, wal: WriteAheadLog, sinks: readonly string[]) {
    const registers = [registry];
    this.shippedEvents = new Counter({
      name: "sessiontrack_shipper_events_total",
      help: "Events a sink acknowledged (re-sends after a failure count again).",
      labelNames: ["sink"] as const,
      registers,
    });
    this.shippedBatches = new Counter({
      name: "sessiontrack_shipper_batches_total",
      help: "Batches a sink acknowledged.",
      labelNames: ["sink"] as const,
      registers,
    });
    this.errors = new Counter({
      name: "sessiontrack_shipper_errors_total",
      help: "Failed deliveries, by sink and gRPC status code name (LOCAL: failed inside ingest).",
      labelNames: ["sink", "code"] as const,
      registers,
    });
    this.canaryEvents = new Counter({
      name: "sessiontrack_shipper_canary_events_total",
      help: "Events of the canary cohort a sink's canary acknowledged (counted also in sessiontrack_shipper_events_total).",
      labelNames: ["sink"] as const,
      registers,
    });
    this.lastSuccess = new Gauge({
      name: "sessiontrack_shipper_last_success_timestamp_seconds",
      help: "Unix time of the sink's last acknowledged batch.",
      labelNames: ["sink"] as const,
      registers,
    });
    this.stalled = new Gauge({
      name: "sessiontrack_shipper_stalled",
      help: "1 while the sink rejects a batch permanently (held in the WAL and retried slowly, never skipped).",
      labelNames: ["sink"] as const,
      registers,
    });
    this.batchSeconds = new Histogram({
      name: "sessiontrack_shipper_batch_seconds",
      help: "Time to read, send and confirm one batch.",
      labelNames: ["sink"] as const,
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10],
      registers,
    });
    const lag = (sink: string): number => Math.max(0, wal.lastDurableLsn() - wal.getCursor(sink));
    new Gauge({
      name: "sessiontrack_shipper_lag_records",
      help: "WAL records not yet confirmed by the sink (last durable lsn - sink cursor).",
      labelNames: ["sink"] as const,
      registers,
      collect() {
        for (const sink of sinks) this.set({ sink }, lag(sink));
      },
    });
    new Gauge({
      name: "sessiontrack_shipper_backlog_bytes",
      help: "WAL bytes not yet confirmed by the sink (lag records x mean retained record size; an estimate).",
      labelNames: ["sink"] as const,
      registers,
      collect() {
        const { retainedBytes, keys } = wal.stats();
        for (const sink of sinks) {
          const records = lag(sink);
          this.set(
            { sink },
            keys === 0 ? 0 : Math.min(retainedBytes, Math.round((records * retainedBytes) / keys)),
          );
        }
      },
    });
    new Gauge({
      name: "sessiontrack_shipper_cursor",
      help: "Last WAL lsn the sink confirmed.",
      labelNames: ["sink"] as const,
      registers,
      collect() {
        for (const sink of sinks) this.set({ sink }, wal.getCursor(sink));
      },
    });
    for (const sink of sinks) this.stalled.set({ sink }, 0);
  }
}
