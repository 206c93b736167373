import type { Logger } from "@sessiontrack/runtime";

import type { KubeClient } from "./client.js";
import { isStatus, type KubeObject } from "./types.js";

/** Options for {@link LeaderElector}. */
export interface LeaderElectionOptions {
  namespace: string;
  leaseName: string;
  /** This instance's name, written as holderIdentity. */
  identity: string;
  /** How long a lease stays valid without renewal; a follower takes over after it. */
  leaseDurationMs: number;
  /** How often the leader renews and a follower retries. */
  retryPeriodMs: number;
  /** A leader that could not renew for this long steps down (must be < leaseDuration). */
  renewDeadlineMs: number;
}

interface LeaseSpec {
  holderIdentity?: string;
  leaseDurationSeconds?: number;
  acquireTime?: string;
  renewTime?: string;
  leaseTransitions?: number;
}

type Lease = KubeObject & { spec?: LeaseSpec };

const microTime = (ms: number): string => new Date(ms).toISOString().replace(/\.(\d{3})Z$/, ".$1000Z");

/**
 * Lease-based leader election (coordination.k8s.io/v1), as client-go does it: the holder
 * renews every retry period; others take over once they have seen the same record
 * unchanged for a whole lease duration (local clock only, so clock skew does not matter).
 */
export class LeaderElector {
  private leading = false;
  private timer: NodeJS.Timeout | undefined;
  private running = false;
  private lastRenewOk = 0;
  private observedRecord = "";
  private observedAt = 0;
  private readonly listeners = new Set<(leading: boolean) => void>();

  constructor(
    private readonly client: KubeClient,
    private readonly options: LeaderElectionOptions,
    private readonly logger: Logger,
  ) {}

  get isLeader(): boolean {
    return this.leading;
  }

  /** Calls `listener(true)` on gaining and `listener(false)` on losing the lease. */
  onChange(listener: (leading: boolean) => void): void {
    this.listeners.add(listener);
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    void this.tick();
  }

  /**
   * Stops campaigning; a leader releases the lease so a follower takes over at once
   * (unless `release` is false: then followers wait for it to expire, as after a crash).
   */
  async stop(options: { release?: boolean } = {}): Promise<void> {
    this.running = false;
    clearTimeout(this.timer);
    if (this.leading) {
      this.setLeading(false);
      if (options.release === false) return;
      try {
        const lease = await this.read();
        if (lease?.spec?.holderIdentity === this.options.identity) {
          await this.client.replace(
            {
              ...lease,
              spec: {
                ...lease.spec,
                holderIdentity: "",
                leaseDurationSeconds: 1,
                renewTime: microTime(Date.now()),
              },
            },
            { lease: true },
          );
        }
      } catch (error) {
        this.logger.warn({ err: error }, "leader election: releasing the lease failed");
      }
    }
  }

  private setLeading(leading: boolean): void {
    if (this.leading === leading) return;
    this.leading = leading;
    this.logger.info(
      { identity: this.options.identity, leading },
      leading ? "became leader" : "lost leadership",
    );
    for (const listener of this.listeners) listener(leading);
  }

  private read(): Promise<Lease | undefined> {
    return this.client.get<Lease>({
      apiVersion: "coordination.k8s.io/v1",
      kind: "Lease",
      namespace: this.options.namespace,
      name: this.options.leaseName,
    });
  }

  private async tick(): Promise<void> {
    try {
      const ok = await this.tryAcquireOrRenew();
      if (ok) this.lastRenewOk = Date.now();
      else if (this.leading) this.setLeading(false);
    } catch (error) {
      this.logger.warn({ err: error }, "leader election: lease request failed");
      if (this.leading && Date.now() - this.lastRenewOk > this.options.renewDeadlineMs)
        this.setLeading(false);
    }
    if (!this.running) return;
    this.timer = setTimeout(() => void this.tick(), this.options.retryPeriodMs);
    this.timer.unref();
  }

  private async tryAcquireOrRenew(): Promise<boolean> {
    const { identity, namespace, leaseName, leaseDurationMs } = this.options;
    const now = Date.now();
    const durationSeconds = Math.max(1, Math.ceil(leaseDurationMs / 1000));
    const lease = await this.read();
    if (lease === undefined) {
      try {
        await this.client.create(
          {
            apiVersion: "coordination.k8s.io/v1",
            kind: "Lease",
            metadata: { name: leaseName, namespace },
            spec: {
              holderIdentity: identity,
              leaseDurationSeconds: durationSeconds,
              acquireTime: microTime(now),
              renewTime: microTime(now),
              leaseTransitions: 0,
            },
          },
          { lease: true },
        );
      } catch (error) {
        if (isStatus(error, 409)) return false;
        throw error;
      }
      this.setLeading(true);
      return true;
    }
    const spec = lease.spec ?? {};
    const record = `${spec.holderIdentity ?? ""}|${spec.renewTime ?? ""}|${lease.metadata.resourceVersion ?? ""}`;
    if (record !== this.observedRecord) {
      this.observedRecord = record;
      this.observedAt = now;
    }
    const holder = spec.holderIdentity ?? "";
    const heldByMe = holder === identity;
    const expired =
      holder === "" || now - this.observedAt > (spec.leaseDurationSeconds ?? durationSeconds) * 1000;
    if (!heldByMe && !expired) return false;
    const next: Lease = {
      ...lease,
      spec: {
        holderIdentity: identity,
        leaseDurationSeconds: durationSeconds,
        acquireTime: heldByMe ? (spec.acquireTime ?? microTime(now)) : microTime(now),
        renewTime: microTime(now),
        leaseTransitions: (spec.leaseTransitions ?? 0) + (heldByMe ? 0 : 1),
      },
    };
    try {
      const written = await this.client.replace<Lease>(next, { lease: true });
      this.observedRecord = `${identity}|${written.spec?.renewTime ?? ""}|${written.metadata.resourceVersion ?? ""}`;
      this.observedAt = now;
    } catch (error) {
      // Someone else renewed or took it between our read and write.
      if (isStatus(error, 409)) return false;
      throw error;
    }
    if (!heldByMe)
      this.logger.info({ identity, previous: holder || "(none)" }, "leader election: acquired the lease");
    this.setLeading(true);
    return true;
  }
}
