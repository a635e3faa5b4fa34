// Which calls are retried (docs/adr/0010-client-retries.md: the same table in
// every client). Only UNAVAILABLE, only inside the call's one deadline, and
// only for calls that are harmless to run twice by the Lua state machine:
//
// - Claim, ClaimBatch: a retry after a lost ACQUIRED answers IN_PROGRESS (our
//   own lease): the caller nacks and the redelivery acquires when the lease
//   ends. Delay, never loss.
// - Commit, CommitBatch: commit.lua answers COMMITTED again to the same holder.
// - Renew (same lease), Release (fenced: can only drop our own lease), Inspect (a read).
//
// Never retried:
// - Check, CheckBatch: after a lost NEW the id is marked, and a retry would
//   answer DUPLICATE for the caller's own mark: a message nobody processed
//   would be dropped.
// - Forget: between a lost FORGOTTEN and the retry someone may mark the id
//   anew; the retry would delete that record.
// - Anything after DEADLINE_EXCEEDED (the deadline is the whole budget), or
//   any status other than UNAVAILABLE.
import { status as Status } from "@grpc/grpc-js";
import type { DedupError } from "./status";

export type RetryClass = "retry" | "never";

export function retryable(kind: RetryClass, err: DedupError): boolean {
  return kind === "retry" && err.code === Status.UNAVAILABLE;
}

export interface RetryOptions {
  /** Total attempts including the first (default 4; 1 disables retries). */
  maxAttempts?: number;
  /** First backoff in ms (default 50), doubled per attempt with full jitter, capped at 1000. */
  initialBackoffMs?: number;
}

export function backoffMs(attempt: number, opts: RetryOptions): number {
  const base = opts.initialBackoffMs ?? 50;
  const cap = Math.min(1000, base * 2 ** (attempt - 1));
  return Math.random() * cap;
}
