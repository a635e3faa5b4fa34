package dedup

import (
	"context"
	"math/rand/v2"
	"time"

	"google.golang.org/grpc/codes"
)

// RetryPolicy retries UNAVAILABLE for the retry-safe methods only, within the
// call's deadline (docs/adr/0010-client-retries.md):
//
//   - Claim, ClaimBatch: a retry after a lost ACQUIRED answers IN_PROGRESS (our
//     own lease); the caller nacks and the redelivery acquires when it ends.
//     Delay, never loss, never two holders.
//   - Commit, CommitBatch: the same holder committing again answers COMMITTED.
//   - Renew: extending the same lease twice is harmless.
//   - Release: fenced by the token; a retry after a lost RELEASED answers LEASE_LOST.
//   - Inspect: a read.
//
// Never retried once sent: Check and CheckBatch (a retry after a lost NEW would
// answer DUPLICATE for the caller's own mark, and the caller would drop a
// message nobody processed) and Forget (it could delete a record re-created in
// between). gRPC's own transparent retry (the request never reached the
// server application) still applies to every call. DEADLINE_EXCEEDED is never
// retried.
type RetryPolicy struct {
	// MaxAttempts counts the first try; 1 disables retries.
	MaxAttempts int
	// Backoff before retry n is random in [0, min(MaxBackoff, InitialBackoff*2^(n-1))].
	InitialBackoff time.Duration
	MaxBackoff     time.Duration
}

// DefaultRetryPolicy is used unless WithRetryPolicy says otherwise.
var DefaultRetryPolicy = RetryPolicy{MaxAttempts: 4, InitialBackoff: 50 * time.Millisecond, MaxBackoff: time.Second}

// NoRetries disables the client's own retries.
var NoRetries = RetryPolicy{MaxAttempts: 1}

var retrySafe = map[string]bool{
	"Claim": true, "ClaimBatch": true, "Commit": true, "CommitBatch": true,
	"Renew": true, "Release": true, "Inspect": true,
}

// RetrySafe reports whether the client retries method (e.g. "Claim") on UNAVAILABLE.
func RetrySafe(method string) bool { return retrySafe[method] }

// delay is the wait before attempt+1, or false to give up.
func (p RetryPolicy) delay(ctx context.Context, method string, code codes.Code, attempt int) (time.Duration, bool) {
	if !retrySafe[method] || code != codes.Unavailable || attempt >= p.MaxAttempts {
		return 0, false
	}
	ceiling := p.InitialBackoff << (attempt - 1)
	if ceiling > p.MaxBackoff || ceiling <= 0 {
		ceiling = p.MaxBackoff
	}
	wait := time.Duration(0)
	if ceiling > 0 {
		wait = rand.N(ceiling)
	}
	if deadline, ok := ctx.Deadline(); ok && time.Until(deadline) <= wait+10*time.Millisecond {
		return 0, false // leave the next attempt some budget, else report the real error now
	}
	return wait, true
}
