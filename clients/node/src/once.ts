// The effectively-once helper (docs/adr/0013-helper-rules.md): claim (waiting
// for a holder) -> handler(lease) -> commit. A handler error releases the lease
// and comes back as that error; after the handler returned, the helper never
// releases: it retries Commit for as long as the lease lasts and re-claims
// once after LEASE_LOST. Outcomes are values with the broker action to take.
import { status as GrpcStatus } from "@grpc/grpc-js";
import type { DedupClient } from "./client";
import { Lease } from "./lease";
import { DedupError } from "./status";
import type { Id } from "./types";

export type Status = "PROCESSED" | "DUPLICATE" | "IN_PROGRESS" | "CONFLICT" | "LEASE_LOST";
export type Action = "ACK" | "NACK" | "DEAD_LETTER";

/** The broker action for each status (the same table in every client). */
export const ACTIONS: Readonly<Record<Status, Action>> = {
  PROCESSED: "ACK",
  DUPLICATE: "ACK",
  IN_PROGRESS: "NACK",
  CONFLICT: "DEAD_LETTER",
  LEASE_LOST: "ACK",
};

export interface OnceOutcome {
  status: Status;
  /** ACK, NACK (requeue, or redeliver after retryAfterMs) or DEAD_LETTER. */
  action: Action;
  /** action === "ACK". */
  shouldAck: boolean;
  /** IN_PROGRESS: when the holder's lease ends (ms); else 0. */
  retryAfterMs: number;
  /** DUPLICATE: the result stored by the first processing; PROCESSED: the result this call stored. */
  storedResult: Buffer | undefined;
  /** PROCESSED and LEASE_LOST: the token the handler ran under (PROCESSED after a re-claim: the new one); else 0n. */
  fencingToken: bigint;
}

export type Handler = (lease: Lease) => Promise<Uint8Array | string | undefined | void>;

export interface OnceOptions {
  namespace: string;
  id: Id;
  fingerprint?: Uint8Array | string;
  /** Lease to ask for (default: the namespace policy's). */
  leaseMs?: number;
  /** Renew the lease this often (default: a third of the lease). */
  renewEveryMs?: number;
  /** Window to remember the id for after commit (default: the policy's). */
  windowMs?: number;
  /** Wait up to this long for another holder's Commit or Release (default 5000; 0: answer IN_PROGRESS at once). */
  waitMs?: number;
}

export const DEFAULT_WAIT_MS = 5000;
const BACKOFF_FIRST_MS = 50;
const BACKOFF_MAX_MS = 1000;

function outcome(status: Status, extra: Partial<OnceOutcome> = {}): OnceOutcome {
  const action = ACTIONS[status];
  return { status, action, shouldAck: action === "ACK", retryAfterMs: 0, storedResult: undefined, fencingToken: 0n, ...extra };
}

const transient = (err: unknown): boolean =>
  err instanceof DedupError && (err.code === GrpcStatus.UNAVAILABLE || err.code === GrpcStatus.DEADLINE_EXCEEDED);

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * Runs `handler` at most once to completion per (namespace, id) within the window.
 * The handler's return value (string or bytes) is stored with the commit and
 * handed to later duplicates. If the handler throws, the lease is released and
 * the error is rethrown; every other ending is an outcome value.
 */
export async function processOnce(client: DedupClient, options: OnceOptions, handler: Handler): Promise<OnceOutcome> {
  const { namespace, id, fingerprint, leaseMs } = options;
  const waitMs = options.waitMs ?? DEFAULT_WAIT_MS;
  const claim = await client.claim({ namespace, id, fingerprint, leaseMs, waitMs }, { deadlineMs: client.deadlineMs + waitMs });
  switch (claim.outcome) {
    case "DUPLICATE":
      return outcome("DUPLICATE", { storedResult: claim.result });
    case "IN_PROGRESS":
      return outcome("IN_PROGRESS", { retryAfterMs: claim.retryAfterMs });
    case "CONFLICT":
      return outcome("CONFLICT");
  }
  // The lease's length as granted (the policy's when none was asked for); it
  // runs from now by our clock (the claim may have waited for a holder).
  const now = Date.now();
  const durationMs = leaseMs ?? Math.max(300, claim.leaseExpiresUnixMs - now);
  const expiresAt = now + durationMs;
  const lease = new Lease(
    client,
    { namespace, id, token: claim.token, leaseMs, durationMs, renewEveryMs: options.renewEveryMs ?? durationMs / 3 },
    expiresAt,
  );
  lease.start();
  try {
    let result: Uint8Array | string | undefined | void;
    try {
      result = await handler(lease);
    } catch (err) {
      // Before the effect (the handler keeps its effect all-or-nothing): free the id for a redelivery.
      await lease.stop();
      await client.release({ namespace, id, token: claim.token }).catch(() => undefined); // the lease ends anyway
      throw err;
    }
    // Only strings and bytes are stored (a JavaScript caller may return anything: the effect is done, commit it).
    const stored = typeof result === "string" || result instanceof Uint8Array ? result : undefined;
    return await commitAfterEffect(client, options, lease, stored);
  } finally {
    await lease.stop();
  }
}

/** After the effect: commit for as long as the lease lasts, then re-claim; never release. */
async function commitAfterEffect(
  client: DedupClient,
  options: OnceOptions,
  lease: Lease,
  result: Uint8Array | string | undefined,
): Promise<OnceOutcome> {
  const { namespace, id, windowMs } = options;
  const stored = result === undefined ? undefined : Buffer.from(result);
  // The first Commit goes whatever our clock says; retries only while the lease lasts.
  for (let backoff = BACKOFF_FIRST_MS; ; backoff = Math.min(BACKOFF_MAX_MS, backoff * 2)) {
    try {
      const deadlineMs = Math.max(100, Math.min(client.deadlineMs, lease.expiresAt - Date.now()));
      const r = await client.commit({ namespace, id, token: lease.token, result, windowMs }, { deadlineMs });
      if (r.outcome === "COMMITTED") return outcome("PROCESSED", { storedResult: stored, fencingToken: lease.token });
      lease.markLost();
      return reclaimAndCommit(client, options, lease, result);
    } catch (err) {
      if (!transient(err)) throw err;
    }
    const left = lease.expiresAt - Date.now();
    if (left <= 0) break;
    await sleep(Math.min(Math.random() * backoff, left));
  }
  // The lease ran out while the sidecar was unreachable: a last re-claim.
  return reclaimAndCommit(client, options, lease, result);
}

/** The record lost our lease: ACQUIRED again means nobody ran the effect since, so commit it now. */
async function reclaimAndCommit(
  client: DedupClient,
  options: OnceOptions,
  lease: Lease,
  result: Uint8Array | string | undefined,
): Promise<OnceOutcome> {
  const { namespace, id, fingerprint, leaseMs, windowMs } = options;
  try {
    const again = await client.claim({ namespace, id, fingerprint, leaseMs });
    if (again.outcome !== "ACQUIRED") return outcome("LEASE_LOST", { fencingToken: lease.token });
    const r = await client.commit({ namespace, id, token: again.token, result, windowMs });
    if (r.outcome !== "COMMITTED") return outcome("LEASE_LOST", { fencingToken: lease.token });
    const stored = result === undefined ? undefined : Buffer.from(result);
    return outcome("PROCESSED", { storedResult: stored, fencingToken: again.token });
  } catch (err) {
    if (!transient(err)) throw err;
    const e = err as DedupError;
    throw new DedupError(e.code, `effect applied, commit not recorded: ${e.details}`, e.fieldViolations, e.attempts);
  }
}
