// Package dedup is the Go client of the dedup sidecar: the same verbs as every
// other language's client (Check, Claim, Commit, Release, Renew, Inspect,
// Forget and the batch variants), deadlines from context.Context, retries only
// where they are safe, W3C trace context propagation (unary calls), one
// multiplexed Stream per client by default (WithTransport), the
// effectively-once helper Once and the sink recipes MarkApplied and AdvanceFence.
package dedup

import (
	"context"
	"errors"
	"strings"
	"time"

	"go.opentelemetry.io/otel/propagation"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	pb "github.com/dedup-sidecar/dedup/clients/go/dedupv1"
)

// Client talks to one sidecar. It is safe for concurrent use; Close it when done.
type Client struct {
	conn   *grpc.ClientConn
	stub   pb.DedupClient
	cfg    config
	stream *streamer // nil with TransportUnary
}

// New connects (lazily) to target: "host:port", "unix:/path/to.sock", or an
// absolute socket path.
func New(target string, opts ...Option) (*Client, error) {
	cfg := config{
		timeout:    DefaultTimeout,
		retry:      DefaultRetryPolicy,
		propagator: propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}),
	}
	for _, o := range opts {
		o(&cfg)
	}
	if strings.HasPrefix(target, "/") {
		target = "unix:" + target
	} else if !strings.Contains(target, "://") && !strings.HasPrefix(target, "unix:") {
		target = "passthrough:///" + target // host:port as given, like grpc.Dial
	}
	creds := insecure.NewCredentials()
	if cfg.creds != nil {
		creds = cfg.creds
	}
	dial := []grpc.DialOption{
		grpc.WithTransportCredentials(creds),
		// A sidecar is local: reconnect within a second after it restarts.
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: time.Second},
			MinConnectTimeout: 20 * time.Second,
		}),
		grpc.WithChainUnaryInterceptor(traceInterceptor(cfg.propagator)),
	}
	if cfg.waitForReady {
		dial = append(dial, grpc.WithDefaultCallOptions(grpc.WaitForReady(true)))
	}
	conn, err := grpc.NewClient(target, append(dial, cfg.dialOptions...)...)
	if err != nil {
		return nil, err
	}
	c := &Client{conn: conn, stub: pb.NewDedupClient(conn), cfg: cfg}
	if cfg.transport == TransportStream {
		c.stream = newStreamer(c)
	}
	return c, nil
}

// Close ends the stream (calls in flight fail) and closes the connection.
func (c *Client) Close() error {
	if c.stream != nil {
		c.stream.close()
	}
	err := c.conn.Close()
	if c.stream != nil {
		c.stream.wait()
	}
	return err
}

// withDeadline gives ctx the client's default deadline when it has none.
func (c *Client) withDeadline(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, c.cfg.timeout)
}

// waitFits reports whether a Claim's wait_ms ends at least 100 ms before
// ctx's deadline. The sidecar ends a unary Claim's wait 100 ms before the
// call's deadline itself, but a stream message carries no deadline: a Claim
// whose wait would outlast its deadline goes unary, so the sidecar both
// validates the wait_ms asked for and ends the wait in time
// (docs/adr/0015-go-client-transport-and-helper.md).
func waitFits(ctx context.Context, waitMs int64) bool {
	if waitMs <= 0 {
		return true
	}
	deadline, ok := ctx.Deadline()
	return !ok || time.Duration(waitMs)*time.Millisecond <= time.Until(deadline)-100*time.Millisecond
}

// invoke runs one RPC with the default deadline (when ctx has none) and the
// retry policy. kind names the stream message for the verbs the stream
// transport carries (0: always unary).
func invoke[Req, Resp any](ctx context.Context, c *Client, method string, req Req,
	rpc func(context.Context, Req, ...grpc.CallOption) (Resp, error), kind streamKind) (Resp, error) {
	return invokeWith(ctx, c, c.cfg.retry, method, req, rpc, kind)
}

// invokeWith is invoke with another retry policy (the helper retries Commit itself).
func invokeWith[Req, Resp any](ctx context.Context, c *Client, policy RetryPolicy, method string, req Req,
	rpc func(context.Context, Req, ...grpc.CallOption) (Resp, error), kind streamKind) (Resp, error) {
	ctx, cancel := c.withDeadline(ctx)
	defer cancel()
	if len(c.cfg.metadata) > 0 {
		ctx = metadata.AppendToOutgoingContext(ctx, c.cfg.metadata...)
	}
	for try := 1; ; try++ {
		resp, err := attempt(ctx, c, req, rpc, kind)
		if err == nil {
			return resp, nil
		}
		wait, retry := policy.delay(ctx, method, Code(err), try)
		if !retry {
			return resp, fromStatus(err)
		}
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return resp, fromStatus(err)
		case <-timer.C:
		}
	}
}

// attempt is one try: over the stream when the client uses it for this verb
// (falling back to unary when the sidecar does not implement Stream), else unary.
func attempt[Req, Resp any](ctx context.Context, c *Client, req Req,
	rpc func(context.Context, Req, ...grpc.CallOption) (Resp, error), kind streamKind) (Resp, error) {
	if kind != kindNone && c.stream != nil && streamable(ctx, req) {
		r, err := c.stream.call(ctx, kind, req)
		if !errors.Is(err, errStreamUnimplemented) {
			if err != nil {
				var zero Resp
				return zero, err
			}
			return r.(Resp), nil
		}
	}
	return rpc(ctx, req)
}

// streamable: every request the stream carries, except a Claim whose wait outlasts its deadline.
func streamable(ctx context.Context, req any) bool {
	claim, ok := req.(*pb.ClaimRequest)
	return !ok || waitFits(ctx, claim.GetWaitMs())
}

// Check marks id on first sight: NEW, DUPLICATE or CONFLICT. Never retried once sent.
func (c *Client) Check(ctx context.Context, namespace string, id []byte, opts ...CallOption) (CheckResult, error) {
	a := collect(opts)
	r, err := invoke(ctx, c, "Check", &pb.CheckRequest{
		Namespace: namespace, Id: id, Fingerprint: a.fingerprint, WindowMs: a.window.Milliseconds(),
	}, c.stub.Check, kindCheck)
	if err != nil {
		return CheckResult{}, err
	}
	return checkResult(r), nil
}

// Claim takes a lease: ACQUIRED (with a fencing token), IN_PROGRESS, DUPLICATE
// (with the stored result) or CONFLICT. With Wait, a live lease of another
// holder makes the call wait for its Commit, Release or expiry.
func (c *Client) Claim(ctx context.Context, namespace string, id []byte, opts ...CallOption) (ClaimResult, error) {
	a := collect(opts)
	r, err := invoke(ctx, c, "Claim", &pb.ClaimRequest{
		Namespace: namespace, Id: id, Fingerprint: a.fingerprint, LeaseMs: a.lease.Milliseconds(),
		WaitMs: a.wait.Milliseconds(),
	}, c.stub.Claim, kindClaim)
	if err != nil {
		return ClaimResult{}, err
	}
	return claimResult(r), nil
}

func commitRequest(namespace string, id []byte, token uint64, a callArgs) *pb.CommitRequest {
	req := &pb.CommitRequest{Namespace: namespace, Id: id, FencingToken: token, WindowMs: a.window.Milliseconds()}
	if a.hasResult {
		req.Result = append([]byte{}, a.result...)
	}
	return req
}

// Commit marks a claimed id DONE for the window (Result stores a result for later duplicates).
func (c *Client) Commit(ctx context.Context, namespace string, id []byte, token uint64, opts ...CallOption) (CommitResult, error) {
	r, err := invoke(ctx, c, "Commit", commitRequest(namespace, id, token, collect(opts)), c.stub.Commit, kindCommit)
	if err != nil {
		return CommitResult{}, err
	}
	return commitResult(r), nil
}

// Release drops a lease after failed processing so a redelivery can proceed at once.
func (c *Client) Release(ctx context.Context, namespace string, id []byte, token uint64) (ReleaseResult, error) {
	r, err := invoke(ctx, c, "Release", &pb.ReleaseRequest{Namespace: namespace, Id: id, FencingToken: token}, c.stub.Release, kindRelease)
	if err != nil {
		return ReleaseResult{}, err
	}
	return ReleaseResult{Outcome: ReleaseOutcome(name(r.GetOutcome(), "RELEASE_OUTCOME_")), Degraded: r.GetDegraded()}, nil
}

// Renew extends a live lease (LeaseFor sets its new length).
func (c *Client) Renew(ctx context.Context, namespace string, id []byte, token uint64, opts ...CallOption) (RenewResult, error) {
	a := collect(opts)
	r, err := invoke(ctx, c, "Renew", &pb.RenewRequest{
		Namespace: namespace, Id: id, FencingToken: token, LeaseMs: a.lease.Milliseconds(),
	}, c.stub.Renew, kindRenew)
	if err != nil {
		return RenewResult{}, err
	}
	return RenewResult{
		Outcome:      RenewOutcome(name(r.GetOutcome(), "RENEW_OUTCOME_")),
		LeaseExpires: unixMs(r.GetLeaseExpiresUnixMs()),
		Degraded:     r.GetDegraded(),
	}, nil
}

// Inspect reads a record without changing it.
func (c *Client) Inspect(ctx context.Context, namespace string, id []byte) (InspectResult, error) {
	r, err := invoke(ctx, c, "Inspect", &pb.InspectRequest{Namespace: namespace, Id: id}, c.stub.Inspect, kindNone)
	if err != nil {
		return InspectResult{}, err
	}
	return inspectResult(r), nil
}

// Forget (admin) deletes a record so the id is new again. Never retried once sent.
func (c *Client) Forget(ctx context.Context, namespace string, id []byte) (ForgetResult, error) {
	r, err := invoke(ctx, c, "Forget", &pb.ForgetRequest{Namespace: namespace, Id: id}, c.stub.Forget, kindNone)
	if err != nil {
		return ForgetResult{}, err
	}
	return ForgetResult{Outcome: ForgetOutcome(name(r.GetOutcome(), "FORGET_OUTCOME_"))}, nil
}
