import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from "prom-client";

/** The archive's Prometheus metrics, on a registry of their own. */
export class ArchiveMetrics {
  readonly registry = new Registry();
  readonly objectsWritten = new Counter({
    name: "sessiontrack_archive_objects_written_total",
    help: "Data objects written (one per tenant per WriteBatch, plus rewrites during erasure).",
    registers: [this.registry],
  });
  readonly events = new Counter({
    name: "sessiontrack_archive_events_total",
    help: "Events received by WriteBatch, by result: written or duplicate (already archived).",
    labelNames: ["result"] as const,
    registers: [this.registry],
  });
  readonly bytes = new Counter({
    name: "sessiontrack_archive_bytes_total",
    help: "Event bytes written: raw (encoded StoredEvents before compression) and stored (data object bytes).",
    labelNames: ["kind"] as const,
    registers: [this.registry],
  });
  readonly compressionRatio = new Gauge({
    name: "sessiontrack_archive_compression_ratio",
    help: "Raw event bytes / stored object bytes, over everything written since start.",
    registers: [this.registry],
    collect: () => undefined,
  });
  readonly errors = new Counter({
    name: "sessiontrack_archive_errors_total",
    help: "Calls that failed, by RPC and error kind (the domain error's name).",
    labelNames: ["rpc", "kind"] as const,
    registers: [this.registry],
  });
  readonly readFailures = new Counter({
    name: "sessiontrack_archive_read_failures_total",
    help: "Objects or records that failed a check on read (checksum, authentication, missing), by reason.",
    labelNames: ["reason"] as const,
    registers: [this.registry],
  });
  readonly verifyProblems = new Counter({
    name: "sessiontrack_archive_verify_problems_total",
    help: "Problems reported by Verify.",
    registers: [this.registry],
  });
  readonly storeLatency = new Histogram({
    name: "sessiontrack_archive_store_latency_seconds",
    help: "Object store call latency, by operation.",
    labelNames: ["op"] as const,
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [this.registry],
  });
  readonly erasures = new Counter({
    name: "sessiontrack_archive_erasures_total",
    help: "Erasures completed, by target kind.",
    labelNames: ["target"] as const,
    registers: [this.registry],
  });
  readonly tiering = new Counter({
    name: "sessiontrack_archive_tiering_total",
    help: "Objects moved to the cold tier or expired by the local store's sweep.",
    labelNames: ["action"] as const,
    registers: [this.registry],
  });

  private rawBytes = 0;
  private storedBytes = 0;

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: "sessiontrack_archive_" });
  }

  /** Counts a written data object and updates the compression ratio. */
  recordObject(rawBytes: number, storedBytes: number): void {
    this.objectsWritten.inc();
    this.bytes.inc({ kind: "raw" }, rawBytes);
    this.bytes.inc({ kind: "stored" }, storedBytes);
    this.rawBytes += rawBytes;
    this.storedBytes += storedBytes;
    if (this.storedBytes > 0) this.compressionRatio.set(this.rawBytes / this.storedBytes);
  }
}
