import { readFileSync } from "node:fs";

import { parse as parseYaml } from "yaml";

import { startServiceEndpoints, TenantDirectory, type Logger } from "@sessiontrack/runtime";

import { Archive } from "./archive.js";
import { compactFragmentedSessions, type CompactionResult } from "./compaction.js";
import { ArchiveService, RawArchiveServiceDefinition } from "./archive-service.js";
import type { ArchiveConfig } from "./config.js";
import { KeyEncryptionKeyDirectory } from "./keys.js";
import { ArchiveMetrics } from "./metrics.js";
import { LocalObjectStore, type ObjectInfo, type ObjectStore } from "./object-store.js";
import { RetentionPolicies } from "./policy.js";
import { S3ObjectStore } from "./s3-store.js";
import { sweepLocalStore, type SweepResult } from "./tiering.js";

/** A running archive service. */
export interface ArchiveServer {
  /** gRPC `host:port` actually bound. */
  address: string;
  /** Metrics `host:port` actually bound. */
  metricsAddress: string;
  /** The storage logic, for in-process use (tests, tools). */
  archive: Archive;
  store: ObjectStore;
  /** Runs the local store's tiering/retention sweep now (no-op result on S3, where lifecycle rules do it). */
  sweep(): Promise<SweepResult>;
  /** Compacts sessions written in several batches that have been idle for --compact-idle-seconds. */
  compact(): Promise<CompactionResult>;
  /** Folds every batch manifest into the per-session records now (else done every 32 batches / 5 s). */
  fold(): Promise<void>;
  close(): Promise<void>;
}

/** Options that are not settings: what tests inject. */
export interface ArchiveServerOptions {
  /** Milliseconds since the epoch; defaults to Date.now. */
  clock?: () => number;
}

/** Tenant names of a tenants file (TenantDirectory validated the file already). */
function tenantNames(path: string): string[] {
  const document = parseYaml(readFileSync(path, "utf8")) as { tenants?: Array<{ name?: unknown }> };
  return (document.tenants ?? []).map((tenant) => String(tenant.name));
}

/** Opens the configured object store (bucket lifecycle rules for every tenant on S3). */
export function openObjectStore(
  config: ArchiveConfig,
  policies: RetentionPolicies,
  tenants: readonly string[],
): ObjectStore {
  if (config.store === "local") return new LocalObjectStore(config.dataDir!);
  const names = new Set([...tenants, ...policies.overrides.keys()]);
  return new S3ObjectStore(
    {
      endpoint: config.s3Endpoint!,
      bucket: config.s3Bucket,
      region: config.s3Region,
      accessKey: config.s3AccessKey!,
      secretKey: config.s3SecretKey!,
    },
    [...names].sort().map((tenant) => ({ tenant, ...policies.forTenant(tenant) })),
    config.s3ColdStorageClass,
  );
}

/** Times every store call into the store-latency histogram. */
function meteredStore(store: ObjectStore, metrics: ArchiveMetrics): ObjectStore {
  const time = async <T>(op: string, work: () => Promise<T>): Promise<T> => {
    const end = metrics.storeLatency.startTimer({ op });
    try {
      return await work();
    } finally {
      end();
    }
  };
  return {
    kind: store.kind,
    location: store.location,
    put: (key: string, data: Buffer) => time("put", () => store.put(key, data)),
    putMany: (entries: ReadonlyArray<readonly [string, Buffer]>) =>
      time("put_many", () => store.putMany(entries)),
    get: (key: string) => time("get", () => store.get(key)),
    delete: (key: string) => time("delete", () => store.delete(key)),
    list: (prefix: string): Promise<ObjectInfo[]> => time("list", () => store.list(prefix)),
    close: () => store.close(),
  };
}

/**
 * Starts the archive: loads tenants, retention policies and the object store (failing
 * fast on bad files), then serves gRPC and metrics; on the local store a periodic sweep
 * enforces tiering and retention.
 */
export async function startArchiveServer(
  config: ArchiveConfig,
  logger: Logger,
  options: ArchiveServerOptions = {},
): Promise<ArchiveServer> {
  const clock = options.clock ?? Date.now;
  const tenants = TenantDirectory.load(config.tenantsFile);
  const policies = RetentionPolicies.load(config.policyFile, {
    coldAfterDays: config.coldAfterDays,
    retentionDays: config.retentionDays,
  });
  const keks = new KeyEncryptionKeyDirectory(config.kekDir);
  const metrics = new ArchiveMetrics();
  const rawStore = openObjectStore(config, policies, tenantNames(config.tenantsFile));
  const store = meteredStore(rawStore, metrics);
  const archive = new Archive({
    store,
    keks,
    policies,
    metrics,
    logger: logger.child({ component: "archive" }),
    clock,
  });
  const service = new ArchiveService({
    archive,
    tenants,
    keks,
    metrics,
    logger: logger.child({ component: "archive-service" }),
    clock,
  });
  const sweep = async (): Promise<SweepResult> => {
    if (!(rawStore instanceof LocalObjectStore)) return { movedToCold: 0, expired: 0 };
    return sweepLocalStore(
      archive,
      rawStore,
      policies,
      metrics,
      logger.child({ component: "tiering" }),
      clock(),
    );
  };
  const compact = (): Promise<CompactionResult> =>
    compactFragmentedSessions(archive, keks, config.compactIdleSeconds * 1000);
  let draining = false;
  let endpoints;
  try {
    endpoints = await startServiceEndpoints({
      listen: config.listen,
      metricsListen: config.metricsListen,
      services: [
        {
          name: "sessiontrack.v1.ArchiveService",
          definition: RawArchiveServiceDefinition,
          implementation: service.implementation(),
        },
      ],
      registry: metrics.registry,
      isReady: () => !draining,
      maxReceiveMessageBytes: 64 * 1024 * 1024,
      logger,
    });
  } catch (error) {
    await rawStore.close();
    throw error;
  }
  let sweeping: Promise<unknown> = Promise.resolve();
  const timer =
    rawStore instanceof LocalObjectStore
      ? setInterval(() => {
          sweeping = sweep().catch((error: unknown) => logger.error({ err: error }, "tiering sweep failed"));
        }, config.sweepIntervalSeconds * 1000)
      : undefined;
  timer?.unref();
  let compacting: Promise<unknown> = Promise.resolve();
  const compactTimer =
    config.compactIdleSeconds > 0
      ? setInterval(
          () => {
            compacting = compact()
              .then((result) => {
                if (result.sessions > 0) logger.info(result, "compacted sessions");
              })
              .catch((error: unknown) => logger.error({ err: error }, "compaction failed"));
          },
          Math.min(60, config.compactIdleSeconds) * 1000,
        )
      : undefined;
  compactTimer?.unref();
  logger.info(
    { store: rawStore.kind, location: rawStore.location, tenants: tenants.size },
    "archive started",
  );
  const { grpc, http } = endpoints;
  let closing: Promise<void> | undefined;
  return {
    address: grpc.address,
    metricsAddress: http.address,
    archive,
    store,
    sweep,
    compact,
    fold: () => archive.foldAll(),
    close() {
      closing ??= (async () => {
        draining = true;
        if (timer !== undefined) clearInterval(timer);
        if (compactTimer !== undefined) clearInterval(compactTimer);
        await grpc.shutdown(config.shutdownGraceMs);
        await sweeping;
        await compacting;
        await archive.foldAll().catch((error: unknown) => {
          logger.warn({ err: error }, "folding manifests at shutdown failed; the next start folds them");
        });
        await rawStore.close();
        await http.close();
        logger.info("archive stopped");
      })();
      return closing;
    },
  };
}
