// Wrapper types <-> generated dedup.v1 messages.
import * as pb from "./gen/dedup/v1/dedup";
import type * as t from "./types";

export function bytes(v: Uint8Array | string | undefined): Buffer {
  if (v === undefined) return Buffer.alloc(0);
  return typeof v === "string" ? Buffer.from(v, "utf8") : Buffer.from(v.buffer, v.byteOffset, v.byteLength);
}

const ms = (v: number | undefined): bigint => BigInt(Math.trunc(v ?? 0));
const num = (v: bigint): number => Number(v);

/** "CHECK_OUTCOME_NEW" -> "NEW"; UNSPECIFIED/unknown -> undefined. */
function short<T extends string>(names: Record<number, string>, prefix: string, v: number): T | undefined {
  const name = names[v];
  if (name === undefined || name.endsWith("_UNSPECIFIED") || name === "UNRECOGNIZED") return undefined;
  return name.slice(prefix.length) as T;
}

const checkOutcome = (v: pb.CheckOutcome) => short<t.CheckOutcome>(pb.CheckOutcome, "CHECK_OUTCOME_", v);
const claimOutcome = (v: pb.ClaimOutcome) => short<t.ClaimOutcome>(pb.ClaimOutcome, "CLAIM_OUTCOME_", v);
const state = (v: pb.RecordState) => short<t.RecordState>(pb.RecordState, "RECORD_STATE_", v);

function itemError(e: pb.ItemError | undefined): t.ItemError | undefined {
  if (e === undefined || e.code === 0) return undefined;
  return { code: e.code, message: e.message, fieldViolations: e.fieldViolations.map((v) => ({ ...v })) };
}

export function checkRequest(i: t.CheckItem): pb.CheckRequest {
  return { namespace: i.namespace, id: bytes(i.id), fingerprint: bytes(i.fingerprint), windowMs: ms(i.windowMs) };
}

export function claimRequest(i: t.ClaimItem): pb.ClaimRequest {
  return {
    namespace: i.namespace,
    id: bytes(i.id),
    fingerprint: bytes(i.fingerprint),
    leaseMs: ms(i.leaseMs),
    waitMs: ms(i.waitMs),
  };
}

export function commitRequest(i: t.CommitItem): pb.CommitRequest {
  return {
    namespace: i.namespace,
    id: bytes(i.id),
    fencingToken: i.token,
    result: i.result === undefined ? undefined : bytes(i.result),
    windowMs: ms(i.windowMs),
  };
}

export function checkResult(r: pb.CheckResponse): t.CheckResult {
  return {
    outcome: checkOutcome(r.outcome) as t.CheckOutcome,
    firstSeenUnixMs: num(r.firstSeenUnixMs),
    ageMs: num(r.ageMs),
    state: state(r.state),
    result: r.result,
    degraded: r.degraded,
    shadowOutcome: checkOutcome(r.shadowOutcome),
    error: itemError(r.error),
  };
}

export function claimResult(r: pb.ClaimResponse): t.ClaimResult {
  return {
    outcome: claimOutcome(r.outcome) as t.ClaimOutcome,
    token: r.fencingToken,
    leaseExpiresUnixMs: num(r.leaseExpiresUnixMs),
    retryAfterMs: num(r.retryAfterMs),
    firstSeenUnixMs: num(r.firstSeenUnixMs),
    ageMs: num(r.ageMs),
    committedUnixMs: num(r.committedUnixMs),
    result: r.result,
    degraded: r.degraded,
    shadowOutcome: claimOutcome(r.shadowOutcome),
    error: itemError(r.error),
  };
}

export function commitResult(r: pb.CommitResponse): t.CommitResult {
  return {
    outcome: short<t.CommitOutcome>(pb.CommitOutcome, "COMMIT_OUTCOME_", r.outcome) as t.CommitOutcome,
    committedUnixMs: num(r.committedUnixMs),
    expiresUnixMs: num(r.expiresUnixMs),
    degraded: r.degraded,
    error: itemError(r.error),
  };
}

export function releaseResult(r: pb.ReleaseResponse): t.ReleaseResult {
  const outcome = short<t.ReleaseOutcome>(pb.ReleaseOutcome, "RELEASE_OUTCOME_", r.outcome) as t.ReleaseOutcome;
  return { outcome, degraded: r.degraded };
}

export function renewResult(r: pb.RenewResponse): t.RenewResult {
  const outcome = short<t.RenewOutcome>(pb.RenewOutcome, "RENEW_OUTCOME_", r.outcome) as t.RenewOutcome;
  return { outcome, leaseExpiresUnixMs: num(r.leaseExpiresUnixMs), degraded: r.degraded };
}

export function inspectResult(r: pb.InspectResponse): t.InspectResult {
  return {
    state: state(r.state) ?? "ABSENT",
    token: r.fencingToken,
    firstSeenUnixMs: num(r.firstSeenUnixMs),
    committedUnixMs: num(r.committedUnixMs),
    leaseExpiresUnixMs: num(r.leaseExpiresUnixMs),
    ttlMs: num(r.ttlMs),
    hasFingerprint: r.hasFingerprint,
    result: r.result,
    nowUnixMs: num(r.nowUnixMs),
  };
}

export function forgetOutcome(r: pb.ForgetResponse): t.ForgetOutcome {
  return short<t.ForgetOutcome>(pb.ForgetOutcome, "FORGET_OUTCOME_", r.outcome) as t.ForgetOutcome;
}
