package dedup

import (
	"context"
	"errors"
	"sync"
	"time"
)

// Status is what Once reports for one message, and so what to tell the broker.
type Status string

const (
	// Processed: the handler ran and its commit was accepted. Ack.
	Processed Status = "PROCESSED"
	// Duplicate: processed before (Outcome.StoredResult holds its stored result). Ack without processing.
	Duplicate Status = "DUPLICATE"
	// InProgress: another consumer holds the lease. Nack, or retry after Outcome.RetryAfter.
	InProgress Status = "IN_PROGRESS"
	// Conflict: the id was seen with a different fingerprint: an upstream bug. Dead-letter.
	Conflict Status = "CONFLICT"
	// LeaseLost: the handler ran but its lease ended before the commit (renewals
	// failed, or the lease was too short), so another consumer may process the
	// same id: guard the effect with the fencing token downstream. Ack, and alert.
	LeaseLost Status = "LEASE_LOST"
)

// ErrLeaseLost is the cause of the handler's context cancellation when a
// renewal finds the lease gone (context.Cause(ctx) == ErrLeaseLost).
var ErrLeaseLost = errors.New("dedup: lease lost")

// Outcome is Once's report.
type Outcome struct {
	Status Status
	// StoredResult: for Duplicate, what the first processing stored; for Processed, what this one stored.
	StoredResult []byte
	// RetryAfter: for InProgress, when the current holder's lease ends.
	RetryAfter   time.Duration
	FencingToken uint64
}

// ShouldAck reports whether the broker may forget the message (processed, by us or before).
func (o Outcome) ShouldAck() bool {
	return o.Status == Processed || o.Status == Duplicate || o.Status == LeaseLost
}

// Handler does the work for one message. token is the fencing token: pass it
// to downstream stores that can reject stale writers. The returned bytes (nil
// for none) are stored with the commit and handed to later duplicates. ctx is
// cancelled, with cause ErrLeaseLost, if the lease is lost while it runs.
type Handler func(ctx context.Context, token uint64) ([]byte, error)

// OnceOption configures Once.
type OnceOption func(*onceConfig)

type onceConfig struct {
	lease, renewEvery, window time.Duration
	fingerprint               []byte
}

// DefaultLease is the lease Once takes unless OnceLease says otherwise.
const DefaultLease = 30 * time.Second

// OnceLease sets the lease taken per message (default 30s); it is renewed every third of it.
func OnceLease(d time.Duration) OnceOption { return func(c *onceConfig) { c.lease = d } }

// OnceRenewEvery overrides the renewal period (default: a third of the lease).
func OnceRenewEvery(d time.Duration) OnceOption { return func(c *onceConfig) { c.renewEvery = d } }

// OnceWindow sets the window the commit keeps the id for (default: the namespace's).
func OnceWindow(d time.Duration) OnceOption { return func(c *onceConfig) { c.window = d } }

// OnceFingerprint sets the claim's content fingerprint.
func OnceFingerprint(b []byte) OnceOption { return func(c *onceConfig) { c.fingerprint = b } }

// Once runs handler effectively once for (namespace, id): Claim, then
// handler(token) while a goroutine renews the lease, then Commit with the
// handler's result; or Release if the handler fails, returning its error
// (nack: the redelivery can proceed at once). If the id is a duplicate, in
// progress elsewhere, or conflicting, the handler does not run and the
// Outcome says so. A failed Claim or Commit returns the error (nack).
func (c *Client) Once(ctx context.Context, namespace string, id []byte, handler Handler, opts ...OnceOption) (Outcome, error) {
	cfg := onceConfig{lease: DefaultLease}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.renewEvery <= 0 {
		cfg.renewEvery = cfg.lease / 3
	}
	claim, err := c.Claim(ctx, namespace, id, Lease(cfg.lease), Fingerprint(cfg.fingerprint))
	if err != nil {
		return Outcome{}, err
	}
	switch claim.Outcome {
	case ClaimDuplicate:
		return Outcome{Status: Duplicate, StoredResult: claim.Result}, nil
	case ClaimInProgress:
		return Outcome{Status: InProgress, RetryAfter: claim.RetryAfter}, nil
	case ClaimConflict:
		return Outcome{Status: Conflict}, nil
	}
	token := claim.FencingToken
	handlerCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stop := c.heartbeat(ctx, namespace, id, token, cfg, cancel)
	result, herr := handler(handlerCtx, token)
	stop()
	// The work is done (or failed) either way: tell the sidecar even if ctx was cancelled.
	after, cancelAfter := context.WithTimeout(context.WithoutCancel(ctx), c.cfg.timeout)
	defer cancelAfter()
	if herr != nil {
		_, _ = c.Release(after, namespace, id, token) // best effort: the lease ends by itself anyway
		return Outcome{FencingToken: token}, herr
	}
	commitOpts := []CallOption{Window(cfg.window)}
	if result != nil {
		commitOpts = append(commitOpts, Result(result))
	}
	commit, err := c.Commit(after, namespace, id, token, commitOpts...)
	if err != nil {
		return Outcome{FencingToken: token}, err
	}
	status := Processed
	if commit.Outcome != Committed {
		status = LeaseLost
	}
	return Outcome{Status: status, StoredResult: result, FencingToken: token}, nil
}

// heartbeat renews the lease until the returned stop is called; a LEASE_LOST
// answer cancels the handler's context with ErrLeaseLost.
func (c *Client) heartbeat(ctx context.Context, namespace string, id []byte, token uint64, cfg onceConfig,
	lost context.CancelCauseFunc) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		ticker := time.NewTicker(cfg.renewEvery)
		defer ticker.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-ticker.C:
				r, err := c.Renew(ctx, namespace, id, token, Lease(cfg.lease))
				if err == nil && r.Outcome == RenewLeaseLost {
					lost(ErrLeaseLost)
					return
				}
				// Other errors: keep trying until the lease ends; the commit will tell.
			}
		}
	}()
	return func() {
		close(done)
		wg.Wait()
	}
}
