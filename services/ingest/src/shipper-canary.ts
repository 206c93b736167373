// Version canaries of index and archive: the canary cohort's events go to the canary's
// address, the rest to the stable sink, both inside the one delivery the cursor waits for.
import { inCanaryCohort } from "@sessiontrack/cohort";
import { BinaryReader, WireType, type CanaryRoute } from "@sessiontrack/proto";

import {
  callErrorDetails,
  grpcCode,
  type ClosableSinkTransport,
  type SinkName,
  type SinkTransport,
} from "./shipper-sinks.js";

/** StoredEvent.session_id. */
const SESSION_ID_FIELD = 3;

/**
 * The session id of an encoded StoredEvent, read without decoding the event: the header
 * fields come first (stored-event.ts), so this stops long before the event bytes.
 */
export function storedSessionId(record: Uint8Array): string {
  const reader = new BinaryReader(record);
  while (reader.pos < reader.len) {
    const [field, wireType] = reader.tag();
    if (field === SESSION_ID_FIELD && wireType === WireType.LengthDelimited) return reader.string();
    reader.skip(wireType, field);
  }
  return "";
}

/** Records split by the canary cohort, each part in WAL order. */
export function splitByCanaryCohort<R extends { data: Uint8Array }>(
  records: readonly R[],
  weightPercent: number,
): { stable: R[]; canary: R[] } {
  const stable: R[] = [];
  const canary: R[] = [];
  for (const record of records) {
    (inCanaryCohort(storedSessionId(record.data), weightPercent) ? canary : stable).push(record);
  }
  return { stable, canary };
}

/** Where a sink's canary cohort goes right now. */
export interface CanaryTarget {
  address: string;
  weightPercent: number;
  transport: SinkTransport;
}

/**
 * The canary route in force (read from the capture config at every batch) and one client
 * per routed sink, opened when a route names a new address and closed when it goes away.
 * Each sink's loop asks only about its own sink, between deliveries, so a client is never
 * closed under a call of its own loop.
 */
export class CanarySinkRoutes {
  private readonly open = new Map<SinkName, { address: string; transport: ClosableSinkTransport }>();

  constructor(
    private readonly route: () => CanaryRoute | undefined,
    private readonly connect: (sink: SinkName, address: string) => ClosableSinkTransport,
  ) {}

  /** The canary for `sink`'s next batch, or undefined to send the whole batch to the stable sink. */
  targetFor(sink: SinkName): CanaryTarget | undefined {
    const route = this.route();
    const current = this.open.get(sink);
    if (route === undefined || route.component !== sink || !(route.weightPercent > 0)) {
      if (current !== undefined) {
        current.transport.close();
        this.open.delete(sink);
      }
      return undefined;
    }
    let transport = current?.transport;
    if (transport === undefined || current?.address !== route.address) {
      current?.transport.close();
      transport = this.connect(sink, route.address);
      this.open.set(sink, { address: route.address, transport });
    }
    return { address: route.address, weightPercent: route.weightPercent, transport };
  }

  /** Closes every canary client. */
  close(): void {
    for (const { transport } of this.open.values()) transport.close();
    this.open.clear();
  }
}

/** A canary's failed delivery, naming the canary; keeps the gRPC code that decides the retry. */
export class CanaryDeliveryError extends Error {
  readonly code: number | undefined;

  constructor(address: string, cause: unknown) {
    super(`canary at ${address}: ${callErrorDetails(cause)}`, { cause });
    this.name = "CanaryDeliveryError";
    this.code = grpcCode(cause);
  }
}
