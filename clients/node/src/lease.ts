// The lease a processOnce handler holds: its fencing token, whether it was
// found lost (lease.lost, lease.signal), ensure() (a synchronous Renew right
// before an effect that cannot be fenced) and the background renewal.
import type { DedupClient } from "./client";
import type { Id } from "./types";

/** The lease is gone (a renewal or ensure() answered LEASE_LOST): another consumer may hold the id. */
export class LeaseLostError extends Error {
  constructor(readonly token: bigint) {
    super(`lease lost (token ${token})`);
    this.name = "LeaseLostError";
  }
}

export interface LeaseSpec {
  namespace: string;
  id: Id;
  token: bigint;
  /** The lease asked for (undefined: the policy's), sent again with every renewal. */
  leaseMs: number | undefined;
  /** The lease's length as granted, in ms: how long a renewal keeps it. */
  durationMs: number;
  /** Renew this often (ms) in the background. */
  renewEveryMs: number;
}

/** What the handler sees. */
export class Lease {
  readonly namespace: string;
  readonly id: Id;
  /** Fencing token: pass it to downstream stores that can reject stale writers. */
  readonly token: bigint;
  private readonly controller = new AbortController();
  private expires: number;
  private timer: NodeJS.Timeout | undefined;
  private renewing: Promise<void> = Promise.resolve();
  private stopped = false;

  constructor(
    private readonly client: DedupClient,
    private readonly spec: LeaseSpec,
    expiresAt: number,
  ) {
    this.namespace = spec.namespace;
    this.id = spec.id;
    this.token = spec.token;
    this.expires = expiresAt;
  }

  /** Aborted (reason: a LeaseLostError) once the lease is found lost: stop work early. */
  get signal(): AbortSignal {
    return this.controller.signal;
  }

  /** True once a renewal or ensure() found the lease gone. */
  get lost(): boolean {
    return this.controller.signal.aborted;
  }

  /** When the lease ends by this process's clock (ms since the epoch), as of the last renewal. */
  get expiresAt(): number {
    return this.expires;
  }

  /**
   * Renews the lease now; resolves when it is ours for another full lease,
   * rejects with LeaseLostError if it is gone (or a DedupError if the sidecar
   * could not say). Call it right before an effect that cannot be fenced.
   */
  async ensure(): Promise<void> {
    if (!this.lost && Date.now() >= this.expires) this.markLost(); // its time ran out (e.g. a paused process)
    if (this.lost) throw new LeaseLostError(this.token);
    const started = performance.now();
    await this.renew(this.client.deadlineMs);
    // A renewal whose answer arrived a whole lease after it was asked (the process
    // was paused, the network held it) proves nothing about now: count it lost.
    if (!this.lost && performance.now() - started >= this.spec.durationMs) this.markLost();
    if (this.lost) throw new LeaseLostError(this.token);
  }

  /** Starts the background renewal (every renewEveryMs, until stop()). */
  start(): void {
    const every = this.spec.renewEveryMs;
    const tick = () => {
      const started = Date.now();
      // A renewal may take as long as the lease has left; a failed one is not a
      // lost lease: the next one may succeed.
      const deadlineMs = Math.max(100, every, this.expires - started);
      this.renewing = this.renew(deadlineMs).catch(() => undefined);
      void this.renewing.then(() => {
        if (!this.stopped && !this.lost) this.timer = setTimeout(tick, Math.max(0, every - (Date.now() - started)));
      });
    };
    this.timer = setTimeout(tick, every);
  }

  /** Stops the background renewal and waits for a renewal in flight. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.renewing;
  }

  private async renew(deadlineMs: number): Promise<void> {
    const sentAt = Date.now();
    const { namespace, id, token, leaseMs } = this.spec;
    const r = await this.client.renew({ namespace, id, token, leaseMs }, { deadlineMs });
    if (r.outcome === "RENEWED") this.expires = Math.max(this.expires, sentAt + this.spec.durationMs);
    else this.markLost();
  }

  /** Found lost: renewals stop, the signal aborts. */
  markLost(): void {
    clearTimeout(this.timer);
    if (!this.lost) this.controller.abort(new LeaseLostError(this.token));
  }
}
