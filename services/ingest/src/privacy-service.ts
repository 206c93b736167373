// PrivacyService: erasure orchestrated from ingest, the one place that sees the WAL and both sinks.
import { randomUUID } from "node:crypto";

import type * as grpc from "@grpc/grpc-js";

import { ConfigError, InvalidEventError } from "@sessiontrack/errors";
import type {
  ArchiveServiceEraseResponse,
  EraseReceipt,
  EraseTarget,
  IndexServiceEraseResponse,
  PrivacyServiceServer,
} from "@sessiontrack/proto";
import { toGrpcError, type Logger, type Principal, type TenantDirectory } from "@sessiontrack/runtime";
import type { WriteAheadLog } from "@sessiontrack/wal";

import type { Shipper } from "./shipper.js";
import { sinkCallError, unaryCall, type SinkClients } from "./shipper-sinks.js";

/** What ingest needs to serve PrivacyService. */
export interface PrivacyServiceDeps {
  wal: WriteAheadLog;
  tenants: TenantDirectory;
  /** Undefined when shipping is off: nothing left ingest, so there is nothing to erase downstream. */
  shipper: Shipper | undefined;
  sinks: SinkClients | undefined;
  /** How long to wait for the sinks to catch up with the WAL before giving up (--erase-wait-ms). */
  shipWaitMs: number;
  logger: Logger;
}

const MAX_ID_BYTES = 256;

/**
 * Erases a subject (every session of a user) or a session of the caller's tenant. First
 * every event already acknowledged is shipped (so events still in the WAL are erased too),
 * then the index removes its documents and the archive destroys the data keys and objects;
 * the receipt says what went.
 */
export class PrivacyService {
  constructor(private readonly deps: PrivacyServiceDeps) {}

  /** The grpc-js implementation for PrivacyServiceService. */
  implementation(): PrivacyServiceServer {
    return {
      eraseSubject: (call, callback) => {
        this.handle(call, callback, () => ({
          target: { $case: "userId", value: requireId(call.request.userId, "user_id") },
        }));
      },
      eraseSession: (call, callback) => {
        this.handle(call, callback, () => ({
          target: { $case: "sessionId", value: requireId(call.request.sessionId, "session_id") },
        }));
      },
    };
  }

  private handle(
    call: grpc.ServerUnaryCall<unknown, unknown>,
    callback: grpc.sendUnaryData<{ receipt: EraseReceipt }>,
    target: () => EraseTarget,
  ): void {
    let principal: Principal;
    let what: EraseTarget;
    try {
      const values = call.metadata.get("authorization");
      principal = this.deps.tenants.authorize(values.length > 1 ? null : values[0], ["admin"]);
      what = target();
    } catch (error) {
      callback(toGrpcError(error, this.deps.logger));
      return;
    }
    this.erase(principal, what).then(
      (receipt) => callback(null, { receipt }),
      (error: unknown) => callback(toGrpcError(error, this.deps.logger)),
    );
  }

  /** Ships everything acknowledged so far, then erases `target` from the index and the archive. */
  async erase(principal: Principal, target: EraseTarget): Promise<EraseReceipt> {
    const { shipper, sinks, wal, logger } = this.deps;
    if (shipper === undefined || sinks === undefined) {
      throw new ConfigError(
        "erasure needs the sinks: this ingest runs without --archive-url/--index-url, so nothing was shipped to erase",
      );
    }
    const tenant = principal.tenant;
    const walLsn = wal.lastDurableLsn();
    await shipper.waitForShipped(walLsn, this.deps.shipWaitMs);

    const receiptId = randomUUID();
    const log = logger.child({ receiptId, tenant, target: target.target?.$case, walLsn });
    let index: IndexServiceEraseResponse | undefined;
    if (sinks.index !== undefined) {
      const client = sinks.index;
      try {
        index = await unaryCall<IndexServiceEraseResponse>(
          (metadata, options, callback) => client.erase({ tenant, target }, metadata, options, callback),
          sinks.metadata(),
          sinks.timeoutMs,
        );
      } catch (error) {
        throw sinkCallError("index", "Erase", error);
      }
    }
    let archive: ArchiveServiceEraseResponse | undefined;
    if (sinks.archive !== undefined) {
      const client = sinks.archive;
      try {
        archive = await unaryCall<ArchiveServiceEraseResponse>(
          (metadata, options, callback) =>
            client.erase({ tenant, target, receiptId }, metadata, options, callback),
          sinks.metadata(),
          sinks.timeoutMs,
        );
      } catch (error) {
        const failure = sinkCallError("archive", "Erase", error);
        failure.message +=
          index === undefined
            ? ""
            : ` (the index already removed ${index.documentsRemoved} documents; erasure is idempotent, retry it)`;
        throw failure;
      }
    }
    const receipt: EraseReceipt = {
      receiptId,
      tenant,
      target,
      erasedAt: new Date(),
      sessions: [...new Set([...(index?.sessions ?? []), ...(archive?.sessions ?? [])])].sort(),
      indexDocumentsRemoved: index?.documentsRemoved ?? 0,
      dataKeysDestroyed: archive?.dataKeysDestroyed ?? [],
      archiveObjectsDeleted: archive?.objectsDeleted ?? 0,
      auditRecord: archive?.auditRecord ?? "",
      walLsn,
    };
    log.info(
      {
        sessions: receipt.sessions.length,
        indexDocumentsRemoved: receipt.indexDocumentsRemoved,
        dataKeysDestroyed: receipt.dataKeysDestroyed.length,
        archiveObjectsDeleted: receipt.archiveObjectsDeleted,
        auditRecord: receipt.auditRecord,
        keyId: principal.keyId,
      },
      "privacy: erased",
    );
    return receipt;
  }
}

function requireId(value: string, field: string): string {
  if (value.trim() === "") throw new InvalidEventError("is required", { field });
  if (Buffer.byteLength(value, "utf8") > MAX_ID_BYTES) {
    throw new InvalidEventError(`must be at most ${MAX_ID_BYTES} bytes`, { field });
  }
  return value;
}
