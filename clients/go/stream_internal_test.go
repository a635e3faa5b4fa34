package dedup

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/dedup-sidecar/dedup/clients/go/dedupv1"
)

// The stream transport against a scripted stream (no network): the test plays
// the sidecar's side message by message, so coalescing, late answers and
// broken streams are deterministic.

type fakeStream struct {
	grpc.ClientStream // not used by the client
	ctx               context.Context
	sent              chan *pb.StreamRequest
	recv              chan *pb.StreamResponse
	end               chan error
	holdFirst         atomic.Bool
	release           chan struct{}
}

func (f *fakeStream) Send(m *pb.StreamRequest) error {
	select {
	case f.sent <- m:
	case <-f.ctx.Done():
		return io.EOF
	}
	if f.holdFirst.CompareAndSwap(true, false) {
		<-f.release
	}
	return nil
}

func (f *fakeStream) Recv() (*pb.StreamResponse, error) {
	select {
	case r := <-f.recv:
		return r, nil
	case err := <-f.end:
		return nil, err
	case <-f.ctx.Done():
		return nil, status.FromContextError(f.ctx.Err()).Err()
	}
}

// fakeStub opens fakeStreams; the test reads streams[i].sent and writes .recv.
type fakeStub struct {
	pb.DedupClient // unary calls are not used by these tests
	mu             sync.Mutex
	streams        []*fakeStream
	opened         chan *fakeStream
	holdFirst      bool
}

func (s *fakeStub) Stream(ctx context.Context, _ ...grpc.CallOption) (pb.Dedup_StreamClient, error) {
	f := &fakeStream{ctx: ctx, sent: make(chan *pb.StreamRequest, 100), recv: make(chan *pb.StreamResponse, 100),
		end: make(chan error, 1), release: make(chan struct{})}
	f.holdFirst.Store(s.holdFirst)
	s.mu.Lock()
	s.streams = append(s.streams, f)
	s.mu.Unlock()
	s.opened <- f
	return f, nil
}

func fakeClient(t *testing.T, holdFirst bool) (*Client, *fakeStub) {
	stub := &fakeStub{opened: make(chan *fakeStream, 10), holdFirst: holdFirst}
	c := &Client{stub: stub, cfg: config{timeout: 5 * time.Second,
		retry: RetryPolicy{MaxAttempts: 4, InitialBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond}}}
	c.stream = newStreamer(c)
	t.Cleanup(func() {
		c.stream.close()
		c.stream.wait()
	})
	return c, stub
}

func next[T any](t *testing.T, ch chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(5 * time.Second):
		t.Fatal("nothing arrived in time")
	}
	var zero T
	return zero
}

func bounded(t *testing.T, cond func() bool) {
	t.Helper()
	limit := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(limit) {
			t.Fatal("condition not met in time")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (s *streamer) queued() int {
	s.mu.Lock()
	sess := s.current
	s.mu.Unlock()
	if sess == nil {
		return 0
	}
	sess.mu.Lock()
	defer sess.mu.Unlock()
	return len(sess.queue)
}

// Calls of a kind that pend together become one batch message; a waiting
// Claim alone (the only Claim) keeps its wait_ms; answers reach their callers by correlation id, in any order.
func TestStreamCoalescesPendingCalls(t *testing.T) {
	c, stub := fakeClient(t, true)
	ctx := context.Background()
	type answer struct {
		who string
		got string
		err error
	}
	answers := make(chan answer, 20)
	check := func(id string) {
		r, err := c.Check(ctx, "ns", []byte(id))
		answers <- answer{"check " + id, string(r.Outcome), err}
	}
	go check("first") // sent alone; its Send blocks until released
	f := next(t, stub.opened)
	first := next(t, f.sent)
	for i := range 5 {
		go check(fmt.Sprint("c", i))
	}
	for i := range 2 {
		go func() {
			r, err := c.Commit(ctx, "ns", []byte(fmt.Sprint("m", i)), uint64(10+i))
			answers <- answer{fmt.Sprint("commit m", i), string(r.Outcome), err}
		}()
	}
	go func() {
		r, err := c.Claim(ctx, "ns", []byte("waiting"), Wait(time.Second))
		answers <- answer{"claim waiting", string(r.Outcome), err}
	}()
	bounded(t, func() bool { return c.stream.queued() == 8 })
	close(f.release)

	msgs := []*pb.StreamRequest{first}
	for range 3 { // CheckBatch(5), CommitBatch(2), the waiting Claim
		msgs = append(msgs, next(t, f.sent))
	}
	kinds := map[string]int{}
	for i := len(msgs) - 1; i >= 0; i-- { // answer in reverse order
		m := msgs[i]
		resp := &pb.StreamResponse{CorrelationId: m.GetCorrelationId()}
		switch r := m.GetRequest().(type) {
		case *pb.StreamRequest_Check:
			kinds["check"]++
			resp.Response = &pb.StreamResponse_Check{Check: &pb.CheckResponse{Outcome: pb.CheckOutcome_CHECK_OUTCOME_NEW}}
		case *pb.StreamRequest_CheckBatch:
			kinds[fmt.Sprint("check_batch ", len(r.CheckBatch.GetItems()))]++
			out := &pb.CheckBatchResponse{}
			for _, it := range r.CheckBatch.GetItems() { // each item's answer names its id's parity
				o := pb.CheckOutcome_CHECK_OUTCOME_NEW
				if it.GetId()[1]%2 == 1 {
					o = pb.CheckOutcome_CHECK_OUTCOME_DUPLICATE
				}
				out.Results = append(out.Results, &pb.CheckResponse{Outcome: o})
			}
			resp.Response = &pb.StreamResponse_CheckBatch{CheckBatch: out}
		case *pb.StreamRequest_CommitBatch:
			kinds[fmt.Sprint("commit_batch ", len(r.CommitBatch.GetItems()))]++
			out := &pb.CommitBatchResponse{}
			for _, it := range r.CommitBatch.GetItems() {
				o := pb.CommitOutcome_COMMIT_OUTCOME_COMMITTED
				if it.GetFencingToken() == 11 {
					o = pb.CommitOutcome_COMMIT_OUTCOME_LEASE_LOST
				}
				out.Results = append(out.Results, &pb.CommitResponse{Outcome: o})
			}
			resp.Response = &pb.StreamResponse_CommitBatch{CommitBatch: out}
		case *pb.StreamRequest_Claim:
			kinds["claim"]++
			if r.Claim.GetWaitMs() != 1000 {
				t.Errorf("wait_ms %d", r.Claim.GetWaitMs())
			}
			resp.Response = &pb.StreamResponse_Claim{Claim: &pb.ClaimResponse{Outcome: pb.ClaimOutcome_CLAIM_OUTCOME_IN_PROGRESS}}
		default:
			t.Fatalf("unexpected message %T", r)
		}
		f.recv <- resp
	}
	want := map[string]int{"check": 1, "check_batch 5": 1, "commit_batch 2": 1, "claim": 1}
	if fmt.Sprint(kinds) != fmt.Sprint(want) {
		t.Fatalf("messages %v, want %v", kinds, want)
	}
	got := map[string]string{}
	for range 9 {
		a := next(t, answers)
		if a.err != nil {
			t.Fatalf("%s: %v", a.who, a.err)
		}
		got[a.who] = a.got
	}
	wantAnswers := map[string]string{"check first": "NEW", "check c0": "NEW", "check c1": "DUPLICATE", "check c2": "NEW",
		"check c3": "DUPLICATE", "check c4": "NEW", "commit m0": "COMMITTED", "commit m1": "LEASE_LOST", "claim waiting": "IN_PROGRESS"}
	if fmt.Sprint(got) != fmt.Sprint(wantAnswers) {
		t.Fatalf("answers %v\nwant %v", got, wantAnswers)
	}
}

// A Claim whose caller gave up (cancellation, or its deadline) and that is answered ACQUIRED later
// is released by the client, so the id is not blocked for a whole lease.
func TestStreamLateAcquiredIsReleased(t *testing.T) {
	c, stub := fakeClient(t, false)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := c.Claim(ctx, "ns", []byte("late"))
		done <- err
	}()
	f := next(t, stub.opened)
	claim := next(t, f.sent)
	cancel() // the caller gives up (as at its deadline) before the answer comes
	if err := next(t, done); Code(err) != codes.Canceled {
		t.Fatalf("want CANCELED, got %v", err)
	}
	f.recv <- &pb.StreamResponse{CorrelationId: claim.GetCorrelationId(), Response: &pb.StreamResponse_Claim{
		Claim: &pb.ClaimResponse{Outcome: pb.ClaimOutcome_CLAIM_OUTCOME_ACQUIRED, FencingToken: 42}}}
	release := next(t, f.sent).GetRelease()
	if release == nil || release.GetFencingToken() != 42 || string(release.GetId()) != "late" {
		t.Fatalf("no release of the abandoned claim: %v", release)
	}
}

// A broken stream fails the calls in flight with UNAVAILABLE; retry-safe
// verbs are retried on a new stream, Check is not.
func TestStreamBrokenRetriesClaimButNotCheck(t *testing.T) {
	c, stub := fakeClient(t, false)
	ctx := context.Background()
	claimed := make(chan ClaimResult, 1)
	go func() {
		r, err := c.Claim(ctx, "ns", []byte("id"))
		if err != nil {
			t.Error(err)
		}
		claimed <- r
	}()
	f1 := next(t, stub.opened)
	next(t, f1.sent)
	f1.end <- status.Error(codes.Unavailable, "connection reset")
	f2 := next(t, stub.opened)
	again := next(t, f2.sent)
	f2.recv <- &pb.StreamResponse{CorrelationId: again.GetCorrelationId(), Response: &pb.StreamResponse_Claim{
		Claim: &pb.ClaimResponse{Outcome: pb.ClaimOutcome_CLAIM_OUTCOME_ACQUIRED, FencingToken: 5}}}
	if r := next(t, claimed); r.FencingToken != 5 {
		t.Fatalf("claim %+v", r)
	}

	checked := make(chan error, 1)
	go func() {
		_, err := c.Check(ctx, "ns", []byte("id"))
		checked <- err
	}()
	next(t, f2.sent)
	f2.end <- errors.New("transport is closing")
	if err := next(t, checked); Code(err) != codes.Unavailable {
		t.Fatalf("check: want UNAVAILABLE, got %v", err)
	}
	select {
	case f := <-stub.opened:
		t.Fatalf("a Check was retried on a new stream: %v", f)
	case <-time.After(50 * time.Millisecond):
	}
}

// Stream errors are the errors unary calls raise; a batch rejected as a
// whole (validation) is sent again call by call, so one bad call does not
// fail the others.
func TestStreamErrorsMapLikeUnaryAndBadCallsDoNotSinkABatch(t *testing.T) {
	c, stub := fakeClient(t, true)
	ctx := context.Background()
	errs := make(chan error, 10)
	go func() { _, err := c.Check(ctx, "ns", []byte("first")); errs <- err }()
	f := next(t, stub.opened)
	first := next(t, f.sent)
	for _, id := range []string{"good", "bad"} {
		go func() { _, err := c.Check(ctx, "ns", []byte(id)); errs <- err }()
	}
	bounded(t, func() bool { return c.stream.queued() == 2 })
	close(f.release)
	f.recv <- &pb.StreamResponse{CorrelationId: first.GetCorrelationId(), Response: &pb.StreamResponse_Check{
		Check: &pb.CheckResponse{Outcome: pb.CheckOutcome_CHECK_OUTCOME_NEW}}}
	batch := next(t, f.sent)
	if n := len(batch.GetCheckBatch().GetItems()); n != 2 {
		t.Fatalf("want a CheckBatch of 2, got %v", batch)
	}
	violation := func(field string) *pb.ItemError {
		return &pb.ItemError{Code: int32(codes.InvalidArgument), Message: "bad id",
			FieldViolations: []*pb.FieldViolation{{Field: field, Description: "not allowed"}}}
	}
	f.recv <- &pb.StreamResponse{CorrelationId: batch.GetCorrelationId(),
		Response: &pb.StreamResponse_Error{Error: violation("items[1].id")}}
	for range 2 {
		m := next(t, f.sent)
		resp := &pb.StreamResponse{CorrelationId: m.GetCorrelationId()}
		if string(m.GetCheck().GetId()) == "bad" {
			resp.Response = &pb.StreamResponse_Error{Error: violation("id")}
		} else {
			resp.Response = &pb.StreamResponse_Check{Check: &pb.CheckResponse{Outcome: pb.CheckOutcome_CHECK_OUTCOME_NEW}}
		}
		f.recv <- resp
	}
	var bad *Error
	good := 0
	for range 3 {
		err := next(t, errs)
		if err == nil {
			good++
		} else if !errors.As(err, &bad) {
			t.Fatalf("not a *Error: %v", err)
		}
	}
	if good != 2 || bad == nil || bad.Code != codes.InvalidArgument || len(bad.FieldViolations) != 1 || bad.FieldViolations[0].Field != "id" {
		t.Fatalf("good %d, bad %+v", good, bad)
	}
}

// A stream the sidecar does not implement: the calls go unary (nothing was processed).
func TestStreamUnimplementedFallsBack(t *testing.T) {
	c, stub := fakeClient(t, false)
	unary := &unaryCheck{fakeStub: stub}
	c.stub = unary
	done := make(chan error, 1)
	go func() { _, err := c.Check(context.Background(), "ns", []byte("id")); done <- err }()
	f := next(t, stub.opened)
	next(t, f.sent)
	f.end <- status.Error(codes.Unimplemented, "unknown method Stream")
	if err := next(t, done); err != nil || unary.calls.Load() != 1 {
		t.Fatalf("fallback: %v, unary calls %d", err, unary.calls.Load())
	}
	if _, err := c.Check(context.Background(), "ns", []byte("id2")); err != nil || unary.calls.Load() != 2 {
		t.Fatalf("second call: %v, unary calls %d", err, unary.calls.Load())
	}
}

type unaryCheck struct {
	*fakeStub
	calls atomic.Int32
}

func (u *unaryCheck) Check(context.Context, *pb.CheckRequest, ...grpc.CallOption) (*pb.CheckResponse, error) {
	u.calls.Add(1)
	return &pb.CheckResponse{Outcome: pb.CheckOutcome_CHECK_OUTCOME_NEW}, nil
}

// Each call keeps its own deadline on the shared stream: an unanswered call
// fails with DEADLINE_EXCEEDED and the stream goes on serving the others.
func TestStreamPerCallDeadline(t *testing.T) {
	c, stub := fakeClient(t, false)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := c.Check(ctx, "ns", []byte("never answered")); Code(err) != codes.DeadlineExceeded {
		t.Fatalf("want DEADLINE_EXCEEDED, got %v", err)
	}
	f := next(t, stub.opened)
	done := make(chan error, 1)
	go func() { _, err := c.Check(context.Background(), "ns", []byte("answered")); done <- err }()
	for {
		m := next(t, f.sent)
		if string(m.GetCheck().GetId()) == "answered" {
			f.recv <- &pb.StreamResponse{CorrelationId: m.GetCorrelationId(), Response: &pb.StreamResponse_Check{
				Check: &pb.CheckResponse{Outcome: pb.CheckOutcome_CHECK_OUTCOME_NEW}}}
			break
		}
	}
	if err := next(t, done); err != nil {
		t.Fatal(err)
	}
	if len(stub.opened) != 0 {
		t.Fatal("a second stream was opened")
	}
}

// Waiting Claims pending together go out in two steps (ADR 0018): one
// ClaimBatch per namespace with answer_at_once, every item with its wait_ms as
// asked (the sidecar validates it but lets nothing wait); then each waiting
// call answered IN_PROGRESS goes again alone with the rest of its wait, while
// every other answer (an IN_PROGRESS of a call that did not wait among them)
// is delivered as it came. A waiting Claim alone in its namespace keeps its wait_ms.
func TestStreamCoalescesWaitingClaimsThenWaitsAlone(t *testing.T) {
	c, stub := fakeClient(t, true)
	ctx := context.Background()
	type answer struct {
		id  string
		got ClaimOutcome
		err error
	}
	answers := make(chan answer, 10)
	claim := func(ctx context.Context, ns, id string, opts ...CallOption) {
		r, err := c.Claim(ctx, ns, []byte(id), opts...)
		answers <- answer{id, r.Outcome, err}
	}
	go func() { _, _ = c.Check(ctx, "ns", []byte("first")) }() // its Send blocks until released
	f := next(t, stub.opened)
	first := next(t, f.sent)
	gaveUp, giveUp := context.WithCancel(ctx)
	defer giveUp()
	go claim(ctx, "ns", "held", Wait(2*time.Second))
	go claim(ctx, "ns", "free", Wait(2*time.Second))
	go claim(ctx, "ns", "busy", Wait(time.Millisecond)) // its wait is over when the batch answers
	go claim(ctx, "ns", "nowait")
	go claim(gaveUp, "ns", "abandoned", Wait(2*time.Second))
	go claim(ctx, "other", "alone", Wait(2*time.Second))
	bounded(t, func() bool { return c.stream.queued() == 6 })
	close(f.release)
	f.recv <- &pb.StreamResponse{CorrelationId: first.GetCorrelationId(), Response: &pb.StreamResponse_Check{
		Check: &pb.CheckResponse{Outcome: pb.CheckOutcome_CHECK_OUTCOME_NEW}}}

	var batch, alone *pb.StreamRequest
	for range 2 {
		m := next(t, f.sent)
		if m.GetClaimBatch() != nil {
			batch = m
		} else {
			alone = m
		}
	}
	sentAt := time.Now()
	if alone.GetClaim().GetNamespace() != "other" || alone.GetClaim().GetWaitMs() != 2000 {
		t.Fatalf("the Claim alone in its namespace: want wait_ms 2000 alone, got %v", alone)
	}
	items := batch.GetClaimBatch().GetItems()
	if len(items) != 5 || !batch.GetClaimBatch().GetAnswerAtOnce() {
		t.Fatalf("want one ClaimBatch of the 5 Claims of ns with answer_at_once, got %v", batch)
	}
	asked := map[string]int64{"held": 2000, "free": 2000, "busy": 1, "nowait": 0, "abandoned": 2000}
	results := &pb.ClaimBatchResponse{}
	for _, it := range items {
		if it.GetWaitMs() != asked[string(it.GetId())] || it.GetNamespace() != "ns" {
			t.Fatalf("batch item %v: want wait_ms %d as asked", it, asked[string(it.GetId())])
		}
		// As the sidecar does with answer_at_once: nothing waits, an id held elsewhere is IN_PROGRESS.
		o := pb.ClaimOutcome_CLAIM_OUTCOME_IN_PROGRESS
		if string(it.GetId()) == "free" {
			o = pb.ClaimOutcome_CLAIM_OUTCOME_ACQUIRED
		}
		results.Results = append(results.Results, &pb.ClaimResponse{Outcome: o})
	}
	giveUp() // a caller gives up before the batch answers: it is not sent again
	if a := next(t, answers); a.id != "abandoned" || Code(a.err) != codes.Canceled {
		t.Fatalf("want the abandoned Claim CANCELED, got %+v", a)
	}
	bounded(t, func() bool { return time.Since(sentAt) > 5*time.Millisecond }) // "busy"'s 1 ms wait is over
	f.recv <- &pb.StreamResponse{CorrelationId: batch.GetCorrelationId(),
		Response: &pb.StreamResponse_ClaimBatch{ClaimBatch: results}}

	got := map[string]string{}
	for range 3 { // free, busy, nowait; held waits on
		a := next(t, answers)
		got[a.id] = fmt.Sprint(a.got, " ", Code(a.err))
	}
	want := map[string]string{"free": "ACQUIRED OK", "busy": "IN_PROGRESS OK", "nowait": "IN_PROGRESS OK"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("answers %v\nwant %v", got, want)
	}

	again := next(t, f.sent)
	if string(again.GetClaim().GetId()) != "held" {
		t.Fatalf("want the held Claim sent again alone, got %v", again)
	}
	if w := again.GetClaim().GetWaitMs(); w <= 0 || w > 2000 {
		t.Fatalf("sent again with wait_ms %d, want the rest of 2000", w)
	}
	go func() { _, _ = c.Check(ctx, "ns", []byte("probe")) }()
	if probe := next(t, f.sent); string(probe.GetCheck().GetId()) != "probe" {
		t.Fatalf("only the held Claim is sent again; then came %v", probe)
	}
	f.recv <- &pb.StreamResponse{CorrelationId: again.GetCorrelationId(), Response: &pb.StreamResponse_Claim{
		Claim: &pb.ClaimResponse{Outcome: pb.ClaimOutcome_CLAIM_OUTCOME_DUPLICATE}}}
	f.recv <- &pb.StreamResponse{CorrelationId: alone.GetCorrelationId(), Response: &pb.StreamResponse_Claim{
		Claim: &pb.ClaimResponse{Outcome: pb.ClaimOutcome_CLAIM_OUTCOME_ACQUIRED}}}
	got = map[string]string{}
	for range 2 {
		a := next(t, answers)
		got[a.id] = fmt.Sprint(a.got, " ", Code(a.err))
	}
	if want := map[string]string{"held": "DUPLICATE OK", "alone": "ACQUIRED OK"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("answers %v\nwant %v", got, want)
	}
}

// unaryStub answers ClaimBatch and records what it was sent.
type unaryStub struct {
	pb.DedupClient // other calls are not used
	got            chan *pb.ClaimBatchRequest
}

func (s *unaryStub) ClaimBatch(_ context.Context, in *pb.ClaimBatchRequest, _ ...grpc.CallOption) (*pb.ClaimBatchResponse, error) {
	s.got <- in
	out := &pb.ClaimBatchResponse{}
	for range in.GetItems() {
		out.Results = append(out.Results, &pb.ClaimResponse{Outcome: pb.ClaimOutcome_CLAIM_OUTCOME_ACQUIRED})
	}
	return out, nil
}

// An explicit ClaimBatch of the API (unary) lets its items wait: answer_at_once
// is only for the batches the stream coalesces (ADR 0018).
func TestExplicitClaimBatchDoesNotAnswerAtOnce(t *testing.T) {
	stub := &unaryStub{got: make(chan *pb.ClaimBatchRequest, 1)}
	c := &Client{stub: stub, cfg: config{timeout: 5 * time.Second}}
	items := []ClaimItem{{ID: []byte("a"), Wait: 2 * time.Second}, {ID: []byte("b")}}
	if _, err := c.ClaimBatch(context.Background(), "ns", items); err != nil {
		t.Fatal(err)
	}
	req := next(t, stub.got)
	if req.GetAnswerAtOnce() || req.GetItems()[0].GetWaitMs() != 2000 || req.GetItems()[1].GetWaitMs() != 0 {
		t.Fatalf("want answer_at_once false and wait_ms as asked, got %v", req)
	}
}
