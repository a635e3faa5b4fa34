// The effectively-once helper: claim -> handler(lease) -> commit, release on
// handler error, renew the lease in the background while the handler runs.
import type { DedupClient } from "./client";
import { DedupError } from "./status";
import type { Id } from "./types";

export interface Lease {
  namespace: string;
  id: Id;
  /** Fencing token: pass it to downstream stores that can reject stale writers. */
  token: bigint;
  /** Aborted when the lease is lost (a renew answered LEASE_LOST): stop work early. */
  signal: AbortSignal;
}

export interface OnceOptions<T> {
  namespace: string;
  id: Id;
  fingerprint?: Uint8Array | string;
  /** Lease to ask for (default: the namespace policy's). Renewed every leaseMs/3. */
  leaseMs?: number;
  /** Window to remember the id for after commit (default: the policy's). */
  windowMs?: number;
  /**
   * The result to store with the commit, returned to later duplicates
   * (default: the handler's value when it is a string or bytes, else none).
   */
  storeResult?: (value: T) => Uint8Array | string | undefined;
}

export type OnceOutcome<T> =
  /** The handler ran and its work was committed. */
  | { status: "PROCESSED"; value: T; token: bigint }
  /** Already processed: ack without processing; `result` is the stored result, if any. */
  | { status: "DUPLICATE"; result: Buffer | undefined }
  /** Another consumer holds the lease: do not ack; redeliver after retryAfterMs. */
  | { status: "IN_PROGRESS"; retryAfterMs: number }
  /** The id was seen with a different fingerprint (a bug upstream). */
  | { status: "CONFLICT" };

/** The lease was lost before commit: the work may be done again by the new holder. */
export class LeaseLostError extends Error {
  constructor(readonly token: bigint) {
    super(`lease lost before commit (token ${token})`);
    this.name = "LeaseLostError";
  }
}

function defaultResult(value: unknown): Uint8Array | string | undefined {
  return typeof value === "string" || value instanceof Uint8Array ? value : undefined;
}

/**
 * Runs `handler` at most once to completion per (namespace, id) within the window.
 * If the handler throws, the lease is released (so a redelivery can proceed at once) and the error is rethrown.
 */
export async function processOnce<T>(
  client: DedupClient,
  options: OnceOptions<T>,
  handler: (lease: Lease) => Promise<T>,
): Promise<OnceOutcome<T>> {
  const { namespace, id } = options;
  const claim = await client.claim({ namespace, id, fingerprint: options.fingerprint, leaseMs: options.leaseMs });
  switch (claim.outcome) {
    case "DUPLICATE":
      return { status: "DUPLICATE", result: claim.result };
    case "IN_PROGRESS":
      return { status: "IN_PROGRESS", retryAfterMs: claim.retryAfterMs };
    case "CONFLICT":
      return { status: "CONFLICT" };
  }
  const token = claim.token;
  const lost = new AbortController();
  const leaseMs = options.leaseMs ?? Math.max(300, claim.leaseExpiresUnixMs - Date.now());
  const heartbeat = startHeartbeat(client, { namespace, id, token, leaseMs: options.leaseMs }, leaseMs / 3, lost);
  let value: T;
  try {
    value = await handler({ namespace, id, token, signal: lost.signal });
  } catch (err) {
    await heartbeat.stop();
    await client.release({ namespace, id, token }).catch(() => undefined); // the lease expires anyway
    throw err;
  }
  await heartbeat.stop();
  const result = (options.storeResult ?? defaultResult)(value);
  const commit = await client.commit({ namespace, id, token, result, windowMs: options.windowMs });
  if (commit.outcome !== "COMMITTED") throw new LeaseLostError(token);
  return { status: "PROCESSED", value, token };
}

function startHeartbeat(
  client: DedupClient,
  item: { namespace: string; id: Id; token: bigint; leaseMs?: number },
  everyMs: number,
  lost: AbortController,
): { stop: () => Promise<void> } {
  let inflight: Promise<void> = Promise.resolve();
  const timer = setInterval(() => {
    inflight = client
      .renew(item, { deadlineMs: Math.max(100, everyMs) })
      .then((r) => {
        if (r.outcome === "LEASE_LOST") lost.abort(new LeaseLostError(item.token));
      })
      .catch((err: unknown) => {
        // A failed heartbeat is not a lost lease: the next one may succeed.
        if (!(err instanceof DedupError)) throw err;
      });
  }, everyMs);
  timer.unref();
  return {
    stop: async () => {
      clearInterval(timer);
      await inflight;
    },
  };
}
