package dedup

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	pb "github.com/dedup-sidecar/dedup/clients/go/dedupv1"
)

// The stream transport (docs/adr/0013-helper-rules.md, docs/adr/0015-go-client-transport-and-helper.md):
// one long-lived Stream per client, opened lazily, carrying Check, Claim,
// Commit, Release and Renew with a correlation id each. Calls of a kind that
// are pending at the same moment are sent as one batch message; waiting Claims
// are coalesced in two steps (docs/adr/0018-coalesced-waiting-claims.md).

// streamKind is the stream message a verb travels as (kindNone: unary only).
type streamKind int

const (
	kindNone streamKind = iota
	kindCheck
	kindClaim
	kindCommit
	kindRelease
	kindRenew
)

// maxCoalesce is the most calls coalesced into one batch message.
const maxCoalesce = 100

// errStreamUnimplemented: the sidecar has no Stream; the call goes unary.
var errStreamUnimplemented = errors.New("dedup: the sidecar does not implement Stream")

const (
	callPending int32 = iota
	callSettled
	callAbandoned
)

// streamCall is one caller's request on the stream.
type streamCall struct {
	kind   streamKind
	req    any  // *pb.CheckRequest, *pb.ClaimRequest, ...: what goes out (never the caller's object changed)
	single bool // sent on its own, never coalesced (again)
	// waitFirst: a waiting Claim sent in a ClaimBatch with answer_at_once (ADR 0018);
	// an IN_PROGRESS answer sends it again alone with the rest of its wait.
	waitFirst bool
	sentAt    time.Time // when the message carrying it was sent
	done      chan struct{}
	resp      any
	err       error
	state     atomic.Int32
}

// settle hands the caller its answer, unless it gave up; then it reports false.
func (c *streamCall) settle(resp any, err error) bool {
	if !c.state.CompareAndSwap(callPending, callSettled) {
		return false
	}
	c.resp, c.err = resp, err
	close(c.done)
	return true
}

// abandon marks the call given up (deadline or cancellation); false if it was answered first.
func (c *streamCall) abandon() bool { return c.state.CompareAndSwap(callPending, callAbandoned) }

type streamer struct {
	c             *Client
	lifetime      context.Context
	stop          context.CancelFunc
	mu            sync.Mutex
	current       *session
	unimplemented atomic.Bool
	wg            sync.WaitGroup
	// hold, when set (tests only, export_test.go), keeps the sender from
	// framing queued calls until it is closed, so calls can pend together.
	hold atomic.Pointer[chan struct{}]
}

func newStreamer(c *Client) *streamer {
	lifetime, stop := context.WithCancel(context.Background())
	return &streamer{c: c, lifetime: lifetime, stop: stop}
}

func (s *streamer) close() {
	s.stop()
	s.mu.Lock()
	sess := s.current
	s.mu.Unlock()
	if sess != nil {
		sess.fail(status.Error(codes.Canceled, "dedup: client closed"))
	}
}

func (s *streamer) wait() { s.wg.Wait() }

// session is one opened (or opening) Stream.
type session struct {
	s      *streamer
	ready  chan struct{} // closed once opened or failed to open
	stream pb.Dedup_StreamClient
	cancel context.CancelFunc

	mu       sync.Mutex
	queue    []*streamCall
	inflight map[uint64][]*streamCall
	nextID   uint64
	broken   error
	dead     chan struct{}
	wake     chan struct{}
}

// session returns the live session, opening a new one when there is none.
func (s *streamer) session() (*session, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lifetime.Err() != nil {
		return nil, status.Error(codes.Canceled, "dedup: client closed")
	}
	if s.current != nil && !s.current.isBroken() {
		return s.current, nil
	}
	ctx, cancel := context.WithCancel(s.lifetime)
	if len(s.c.cfg.metadata) > 0 {
		ctx = metadata.AppendToOutgoingContext(ctx, s.c.cfg.metadata...)
	}
	sess := &session{
		s: s, ready: make(chan struct{}), cancel: cancel, inflight: map[uint64][]*streamCall{},
		dead: make(chan struct{}), wake: make(chan struct{}, 1),
	}
	s.current = sess
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		sess.open(ctx)
	}()
	return sess, nil
}

// open opens the Stream (it may block while the connection is being made:
// callers wait for it under their own deadlines), then runs the sender and
// the receiver until the stream breaks.
func (sess *session) open(ctx context.Context) {
	stream, err := sess.s.c.stub.Stream(ctx)
	if err != nil {
		sess.fail(sess.s.brokenErr(err))
		close(sess.ready)
		return
	}
	sess.stream = stream
	close(sess.ready)
	sess.s.wg.Add(1)
	go func() {
		defer sess.s.wg.Done()
		sess.send()
	}()
	sess.receive()
}

// brokenErr is what calls in flight get when the stream ends with err.
func (s *streamer) brokenErr(err error) error {
	code := status.Code(err)
	switch {
	case code == codes.Unimplemented:
		s.unimplemented.Store(true)
		return errStreamUnimplemented
	case s.lifetime.Err() != nil:
		return status.Error(codes.Canceled, "dedup: client closed")
	case code == codes.Unauthenticated || code == codes.PermissionDenied:
		return err
	}
	return status.Errorf(codes.Unavailable, "dedup: stream broken: %v", err)
}

func (sess *session) isBroken() bool {
	sess.mu.Lock()
	defer sess.mu.Unlock()
	return sess.broken != nil
}

// fail ends the session: every queued and in-flight call gets err.
func (sess *session) fail(err error) {
	sess.mu.Lock()
	if sess.broken != nil {
		sess.mu.Unlock()
		return
	}
	sess.broken = err
	close(sess.dead)
	calls := sess.queue
	sess.queue = nil
	for _, cs := range sess.inflight {
		calls = append(calls, cs...)
	}
	sess.inflight = nil
	sess.mu.Unlock()
	sess.cancel()
	for _, c := range calls {
		c.settle(nil, err)
	}
}

// enqueue hands a call to the sender; false if the session is already broken.
func (sess *session) enqueue(calls ...*streamCall) bool {
	sess.mu.Lock()
	if sess.broken != nil {
		sess.mu.Unlock()
		return false
	}
	sess.queue = append(sess.queue, calls...)
	sess.mu.Unlock()
	select {
	case sess.wake <- struct{}{}:
	default:
	}
	return true
}

// call sends req and waits for its answer, its deadline or cancellation.
func (s *streamer) call(ctx context.Context, kind streamKind, req any) (any, error) {
	if s.unimplemented.Load() {
		return nil, errStreamUnimplemented
	}
	c := &streamCall{kind: kind, req: req, done: make(chan struct{})}
	for tries := 0; ; tries++ {
		sess, err := s.session()
		if err != nil {
			return nil, err
		}
		select {
		case <-sess.ready:
		case <-ctx.Done():
			return nil, ctxError(ctx)
		}
		if sess.enqueue(c) {
			break
		}
		sess.mu.Lock()
		broken := sess.broken
		sess.mu.Unlock()
		if tries >= 1 || errors.Is(broken, errStreamUnimplemented) {
			return nil, broken // nothing was sent: safe for every verb
		}
	}
	select {
	case <-c.done:
		return c.resp, c.err
	case <-ctx.Done():
		if c.abandon() {
			return nil, ctxError(ctx)
		}
		<-c.done // answered at the same moment
		return c.resp, c.err
	}
}

func ctxError(ctx context.Context) error {
	return status.FromContextError(ctx.Err()).Err()
}

// outgoing is one stream message and the calls it answers.
type outgoing struct {
	calls []*streamCall
	batch bool
	req   *pb.StreamRequest
}

// send drains the queue whenever calls arrive; calls queued while a Send
// blocks are coalesced into batch messages.
func (sess *session) send() {
	for {
		select {
		case <-sess.wake:
		case <-sess.dead:
			return
		}
		if hold := sess.s.hold.Load(); hold != nil {
			select {
			case <-*hold:
			case <-sess.dead:
				return
			}
		}
		sess.mu.Lock()
		queue := sess.queue
		sess.queue = nil
		sess.mu.Unlock()
		msgs := coalesce(queue)
		for i, m := range msgs {
			sess.mu.Lock()
			if broken := sess.broken; broken != nil {
				sess.mu.Unlock()
				settleAll(msgs[i:], broken) // taken off the queue, not yet in flight
				return
			}
			if m.batch && m.calls[0].kind == kindClaim {
				now := time.Now() // set before the receiver can see the calls
				for _, c := range m.calls {
					c.sentAt = now
				}
			}
			sess.nextID++
			m.req.CorrelationId = sess.nextID
			sess.inflight[sess.nextID] = m.calls
			sess.mu.Unlock()
			if err := sess.stream.Send(m.req); err != nil {
				// The stream ended; its status comes from Recv, and the
				// receiver's fail() settles everything in flight with it.
				sess.park(msgs[i+1:])
				return
			}
		}
	}
}

// park puts unsent messages' calls among those in flight, for fail() to settle.
func (sess *session) park(msgs []outgoing) {
	sess.mu.Lock()
	broken := sess.broken
	if broken == nil {
		for _, m := range msgs {
			sess.nextID++
			sess.inflight[sess.nextID] = m.calls
		}
	}
	sess.mu.Unlock()
	if broken != nil {
		settleAll(msgs, broken)
	}
}

func settleAll(msgs []outgoing, err error) {
	for _, m := range msgs {
		for _, c := range m.calls {
			c.settle(nil, err)
		}
	}
}

// batchKey groups the calls that may share a batch message: Checks, Commits,
// and Claims of one namespace (ADR 0018).
type batchKey struct {
	kind      streamKind
	namespace string
}

// coalesce turns queued calls into messages: single Check, Claim and Commit
// calls pending together become batches of up to maxCoalesce (Claims per
// namespace). A Claim batch is sent with answer_at_once (no item waits; each
// keeps its wait_ms, which the sidecar validates), and its waiting Claims
// answered IN_PROGRESS are sent again alone with the rest of their wait
// (deliver); a Claim alone goes with its own wait_ms (ADR 0018). Abandoned
// calls are not sent.
func coalesce(queue []*streamCall) []outgoing {
	var out []outgoing
	groups := map[batchKey][]*streamCall{}
	var order []batchKey
	for _, c := range queue {
		if c.state.Load() != callPending {
			continue
		}
		batchable := !c.single && (c.kind == kindCheck || c.kind == kindCommit || c.kind == kindClaim)
		if !batchable {
			out = append(out, single(c))
			continue
		}
		key := batchKey{kind: c.kind}
		if c.kind == kindClaim {
			key.namespace = c.req.(*pb.ClaimRequest).GetNamespace()
		}
		if _, ok := groups[key]; !ok {
			order = append(order, key)
		}
		groups[key] = append(groups[key], c)
	}
	for _, key := range order {
		calls := groups[key]
		for len(calls) > 0 {
			n := min(len(calls), maxCoalesce)
			chunk := calls[:n]
			calls = calls[n:]
			if n == 1 {
				out = append(out, single(chunk[0]))
				continue
			}
			out = append(out, batchOf(key.kind, chunk))
		}
	}
	return out
}

func single(c *streamCall) outgoing {
	c.waitFirst = false
	req := &pb.StreamRequest{}
	switch r := c.req.(type) {
	case *pb.CheckRequest:
		req.Request = &pb.StreamRequest_Check{Check: r}
	case *pb.ClaimRequest:
		req.Request = &pb.StreamRequest_Claim{Claim: r}
	case *pb.CommitRequest:
		req.Request = &pb.StreamRequest_Commit{Commit: r}
	case *pb.ReleaseRequest:
		req.Request = &pb.StreamRequest_Release{Release: r}
	case *pb.RenewRequest:
		req.Request = &pb.StreamRequest_Renew{Renew: r}
	}
	return outgoing{calls: []*streamCall{c}, req: req}
}

func batchOf(kind streamKind, calls []*streamCall) outgoing {
	req := &pb.StreamRequest{}
	switch kind {
	case kindCheck:
		b := &pb.CheckBatchRequest{}
		for _, c := range calls {
			b.Items = append(b.Items, c.req.(*pb.CheckRequest))
		}
		req.Request = &pb.StreamRequest_CheckBatch{CheckBatch: b}
	case kindClaim:
		// answer_at_once: nothing in the batch waits, but each item goes with
		// its wait_ms as asked, which the sidecar validates (ADR 0018).
		b := &pb.ClaimBatchRequest{AnswerAtOnce: true}
		for _, c := range calls {
			item := c.req.(*pb.ClaimRequest)
			c.waitFirst = item.GetWaitMs() > 0
			b.Items = append(b.Items, item)
		}
		req.Request = &pb.StreamRequest_ClaimBatch{ClaimBatch: b}
	case kindCommit:
		b := &pb.CommitBatchRequest{}
		for _, c := range calls {
			b.Items = append(b.Items, c.req.(*pb.CommitRequest))
		}
		req.Request = &pb.StreamRequest_CommitBatch{CommitBatch: b}
	}
	return outgoing{calls: calls, batch: true, req: req}
}

// receive delivers answers by correlation id until the stream ends.
func (sess *session) receive() {
	for {
		resp, err := sess.stream.Recv()
		if err != nil {
			sess.fail(sess.s.brokenErr(err))
			return
		}
		sess.mu.Lock()
		calls, ok := sess.inflight[resp.GetCorrelationId()]
		delete(sess.inflight, resp.GetCorrelationId())
		sess.mu.Unlock()
		if ok {
			sess.deliver(calls, resp)
		}
	}
}

// validationCodes are the errors a whole batch gets before anything is
// touched: its calls are sent again one by one, so that each gets its own answer.
var validationCodes = map[codes.Code]bool{
	codes.InvalidArgument: true, codes.NotFound: true, codes.PermissionDenied: true,
}

// resend queues calls again, each to go on its own (never coalesced again);
// if the stream broke meanwhile they get its error.
func (sess *session) resend(calls []*streamCall) {
	for _, c := range calls {
		c.single = true
	}
	if !sess.enqueue(calls...) {
		sess.mu.Lock()
		broken := sess.broken
		sess.mu.Unlock()
		for _, c := range calls {
			c.settle(nil, broken)
		}
	}
}

func (sess *session) deliver(calls []*streamCall, resp *pb.StreamResponse) {
	if e := resp.GetError(); e != nil {
		if len(calls) > 1 && validationCodes[codes.Code(e.GetCode())] {
			sess.resend(calls)
			return
		}
		for _, c := range calls {
			c.settle(nil, itemError(e))
		}
		return
	}
	items := responseItems(resp)
	if len(items) != len(calls) {
		err := status.Errorf(codes.Internal, "dedup: stream answer %T carries %d results for %d calls",
			resp.GetResponse(), len(items), len(calls))
		for _, c := range calls {
			c.settle(nil, err)
		}
		return
	}
	var again []*streamCall
	for i, c := range calls {
		item := items[i]
		var err error
		if ie, ok := item.(interface{ GetError() *pb.ItemError }); ok && ie.GetError() != nil {
			err, item = itemError(ie.GetError()), nil
		}
		if c.waitFirst && waitAgain(c, item) {
			again = append(again, c)
			continue
		}
		if !c.settle(item, err) {
			sess.s.abandoned(c, item)
		}
	}
	if len(again) > 0 {
		sess.resend(again)
	}
}

// waitAgain: the first, non-waiting attempt of a waiting Claim found the id
// IN_PROGRESS and some of its wait is left, so it is to be sent again alone
// with wait_ms = the rest (ADR 0018). c.req becomes that copy. A call its
// caller abandoned meanwhile is not sent again.
func waitAgain(c *streamCall, item any) bool {
	claim, ok := item.(*pb.ClaimResponse)
	if !ok || claim.GetOutcome() != pb.ClaimOutcome_CLAIM_OUTCOME_IN_PROGRESS || c.state.Load() != callPending {
		return false
	}
	req := c.req.(*pb.ClaimRequest)
	left := req.GetWaitMs() - time.Since(c.sentAt).Milliseconds()
	if left <= 0 {
		return false
	}
	again := proto.Clone(req).(*pb.ClaimRequest)
	again.WaitMs = left
	c.req, c.waitFirst = again, false
	return true
}

// responseItems is the answer of each call of a message, in order.
func responseItems(resp *pb.StreamResponse) []any {
	switch r := resp.GetResponse().(type) {
	case *pb.StreamResponse_Check:
		return []any{r.Check}
	case *pb.StreamResponse_Claim:
		return []any{r.Claim}
	case *pb.StreamResponse_Commit:
		return []any{r.Commit}
	case *pb.StreamResponse_Release:
		return []any{r.Release}
	case *pb.StreamResponse_Renew:
		return []any{r.Renew}
	case *pb.StreamResponse_CheckBatch:
		return anys(r.CheckBatch.GetResults())
	case *pb.StreamResponse_ClaimBatch:
		return anys(r.ClaimBatch.GetResults())
	case *pb.StreamResponse_CommitBatch:
		return anys(r.CommitBatch.GetResults())
	}
	return nil
}

func anys[T any](xs []T) []any {
	out := make([]any, len(xs))
	for i, x := range xs {
		out[i] = x
	}
	return out
}

// abandoned handles the late answer of a call whose caller gave up: an
// ACQUIRED nobody will use is released, so the id is not blocked for a lease.
func (s *streamer) abandoned(c *streamCall, item any) {
	claim, ok := item.(*pb.ClaimResponse)
	if !ok || claim.GetOutcome() != pb.ClaimOutcome_CLAIM_OUTCOME_ACQUIRED {
		return
	}
	req := c.req.(*pb.ClaimRequest)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		ctx, cancel := context.WithTimeout(s.lifetime, s.c.cfg.timeout)
		defer cancel()
		_, _ = s.c.Release(ctx, req.GetNamespace(), req.GetId(), claim.GetFencingToken())
	}()
}
