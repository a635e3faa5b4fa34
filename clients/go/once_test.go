package dedup_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	dedup "github.com/dedup-sidecar/dedup/clients/go"
)

// The Once helper against the live contract sidecar (DEDUP_TARGET).

const ns = "contract"

var seq atomic.Int64

func freshID() []byte {
	return []byte(fmt.Sprintf("go-once-%d-%d-%d", os.Getpid(), time.Now().UnixNano(), seq.Add(1)))
}

func liveClient(t *testing.T) *dedup.Client {
	t.Helper()
	requireHarness(t)
	c, err := dedup.New(os.Getenv("DEDUP_TARGET"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// waitUntil polls cond (bounded), never a bare sleep as synchronisation.
func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	limit := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(limit) {
			t.Fatal("condition not met in time")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestOnceProcessedThenDuplicateWithStoredResult(t *testing.T) {
	c, ctx, id := liveClient(t), context.Background(), freshID()
	calls := 0
	handler := func(ctx context.Context, lease *dedup.Lease) ([]byte, error) {
		calls++
		return []byte(fmt.Sprintf("receipt-%d", lease.Token())), nil
	}
	first, err := c.Once(ctx, ns, id, handler)
	if err != nil || first.Status != dedup.Processed || !first.ShouldAck() {
		t.Fatalf("first: %+v %v", first, err)
	}
	second, err := c.Once(ctx, ns, id, handler)
	if err != nil || second.Status != dedup.Duplicate || !second.ShouldAck() {
		t.Fatalf("second: %+v %v", second, err)
	}
	if want := fmt.Sprintf("receipt-%d", first.FencingToken); string(second.StoredResult) != want || calls != 1 {
		t.Fatalf("stored %q calls %d", second.StoredResult, calls)
	}
}

func TestOnceReleasesOnHandlerError(t *testing.T) {
	c, ctx, id := liveClient(t), context.Background(), freshID()
	boom := errors.New("downstream down")
	_, err := c.Once(ctx, ns, id, func(context.Context, *dedup.Lease) ([]byte, error) { return nil, boom })
	if !errors.Is(err, boom) {
		t.Fatalf("err %v", err)
	}
	if r, err := c.Inspect(ctx, ns, id); err != nil || r.State != dedup.StateAbsent {
		t.Fatalf("not released: %+v %v", r, err)
	}
	if o, err := c.Once(ctx, ns, id, func(context.Context, *dedup.Lease) ([]byte, error) { return nil, nil }); err != nil || o.Status != dedup.Processed {
		t.Fatalf("redelivery: %+v %v", o, err)
	}
}

func TestOnceInProgressAndConflictSkipTheHandler(t *testing.T) {
	c, ctx := liveClient(t), context.Background()
	ran := false
	handler := func(context.Context, *dedup.Lease) ([]byte, error) { ran = true; return nil, nil }
	held := freshID()
	if r, _ := c.Claim(ctx, ns, held, dedup.LeaseFor(time.Minute)); !r.Acquired() {
		t.Fatal("setup claim")
	}
	o, err := c.Once(ctx, ns, held, handler, dedup.OnceWait(0))
	if err != nil || o.Status != dedup.InProgress || o.Action() != dedup.Nack || o.RetryAfter <= 0 {
		t.Fatalf("in progress: %+v %v", o, err)
	}
	conflicting := freshID()
	if _, err := c.Check(ctx, ns, conflicting, dedup.Fingerprint([]byte("a"))); err != nil {
		t.Fatal(err)
	}
	o, err = c.Once(ctx, ns, conflicting, handler, dedup.OnceFingerprint([]byte("b")))
	if err != nil || o.Status != dedup.Conflict || o.Action() != dedup.DeadLetter || ran {
		t.Fatalf("conflict: %+v %v ran=%v", o, err, ran)
	}
}

func TestOnceRenewsTheLeaseWhileTheHandlerRuns(t *testing.T) {
	c, ctx, id := liveClient(t), context.Background(), freshID()
	o, err := c.Once(ctx, ns, id, func(ctx context.Context, _ *dedup.Lease) ([]byte, error) {
		first, _ := c.Inspect(ctx, ns, id)
		waitUntil(t, func() bool {
			now, _ := c.Inspect(ctx, ns, id)
			return now.LeaseExpires.After(first.LeaseExpires)
		})
		return nil, nil
	}, dedup.OnceLease(time.Second), dedup.OnceRenewEvery(50*time.Millisecond))
	if err != nil || o.Status != dedup.Processed {
		t.Fatalf("%+v %v", o, err)
	}
}

// An operator deletes the record under the holder: a renewal finds the lease
// gone and cancels the handler's ctx; the effect is done, so the helper
// re-claims (the record is absent) and commits: PROCESSED.
func TestOnceCancelsTheHandlerWhenTheLeaseIsLost(t *testing.T) {
	c, ctx, id := liveClient(t), context.Background(), freshID()
	var seen *dedup.Lease
	o, err := c.Once(ctx, ns, id, func(hctx context.Context, lease *dedup.Lease) ([]byte, error) {
		seen = lease
		if _, err := c.Forget(ctx, ns, id); err != nil {
			return nil, err
		}
		select {
		case <-hctx.Done():
		case <-time.After(5 * time.Second):
			t.Error("handler context not cancelled")
		}
		if !errors.Is(context.Cause(hctx), dedup.ErrLeaseLost) || !lease.Lost() {
			t.Errorf("cause %v lost %v", context.Cause(hctx), lease.Lost())
		}
		return []byte("done anyway"), nil
	}, dedup.OnceLease(5*time.Second), dedup.OnceRenewEvery(30*time.Millisecond))
	if err != nil || o.Status != dedup.Processed || o.FencingToken <= seen.Token() {
		t.Fatalf("%+v %v", o, err)
	}
	if r, _ := c.Claim(ctx, ns, id); r.Outcome != dedup.ClaimDuplicate || string(r.Result) != "done anyway" {
		t.Fatalf("not committed: %+v", r)
	}
}

func TestOnceLeaseLostToANewHolder(t *testing.T) {
	c, ctx, id := liveClient(t), context.Background(), freshID()
	var other uint64
	o, err := c.Once(ctx, ns, id, func(context.Context, *dedup.Lease) ([]byte, error) {
		if _, err := c.Forget(ctx, ns, id); err != nil {
			return nil, err
		}
		r, err := c.Claim(ctx, ns, id)
		other = r.FencingToken
		return nil, err
	})
	if err != nil || o.Status != dedup.LeaseLost || o.Action() != dedup.Ack || !o.ShouldAck() {
		t.Fatalf("%+v %v", o, err)
	}
	if r, err := c.Commit(ctx, ns, id, other); err != nil || r.Outcome != dedup.Committed {
		t.Fatalf("the new holder cannot commit: %+v %v", r, err)
	}
}

func TestLeaseEnsure(t *testing.T) {
	c, ctx, id := liveClient(t), context.Background(), freshID()
	o, err := c.Once(ctx, ns, id, func(hctx context.Context, lease *dedup.Lease) ([]byte, error) {
		if err := lease.Ensure(hctx); err != nil || lease.Lost() {
			t.Errorf("ensure on a live lease: %v lost=%v", err, lease.Lost())
		}
		waitUntil(t, func() bool { r, _ := c.Inspect(ctx, ns, id); return r.State == dedup.StateAbsent })
		if err := lease.Ensure(hctx); !errors.Is(err, dedup.ErrLeaseLost) || !lease.Lost() {
			t.Errorf("ensure after expiry: %v lost=%v", err, lease.Lost())
		}
		if !errors.Is(context.Cause(hctx), dedup.ErrLeaseLost) {
			t.Errorf("cause %v", context.Cause(hctx))
		}
		return nil, nil
	}, dedup.OnceLease(1500*time.Millisecond), dedup.OnceRenewEvery(time.Minute)) // no renewal: it expires
	if err != nil || o.Status != dedup.Processed { // re-claimed and committed
		t.Fatalf("%+v %v", o, err)
	}
}

// A handler paused past its lease whose own context has ended meanwhile (the
// caller's deadline): Ensure still says ErrLeaseLost, not the context's error,
// so `errors.Is(err, ErrLeaseLost)` catches a stale holder after SIGCONT.
func TestLeaseEnsureAfterExpiryWithAnEndedContext(t *testing.T) {
	c, ctx, id := liveClient(t), context.Background(), freshID()
	o, err := c.Once(ctx, ns, id, func(hctx context.Context, lease *dedup.Lease) ([]byte, error) {
		waitUntil(t, func() bool { r, _ := c.Inspect(ctx, ns, id); return r.State == dedup.StateAbsent })
		ended, cancel := context.WithCancel(hctx)
		cancel()
		if err := lease.Ensure(ended); !errors.Is(err, dedup.ErrLeaseLost) || !lease.Lost() {
			t.Errorf("ensure after expiry with an ended context: %v lost=%v", err, lease.Lost())
		}
		return nil, nil
	}, dedup.OnceLease(1500*time.Millisecond), dedup.OnceRenewEvery(time.Minute))
	if err != nil || o.Status != dedup.Processed {
		t.Fatalf("%+v %v", o, err)
	}
}

// A panicking handler: the heartbeat goroutine is stopped (deferred), the
// lease released, and the panic reaches the caller.
func TestOncePanickingHandlerLeaksNoGoroutine(t *testing.T) {
	c, ctx, id := liveClient(t), context.Background(), freshID()
	if _, err := c.Inspect(ctx, ns, freshID()); err != nil { // warm up the connection's goroutines
		t.Fatal(err)
	}
	if _, err := c.Check(ctx, ns, freshID()); err != nil { // and the stream's
		t.Fatal(err)
	}
	before := runtime.NumGoroutine()
	func() {
		defer func() {
			if r := recover(); r != "boom" {
				t.Errorf("recovered %v", r)
			}
		}()
		_, _ = c.Once(ctx, ns, id, func(context.Context, *dedup.Lease) ([]byte, error) {
			panic("boom")
		}, dedup.OnceRenewEvery(10*time.Millisecond))
	}()
	waitUntil(t, func() bool { return runtime.NumGoroutine() <= before })
	if r, err := c.Inspect(ctx, ns, id); err != nil || r.State != dedup.StateAbsent {
		t.Fatalf("not released: %+v %v", r, err)
	}
}

func TestOutcomeActions(t *testing.T) {
	for status, want := range map[dedup.Status]dedup.Action{
		dedup.Processed: dedup.Ack, dedup.Duplicate: dedup.Ack, dedup.LeaseLost: dedup.Ack,
		dedup.InProgress: dedup.Nack, dedup.Conflict: dedup.DeadLetter, "": dedup.Nack,
	} {
		o := dedup.Outcome{Status: status}
		if o.Action() != want || o.ShouldAck() != (want == dedup.Ack) {
			t.Errorf("%q: %s %v", status, o.Action(), o.ShouldAck())
		}
	}
}

// The live sidecar serves the stream: the default transport does not fall back to unary.
func TestLiveSidecarServesTheStream(t *testing.T) {
	c, ctx := liveClient(t), context.Background()
	if dedup.StreamInUse(c) {
		t.Fatal("stream open before the first call")
	}
	if _, err := c.Check(ctx, ns, freshID()); err != nil {
		t.Fatal(err)
	}
	if !dedup.StreamInUse(c) {
		t.Fatal("the Check did not travel over the stream")
	}
	unary, err := dedup.New(os.Getenv("DEDUP_TARGET"), dedup.WithTransport(dedup.TransportUnary))
	if err != nil {
		t.Fatal(err)
	}
	defer unary.Close()
	if _, err := unary.Check(ctx, ns, freshID()); err != nil || dedup.StreamInUse(unary) {
		t.Fatalf("unary: %v", err)
	}
}

// A wait_ms over the namespace's max_claim_wait (30 s by default) is
// INVALID_ARGUMENT however the Claim travels: alone, or coalesced with others
// into a ClaimBatch with answer_at_once (ADR 0018), which the sidecar validates
// item by item. The stream is held until all the Claims pend, so they are
// framed as one batch; the valid ones are ACQUIRED all the same (the refused
// batch is re-sent item by item).
func TestLiveWaitOverTheMaximumIsRefusedWhenCoalesced(t *testing.T) {
	c := liveClient(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute) // both waits fit the deadline: stream
	defer cancel()
	if _, err := c.Check(ctx, ns, freshID()); err != nil || !dedup.StreamInUse(c) { // the stream is open
		t.Fatalf("no stream: %v", err)
	}
	const n = 16
	var released sync.Once
	hold := dedup.HoldStream(c)
	release := func() { released.Do(hold) }
	defer release()
	errs := make([]error, n)
	acquired := make([]bool, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			wait := 5 * time.Second
			if i%2 == 0 {
				wait = 40 * time.Second // over max_claim_wait
			}
			r, err := c.Claim(ctx, ns, freshID(), dedup.Wait(wait))
			errs[i], acquired[i] = err, r.Acquired()
		}()
	}
	waitUntil(t, func() bool { return dedup.QueuedOnStream(c) == n })
	release()
	wg.Wait()
	for i := range n {
		if i%2 == 1 {
			if errs[i] != nil || !acquired[i] {
				t.Fatalf("claim %d (wait 5 s): want ACQUIRED, got %v", i, errs[i])
			}
			continue
		}
		var e *dedup.Error
		if !errors.As(errs[i], &e) || e.Code != codes.InvalidArgument || len(e.FieldViolations) == 0 ||
			e.FieldViolations[0].Field != "wait_ms" {
			t.Fatalf("claim %d (wait 40 s): want INVALID_ARGUMENT on wait_ms, got %v", i, errs[i])
		}
	}
}

func TestUnixSocketTarget(t *testing.T) {
	requireHarness(t)
	target := os.Getenv("DEDUP_UNIX_TARGET")
	if target == "" {
		t.Skip("DEDUP_UNIX_TARGET not set")
	}
	for _, tgt := range []string{target, strings.TrimPrefix(target, "unix:")} { // unix:/path and a bare path
		c, err := dedup.New(tgt)
		if err != nil {
			t.Fatal(err)
		}
		r, err := c.Claim(context.Background(), ns, freshID())
		_ = c.Close()
		if err != nil || !r.Acquired() {
			t.Fatalf("%s: %+v %v", tgt, r, err)
		}
	}
}
