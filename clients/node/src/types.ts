// The wrapper's plain result types: outcomes as short names ("NEW",
// "ACQUIRED", ...), durations and times as numbers of ms, tokens as bigint.
export type Id = string | Uint8Array;

export type CheckOutcome = "NEW" | "DUPLICATE" | "CONFLICT";
export type ClaimOutcome = "ACQUIRED" | "IN_PROGRESS" | "DUPLICATE" | "CONFLICT";
export type CommitOutcome = "COMMITTED" | "LEASE_LOST";
export type ReleaseOutcome = "RELEASED" | "LEASE_LOST";
export type RenewOutcome = "RENEWED" | "LEASE_LOST";
export type ForgetOutcome = "FORGOTTEN" | "ABSENT";
export type RecordState = "ABSENT" | "IN_PROGRESS" | "DONE";

/** Options every call accepts. */
export interface CallOptions {
  /** Deadline for the whole call, retries included (default: the client's deadlineMs). */
  deadlineMs?: number;
  /** Cancels the call (it fails with CANCELLED; a Claim that was acquired meanwhile is released over the stream). */
  signal?: AbortSignal;
}

export interface CheckItem {
  namespace: string;
  id: Id;
  fingerprint?: Uint8Array | string;
  windowMs?: number;
}

export interface ClaimItem {
  namespace: string;
  id: Id;
  fingerprint?: Uint8Array | string;
  leaseMs?: number;
  /**
   * Wait up to this many ms for another holder's lease to end (its Commit answers
   * DUPLICATE, its Release or lost lease ACQUIRED) instead of answering IN_PROGRESS
   * at once. Capped to the call's remaining deadline minus 100 ms. Default 0.
   */
  waitMs?: number;
}

export interface CommitItem {
  namespace: string;
  id: Id;
  token: bigint;
  result?: Uint8Array | string;
  windowMs?: number;
}

export interface TokenItem {
  namespace: string;
  id: Id;
  token: bigint;
}

export interface RenewItem extends TokenItem {
  leaseMs?: number;
}

export interface IdItem {
  namespace: string;
  id: Id;
}

/** A per-item failure inside a batch. */
export interface ItemError {
  code: number;
  message: string;
  fieldViolations: { field: string; description: string }[];
}

export interface CheckResult {
  outcome: CheckOutcome;
  firstSeenUnixMs: number;
  ageMs: number;
  state: RecordState | undefined;
  result: Buffer | undefined;
  degraded: boolean;
  shadowOutcome: CheckOutcome | undefined;
  /** Batches only: set when this item failed. */
  error: ItemError | undefined;
}

export interface ClaimResult {
  outcome: ClaimOutcome;
  token: bigint;
  leaseExpiresUnixMs: number;
  retryAfterMs: number;
  firstSeenUnixMs: number;
  ageMs: number;
  committedUnixMs: number;
  result: Buffer | undefined;
  degraded: boolean;
  shadowOutcome: ClaimOutcome | undefined;
  error: ItemError | undefined;
}

export interface CommitResult {
  outcome: CommitOutcome;
  committedUnixMs: number;
  expiresUnixMs: number;
  degraded: boolean;
  error: ItemError | undefined;
}

export interface ReleaseResult {
  outcome: ReleaseOutcome;
  degraded: boolean;
}

export interface RenewResult {
  outcome: RenewOutcome;
  leaseExpiresUnixMs: number;
  degraded: boolean;
}

export interface InspectResult {
  state: RecordState;
  token: bigint;
  firstSeenUnixMs: number;
  committedUnixMs: number;
  leaseExpiresUnixMs: number;
  ttlMs: number;
  hasFingerprint: boolean;
  result: Buffer | undefined;
  nowUnixMs: number;
}
