import type * as grpc from "@grpc/grpc-js";
import { inCanaryCohort } from "@sessiontrack/cohort";
import type { CanaryRoute, CaptureConfig } from "@sessiontrack/proto";
import type { DeliveryPipeline } from "./delivery.js";

/** What the routes need from the client: channels and pipelines made the client's way. */
export interface LaneFactory {
  /** A gRPC channel to `target` with the client's credentials and options. */
  channel(target: string): grpc.Client;
  /** A pipeline on `channel` spooling in the canary lane's own spool directory. */
  canaryLane(channel: grpc.Client, target: string): DeliveryPipeline;
  /** Whether the canary lane's spool directory holds events from an earlier process. */
  canarySpoolHasData(): boolean;
  /** Reports trouble (the lane's spool cannot be opened); never throws into the bot. */
  error(err: Error): void;
}

/**
 * Where a session's events go: the stable ingest or, while the operator runs a version
 * canary of ingest, the canary for the sticky cohort `inCanaryCohort(sessionId, weight)`.
 * The route comes with the capture config (`CaptureConfig.canary`). The canary lane is a
 * second pipeline with its own stream and spool. A session's lane is decided once, at its
 * first event (the client keeps it): sessions already running when a route appears stay on
 * stable, and sessions on the lane stay on it when the route is withdrawn (rollback or
 * promotion) — the lane is then pointed at the stable ingest and delivers there, after what
 * it still holds, so each session's events keep their order and nothing the canary could
 * not acknowledge is stranded. Ingest collapses the repeats a move can cause on `event_id`.
 * (What the canary did acknowledge is its WAL's to ship; the operator drains it.)
 */
export class IngestRoutes {
  private lane: DeliveryPipeline | undefined;
  private laneChannel: grpc.Client | undefined;
  private route: CanaryRoute | undefined;

  constructor(
    readonly stable: DeliveryPipeline,
    private readonly stableChannel: grpc.Client,
    private readonly factory: LaneFactory,
  ) {
    // Events an earlier process left in the canary spool go to the stable ingest until a route says otherwise.
    try {
      if (factory.canarySpoolHasData()) this.openLane(stableChannel, stable.target).kick();
    } catch (err) {
      factory.error(
        new Error(`canary spool left by an earlier process not replayed: ${String(err)}`, { cause: err }),
      );
    }
  }

  /** Every pipeline (stable first), for flush, stats and close. */
  get pipelines(): readonly DeliveryPipeline[] {
    return this.lane === undefined ? [this.stable] : [this.stable, this.lane];
  }

  /** True when the session's events go to the canary under the current route. */
  toCanary(sessionId: string): boolean {
    return this.route !== undefined && inCanaryCohort(sessionId, this.route.weightPercent);
  }

  /** The pipeline for a session whose lane was decided by {@link toCanary}. */
  pipeline(toCanary: boolean): DeliveryPipeline {
    return toCanary && this.lane !== undefined ? this.lane : this.stable;
  }

  /** Follows a new capture config: opens, moves or withdraws the ingest canary route. */
  apply(config: CaptureConfig): void {
    const wanted = ingestRoute(config);
    const current = this.route;
    if (
      wanted?.address === current?.address &&
      wanted?.weightPercent === current?.weightPercent &&
      wanted?.revision === current?.revision
    ) {
      return;
    }
    this.route = wanted;
    try {
      if (wanted === undefined) {
        this.pointLane(this.stableChannel, this.stable.target);
      } else if (this.lane === undefined || this.lane.target !== wanted.address) {
        this.pointLane(this.factory.channel(wanted.address), wanted.address);
      }
    } catch (err) {
      // No lane, no canary: the cohort stays on the stable ingest rather than losing events.
      this.route = undefined;
      this.factory.error(
        new Error(`ingest canary route to ${wanted?.address ?? "stable"} not followed: ${String(err)}`, {
          cause: err,
        }),
      );
    }
  }

  /** Stops every pipeline (what they hold goes to their spools) and closes the canary channel. */
  stop(): void {
    this.stable.stop();
    this.lane?.stop();
    if (this.laneChannel !== undefined && this.laneChannel !== this.stableChannel) this.laneChannel.close();
    this.laneChannel = undefined;
  }

  private openLane(channel: grpc.Client, target: string): DeliveryPipeline {
    try {
      this.lane = this.factory.canaryLane(channel, target);
    } catch (err) {
      if (channel !== this.stableChannel) channel.close();
      throw err;
    }
    this.laneChannel = channel;
    return this.lane;
  }

  private pointLane(channel: grpc.Client, target: string): void {
    if (this.lane === undefined) {
      if (channel === this.stableChannel) return;
      this.openLane(channel, target);
      return;
    }
    const previous = this.laneChannel;
    this.laneChannel = channel;
    this.lane.retarget(channel, target);
    if (previous !== undefined && previous !== this.stableChannel && previous !== channel) previous.close();
  }
}

/** The config's canary route when it is for ingest, has an address and a weight above 0. */
function ingestRoute(config: CaptureConfig): CanaryRoute | undefined {
  const route = config.canary;
  if (route === undefined || route.component !== "ingest") return undefined;
  if (route.address === "" || !(route.weightPercent > 0)) return undefined;
  return route;
}
