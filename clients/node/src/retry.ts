// Which failures may be retried, per operation. See README "Retries".
//
// - Never after DEADLINE_EXCEEDED (the reply may have been lost, and the
//   deadline is spent anyway), CANCELLED, or any answer from the sidecar
//   other than UNAVAILABLE.
// - Check/Claim (and their batches): only an UNAVAILABLE that means the
//   request was not applied (no connection, or the sidecar's store refused it).
//   An UNAVAILABLE for a connection dropped mid-call is ambiguous: the mark may
//   exist, and a retry would answer DUPLICATE/IN_PROGRESS for the caller's own
//   mark, so it is surfaced instead.
// - Renew and Inspect: any UNAVAILABLE (re-renewing with the same token is
//   harmless; Inspect only reads).
// - Commit, CommitBatch, Release, Forget: never. A lost reply followed by a
//   retry would answer LEASE_LOST (or ABSENT) for work that did succeed.
import { status as Status } from "@grpc/grpc-js";
import type { DedupError } from "./status";

export type RetryClass = "mark" | "idempotent" | "never";

const AMBIGUOUS = /connection dropped|connection reset|econnreset|goaway|rst_stream|stream closed|unknown reason|epipe/i;

export function retryable(kind: RetryClass, err: DedupError): boolean {
  if (kind === "never" || err.code !== Status.UNAVAILABLE) return false;
  if (kind === "idempotent") return true;
  return !AMBIGUOUS.test(err.details);
}

export interface RetryOptions {
  /** Total attempts including the first (default 3; 1 disables retries). */
  maxAttempts?: number;
  /** First backoff in ms (default 50), doubled per attempt with full jitter, capped at 1000. */
  initialBackoffMs?: number;
}

export function backoffMs(attempt: number, opts: RetryOptions): number {
  const base = opts.initialBackoffMs ?? 50;
  const cap = Math.min(1000, base * 2 ** (attempt - 1));
  return Math.random() * cap;
}
