package dedup

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"
)

// The effectively-once helper (docs/adr/0013-helper-rules.md):
// claim (waiting for a live holder) -> handler(ctx, lease) -> commit, the same
// rules and outcomes as every other language's client.

// Status is what Once reports for one message.
type Status string

const (
	// Processed: the handler ran and its commit is recorded. Ack.
	Processed Status = "PROCESSED"
	// Duplicate: processed before (Outcome.StoredResult holds its stored result). Ack without processing.
	Duplicate Status = "DUPLICATE"
	// InProgress: another consumer still holds the lease after the claim's
	// wait. Nack (requeue, or redeliver after Outcome.RetryAfter).
	InProgress Status = "IN_PROGRESS"
	// Conflict: the id was seen with a different fingerprint: an upstream bug. Dead-letter.
	Conflict Status = "CONFLICT"
	// LeaseLost: the handler ran, but another holder took the id over before
	// our commit. Ack, and alert: the lease is too short or renewals failed.
	LeaseLost Status = "LEASE_LOST"
)

// Action is what to tell the broker about a message.
type Action string

const (
	// Ack: the broker may forget the message.
	Ack Action = "ACK"
	// Nack: requeue / redeliver the message (later).
	Nack Action = "NACK"
	// DeadLetter: reject the message without requeueing it (to a dead-letter queue).
	DeadLetter Action = "DEAD_LETTER"
)

// ErrLeaseLost is the cause of the handler's context cancellation when a
// renewal finds the lease gone (context.Cause(ctx) == ErrLeaseLost), and the
// error of Lease.Ensure then.
var ErrLeaseLost = errors.New("dedup: lease lost")

// Outcome is Once's report: a value, not an error.
type Outcome struct {
	Status Status
	// StoredResult: for Duplicate, what the first processing stored; for Processed, what this one stored.
	StoredResult []byte
	// RetryAfter: for InProgress, when the current holder's lease ends.
	RetryAfter time.Duration
	// FencingToken: the token the handler ran with (of the re-claim when the commit needed one).
	FencingToken uint64
}

// Action is what to tell the broker: Ack for Processed, Duplicate and
// LeaseLost, DeadLetter for Conflict, Nack for InProgress (and for the zero
// Outcome that comes with an error).
func (o Outcome) Action() Action {
	switch o.Status {
	case Processed, Duplicate, LeaseLost:
		return Ack
	case Conflict:
		return DeadLetter
	}
	return Nack
}

// ShouldAck reports whether the broker may forget the message (Action() == Ack).
func (o Outcome) ShouldAck() bool { return o.Action() == Ack }

// Handler does the work for one message. lease carries the fencing token (pass
// it to downstream stores that can reject stale writers) and Ensure; ctx is
// cancelled, with cause ErrLeaseLost, once a renewal finds the lease gone. The
// returned bytes (nil for none) are stored with the commit and handed to later
// duplicates. Return an error only when the effect did not happen (it is all or
// nothing): the helper then releases the lease so a redelivery runs at once.
type Handler func(ctx context.Context, lease *Lease) ([]byte, error)

// Lease is the handler's view of the claim it runs under.
type Lease struct {
	c         *Client
	namespace string
	id        []byte
	token     uint64
	length    time.Duration // requested; 0 = the namespace default
	lost      atomic.Bool
	cancel    context.CancelCauseFunc

	mu      sync.Mutex
	expires time.Time
}

// Token is the fencing token: strictly greater for every later holder of the id.
func (l *Lease) Token() uint64 { return l.token }

// Lost reports whether a renewal or Ensure found the lease gone.
func (l *Lease) Lost() bool { return l.lost.Load() }

// Expires is when the lease ends unless renewed (as last reported by the sidecar).
func (l *Lease) Expires() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.expires
}

// Ensure renews the lease now and returns ErrLeaseLost if it is gone (then
// Lost() is true and the handler's ctx is cancelled). Call it right before an
// effect that cannot be fenced. Another error (e.g. UNAVAILABLE) means the
// sidecar could not tell.
func (l *Lease) Ensure(ctx context.Context) error {
	if l.Lost() {
		return ErrLeaseLost
	}
	if !time.Now().Before(l.Expires()) {
		// Past the lease's end by our own clock (e.g. the process was paused):
		// whoever claims the id now may hold it, so the lease counts as lost.
		l.markLost()
		return ErrLeaseLost
	}
	start := time.Now()
	err := l.renew(ctx)
	if err != nil && l.Lost() {
		return ErrLeaseLost
	}
	if err == nil && time.Since(start) >= l.length {
		// The sidecar renewed the lease, but its answer reached us a whole lease later
		// (this process was paused, or the network held it): the renewal may have
		// ended already, so the lease counts as lost (monotonic clock, no skew).
		l.markLost()
		return ErrLeaseLost
	}
	return err
}

func (l *Lease) renew(ctx context.Context) error {
	sent := time.Now()
	r, err := l.c.Renew(ctx, l.namespace, l.id, l.token, LeaseFor(l.length))
	if err != nil {
		return err
	}
	if r.Outcome != Renewed {
		l.markLost()
		return ErrLeaseLost
	}
	l.extend(sent, r.LeaseExpires)
	return nil
}

// extend records the lease's new end: the sidecar's answer, else sent + length.
func (l *Lease) extend(sent, reported time.Time) {
	end := reported
	if end.IsZero() {
		end = sent.Add(l.length)
	}
	l.mu.Lock()
	if end.After(l.expires) {
		l.expires = end
	}
	l.mu.Unlock()
}

func (l *Lease) markLost() {
	l.lost.Store(true)
	if l.cancel != nil {
		l.cancel(ErrLeaseLost)
	}
}

// OnceOption configures Once.
type OnceOption func(*onceConfig)

type onceConfig struct {
	lease, renewEvery, window, wait time.Duration
	fingerprint                     []byte
}

// DefaultLease is the lease Once takes unless OnceLease says otherwise.
const DefaultLease = 30 * time.Second

// DefaultWait is how long Once's claim waits for another holder unless OnceWait says otherwise.
const DefaultWait = 5 * time.Second

// Commit retry backoff of the helper: 50 ms doubling to 1 s, jittered.
const (
	commitBackoffMin = 50 * time.Millisecond
	commitBackoffMax = time.Second
)

// OnceLease sets the lease taken per message (default 30s); it is renewed every third of it.
func OnceLease(d time.Duration) OnceOption { return func(c *onceConfig) { c.lease = d } }

// OnceRenewEvery overrides the renewal period (default: a third of the lease).
func OnceRenewEvery(d time.Duration) OnceOption { return func(c *onceConfig) { c.renewEvery = d } }

// OnceWindow sets the window the commit keeps the id for (default: the namespace's).
func OnceWindow(d time.Duration) OnceOption { return func(c *onceConfig) { c.window = d } }

// OnceFingerprint sets the claim's content fingerprint.
func OnceFingerprint(b []byte) OnceOption { return func(c *onceConfig) { c.fingerprint = b } }

// OnceWait sets how long the claim waits for another holder's Commit, Release
// or lost lease (default 5s; 0 = answer IN_PROGRESS at once). When ctx has no
// deadline, the claim gets wait + the client's default timeout.
func OnceWait(d time.Duration) OnceOption { return func(c *onceConfig) { c.wait = d } }

// Once runs handler effectively once for (namespace, id) (docs/adr/0013-helper-rules.md):
//
//   - Claim, waiting up to OnceWait for a live holder. DUPLICATE, IN_PROGRESS
//     and CONFLICT return at once as the Outcome's Status; the handler does not run.
//   - handler(ctx, lease) while a goroutine renews the lease every third of it.
//   - The handler returns an error (or panics): the helper stops renewing,
//     releases the lease (best effort) and returns that error (or re-panics).
//   - The handler returns: the helper never releases. It commits, retrying
//     UNAVAILABLE and DEADLINE_EXCEEDED with backoff for as long as the lease
//     lasts (renewing as it goes); on LEASE_LOST it re-claims once without
//     waiting: ACQUIRED -> commit at once -> Processed; another holder or a
//     commit -> LeaseLost.
//
// Errors only for real failures: the claim could not be made, bad input, the
// handler's own error, or an effect whose commit could not be recorded (code
// UNAVAILABLE: the sidecar stayed unreachable past the lease). Nack on an
// error. No goroutine outlives the call.
func (c *Client) Once(ctx context.Context, namespace string, id []byte, handler Handler, opts ...OnceOption) (Outcome, error) {
	cfg := onceConfig{lease: DefaultLease, wait: DefaultWait}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.renewEvery <= 0 {
		cfg.renewEvery = cfg.lease / 3
		if cfg.renewEvery <= 0 {
			cfg.renewEvery = DefaultLease / 3 // namespace default lease: at least every 10s
		}
	}
	claimCtx := ctx
	if _, ok := ctx.Deadline(); !ok && cfg.wait > 0 {
		var cancel context.CancelFunc
		claimCtx, cancel = context.WithTimeout(ctx, cfg.wait+c.cfg.timeout)
		defer cancel()
	}
	sent := time.Now()
	claim, err := c.Claim(claimCtx, namespace, id, LeaseFor(cfg.lease), Fingerprint(cfg.fingerprint), Wait(cfg.wait))
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
	case ClaimAcquired:
	default:
		return Outcome{}, &Error{Code: codes.Internal, Message: fmt.Sprintf("unexpected claim outcome %q", claim.Outcome)}
	}
	lease := &Lease{c: c, namespace: namespace, id: id, token: claim.FencingToken, length: cfg.lease}
	lease.extend(sent, claim.LeaseExpires)
	return c.runHandler(ctx, lease, handler, cfg)
}

func (c *Client) runHandler(ctx context.Context, lease *Lease, handler Handler, cfg onceConfig) (Outcome, error) {
	handlerCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	lease.cancel = cancel
	beat := c.heartbeat(ctx, lease, cfg.renewEvery)
	defer beat.stop() // also when the handler panics: no goroutine outlives the call
	returned := false
	defer func() {
		if !returned { // panicking: before the effect, as an error would be
			beat.stop()
			c.releaseQuietly(ctx, lease)
		}
	}()
	result, herr := handler(handlerCtx, lease)
	returned = true
	if herr != nil {
		beat.stop()
		c.releaseQuietly(ctx, lease)
		return Outcome{FencingToken: lease.token}, herr
	}
	return c.settle(ctx, lease, beat, result, cfg)
}

// releaseQuietly releases after a failure before the effect (best effort: the lease ends by itself anyway).
func (c *Client) releaseQuietly(ctx context.Context, lease *Lease) {
	after, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.cfg.timeout)
	defer cancel()
	_, _ = c.Release(after, lease.namespace, lease.id, lease.token)
}

// settle records an effect that happened: commit (retried for the lease's
// life), else re-claim and commit, else report who holds it. Never releases.
func (c *Client) settle(ctx context.Context, lease *Lease, beat *heartbeat, result []byte, cfg onceConfig) (Outcome, error) {
	detached := context.WithoutCancel(ctx) // the effect is done: record it even if ctx was cancelled
	commitOpts := []CallOption{Window(cfg.window)}
	if result != nil {
		commitOpts = append(commitOpts, Result(result))
	}
	backoff := commitBackoffMin
	var unreachable error
	for {
		callCtx, cancel := context.WithTimeout(detached, c.cfg.timeout)
		r, err := c.commitOnce(callCtx, lease.namespace, lease.id, lease.token, commitOpts)
		cancel()
		if err == nil && r.Outcome == Committed {
			return Outcome{Status: Processed, StoredResult: result, FencingToken: lease.token}, nil
		}
		if err == nil { // LEASE_LOST
			unreachable = nil
			break
		}
		if code := Code(err); code != codes.Unavailable && code != codes.DeadlineExceeded {
			return Outcome{FencingToken: lease.token}, err
		}
		unreachable = err
		left := time.Until(lease.Expires())
		if left <= 0 {
			break
		}
		sleep := min(backoff/2+rand.N(backoff/2+1), left)
		backoff = min(backoff*2, commitBackoffMax)
		time.Sleep(sleep)
	}
	beat.stop() // the old token is done with: a re-claim takes a new one
	return c.reclaim(detached, lease, result, commitOpts, cfg, unreachable)
}

// commitOnce is one Commit attempt (the helper's own loop does the retrying).
func (c *Client) commitOnce(ctx context.Context, namespace string, id []byte, token uint64, opts []CallOption) (CommitResult, error) {
	r, err := invokeWith(ctx, c, NoRetries, "Commit", commitRequest(namespace, id, token, collect(opts)), c.stub.Commit, kindCommit)
	if err != nil {
		return CommitResult{}, err
	}
	return commitResult(r), nil
}

// reclaim runs after Commit answered LEASE_LOST (unreachable == nil) or the
// lease ended while the sidecar was unreachable: claim once without waiting;
// ACQUIRED means nobody ran the effect since (the record was absent), so commit at once.
func (c *Client) reclaim(ctx context.Context, lease *Lease, result []byte, commitOpts []CallOption,
	cfg onceConfig, unreachable error) (Outcome, error) {
	notRecorded := func(err error) error {
		return &Error{Code: codes.Unavailable, Message: fmt.Sprintf("effect applied, commit not recorded: %v", err)}
	}
	callCtx, cancel := context.WithTimeout(ctx, c.cfg.timeout)
	defer cancel()
	claim, err := c.Claim(callCtx, lease.namespace, lease.id, LeaseFor(cfg.lease), Fingerprint(cfg.fingerprint))
	if err != nil {
		if unreachable != nil {
			err = unreachable
		}
		return Outcome{FencingToken: lease.token}, notRecorded(err)
	}
	if claim.Outcome != ClaimAcquired {
		return Outcome{Status: LeaseLost, StoredResult: result, FencingToken: lease.token}, nil
	}
	commitCtx, cancelCommit := context.WithTimeout(ctx, c.cfg.timeout)
	defer cancelCommit()
	r, err := c.Commit(commitCtx, lease.namespace, lease.id, claim.FencingToken, commitOpts...)
	if err != nil {
		return Outcome{FencingToken: claim.FencingToken}, notRecorded(err)
	}
	if r.Outcome != Committed {
		return Outcome{Status: LeaseLost, StoredResult: result, FencingToken: claim.FencingToken}, nil
	}
	return Outcome{Status: Processed, StoredResult: result, FencingToken: claim.FencingToken}, nil
}

// heartbeat renews a lease in the background until stopped.
type heartbeat struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// stop ends the renewals and waits for the goroutine; safe to call more than once.
func (h *heartbeat) stop() {
	h.cancel()
	h.wg.Wait()
}

// heartbeat renews every `every` until stopped; a LEASE_LOST answer marks the
// lease lost (cancelling the handler's context with ErrLeaseLost) and ends it.
// Other errors: keep trying while the lease lasts; the commit will tell.
func (c *Client) heartbeat(ctx context.Context, lease *Lease, every time.Duration) *heartbeat {
	beatCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	h := &heartbeat{cancel: cancel}
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		ticker := time.NewTicker(every)
		defer ticker.Stop()
		for {
			select {
			case <-beatCtx.Done():
				return
			case <-ticker.C:
				callCtx, cancelCall := context.WithTimeout(beatCtx, c.cfg.timeout)
				err := lease.renew(callCtx)
				cancelCall()
				if errors.Is(err, ErrLeaseLost) {
					return
				}
			}
		}
	}()
	return h
}
