package dedup

import (
	"strings"
	"time"

	"google.golang.org/protobuf/reflect/protoreflect"

	pb "github.com/dedup-sidecar/dedup/clients/go/dedupv1"
)

// CheckOutcome is the answer to Check: NEW, DUPLICATE or CONFLICT.
type CheckOutcome string

// ClaimOutcome is the answer to Claim: ACQUIRED, IN_PROGRESS, DUPLICATE or CONFLICT.
type ClaimOutcome string

// CommitOutcome is the answer to Commit: COMMITTED or LEASE_LOST.
type CommitOutcome string

// ReleaseOutcome is the answer to Release: RELEASED or LEASE_LOST.
type ReleaseOutcome string

// RenewOutcome is the answer to Renew: RENEWED or LEASE_LOST.
type RenewOutcome string

// ForgetOutcome is the answer to Forget: FORGOTTEN or ABSENT.
type ForgetOutcome string

// RecordState is a stored record's state: ABSENT, IN_PROGRESS or DONE.
type RecordState string

// The outcomes, named as in the proto (without their enum prefix).
const (
	CheckNew         CheckOutcome   = "NEW"
	CheckDuplicate   CheckOutcome   = "DUPLICATE"
	CheckConflict    CheckOutcome   = "CONFLICT"
	ClaimAcquired    ClaimOutcome   = "ACQUIRED"
	ClaimInProgress  ClaimOutcome   = "IN_PROGRESS"
	ClaimDuplicate   ClaimOutcome   = "DUPLICATE"
	ClaimConflict    ClaimOutcome   = "CONFLICT"
	Committed        CommitOutcome  = "COMMITTED"
	CommitLeaseLost  CommitOutcome  = "LEASE_LOST"
	Released         ReleaseOutcome = "RELEASED"
	ReleaseLeaseLost ReleaseOutcome = "LEASE_LOST"
	Renewed          RenewOutcome   = "RENEWED"
	RenewLeaseLost   RenewOutcome   = "LEASE_LOST"
	Forgotten        ForgetOutcome  = "FORGOTTEN"
	ForgetAbsent     ForgetOutcome  = "ABSENT"
	StateAbsent      RecordState    = "ABSENT"
	StateInProgress  RecordState    = "IN_PROGRESS"
	StateDone        RecordState    = "DONE"
)

// CheckResult is one Check answer. In batches, Err is set for a failed item
// (then Outcome is empty).
type CheckResult struct {
	Outcome   CheckOutcome
	FirstSeen time.Time
	Age       time.Duration
	State     RecordState
	// Result is the stored result of a committed duplicate (nil if none was stored).
	Result        []byte
	Degraded      bool
	ShadowOutcome CheckOutcome
	Err           error
}

// ClaimResult is one Claim answer: ACQUIRED carries FencingToken and
// LeaseExpires, IN_PROGRESS RetryAfter, DUPLICATE Committed and Result.
type ClaimResult struct {
	Outcome       ClaimOutcome
	FencingToken  uint64
	LeaseExpires  time.Time
	RetryAfter    time.Duration
	FirstSeen     time.Time
	Age           time.Duration
	Committed     time.Time
	Result        []byte
	Degraded      bool
	ShadowOutcome ClaimOutcome
	Err           error
}

// Acquired reports whether the caller now holds the lease.
func (r ClaimResult) Acquired() bool { return r.Outcome == ClaimAcquired }

// CommitResult is one Commit answer.
type CommitResult struct {
	Outcome       CommitOutcome
	Committed     time.Time
	Expires       time.Time
	Degraded      bool
	ShadowOutcome CommitOutcome
	Err           error
}

// ReleaseResult is the Release answer.
type ReleaseResult struct {
	Outcome  ReleaseOutcome
	Degraded bool
}

// RenewResult is the Renew answer.
type RenewResult struct {
	Outcome      RenewOutcome
	LeaseExpires time.Time
	Degraded     bool
}

// InspectResult is a record as read by Inspect.
type InspectResult struct {
	State          RecordState
	FencingToken   uint64
	FirstSeen      time.Time
	Committed      time.Time
	LeaseExpires   time.Time
	TTL            time.Duration
	HasFingerprint bool
	Result         []byte
	Now            time.Time
}

// ForgetResult is the Forget answer.
type ForgetResult struct {
	Outcome ForgetOutcome
}

func name(v protoreflect.Enum, prefix string) string {
	if v.Number() == 0 {
		return ""
	}
	return strings.TrimPrefix(string(v.Descriptor().Values().ByNumber(v.Number()).Name()), prefix)
}

func unixMs(ms int64) time.Time {
	if ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms)
}

func ms(v int64) time.Duration { return time.Duration(v) * time.Millisecond }

func checkResult(r *pb.CheckResponse) CheckResult {
	return CheckResult{
		Outcome:       CheckOutcome(name(r.GetOutcome(), "CHECK_OUTCOME_")),
		FirstSeen:     unixMs(r.GetFirstSeenUnixMs()),
		Age:           ms(r.GetAgeMs()),
		State:         RecordState(name(r.GetState(), "RECORD_STATE_")),
		Result:        r.Result,
		Degraded:      r.GetDegraded(),
		ShadowOutcome: CheckOutcome(name(r.GetShadowOutcome(), "CHECK_OUTCOME_")),
		Err:           itemError(r.GetError()),
	}
}

func claimResult(r *pb.ClaimResponse) ClaimResult {
	return ClaimResult{
		Outcome:       ClaimOutcome(name(r.GetOutcome(), "CLAIM_OUTCOME_")),
		FencingToken:  r.GetFencingToken(),
		LeaseExpires:  unixMs(r.GetLeaseExpiresUnixMs()),
		RetryAfter:    ms(r.GetRetryAfterMs()),
		FirstSeen:     unixMs(r.GetFirstSeenUnixMs()),
		Age:           ms(r.GetAgeMs()),
		Committed:     unixMs(r.GetCommittedUnixMs()),
		Result:        r.Result,
		Degraded:      r.GetDegraded(),
		ShadowOutcome: ClaimOutcome(name(r.GetShadowOutcome(), "CLAIM_OUTCOME_")),
		Err:           itemError(r.GetError()),
	}
}

func commitResult(r *pb.CommitResponse) CommitResult {
	return CommitResult{
		Outcome:       CommitOutcome(name(r.GetOutcome(), "COMMIT_OUTCOME_")),
		Committed:     unixMs(r.GetCommittedUnixMs()),
		Expires:       unixMs(r.GetExpiresUnixMs()),
		Degraded:      r.GetDegraded(),
		ShadowOutcome: CommitOutcome(name(r.GetShadowOutcome(), "COMMIT_OUTCOME_")),
		Err:           itemError(r.GetError()),
	}
}

func inspectResult(r *pb.InspectResponse) InspectResult {
	return InspectResult{
		State:          RecordState(name(r.GetState(), "RECORD_STATE_")),
		FencingToken:   r.GetFencingToken(),
		FirstSeen:      unixMs(r.GetFirstSeenUnixMs()),
		Committed:      unixMs(r.GetCommittedUnixMs()),
		LeaseExpires:   unixMs(r.GetLeaseExpiresUnixMs()),
		TTL:            ms(r.GetTtlMs()),
		HasFingerprint: r.GetHasFingerprint(),
		Result:         r.Result,
		Now:            unixMs(r.GetNowUnixMs()),
	}
}
