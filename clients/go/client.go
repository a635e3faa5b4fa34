// Package dedup is the Go client of the dedup sidecar: the same verbs as every
// other language's client (Check, Claim, Commit, Release, Renew, Inspect,
// Forget and the batch variants), deadlines from context.Context, retries only
// where they are safe, W3C trace context propagation, and the effectively-once
// helper Once.
package dedup

import (
	"context"
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
	conn *grpc.ClientConn
	stub pb.DedupClient
	cfg  config
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
	return &Client{conn: conn, stub: pb.NewDedupClient(conn), cfg: cfg}, nil
}

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

// invoke runs one RPC with the default deadline (when ctx has none) and the retry policy.
func invoke[Req, Resp any](ctx context.Context, c *Client, method string, req Req,
	rpc func(context.Context, Req, ...grpc.CallOption) (Resp, error)) (Resp, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.cfg.timeout)
		defer cancel()
	}
	if len(c.cfg.metadata) > 0 {
		ctx = metadata.AppendToOutgoingContext(ctx, c.cfg.metadata...)
	}
	for attempt := 1; ; attempt++ {
		resp, err := rpc(ctx, req)
		if err == nil {
			return resp, nil
		}
		wait, retry := c.cfg.retry.delay(ctx, method, Code(err), attempt)
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

// Check marks id on first sight: NEW, DUPLICATE or CONFLICT. Never retried once sent.
func (c *Client) Check(ctx context.Context, namespace string, id []byte, opts ...CallOption) (CheckResult, error) {
	a := collect(opts)
	r, err := invoke(ctx, c, "Check", &pb.CheckRequest{
		Namespace: namespace, Id: id, Fingerprint: a.fingerprint, WindowMs: a.window.Milliseconds(),
	}, c.stub.Check)
	if err != nil {
		return CheckResult{}, err
	}
	return checkResult(r), nil
}

// Claim takes a lease: ACQUIRED (with a fencing token), IN_PROGRESS, DUPLICATE (with the stored result) or CONFLICT.
func (c *Client) Claim(ctx context.Context, namespace string, id []byte, opts ...CallOption) (ClaimResult, error) {
	a := collect(opts)
	r, err := invoke(ctx, c, "Claim", &pb.ClaimRequest{
		Namespace: namespace, Id: id, Fingerprint: a.fingerprint, LeaseMs: a.lease.Milliseconds(),
	}, c.stub.Claim)
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
	r, err := invoke(ctx, c, "Commit", commitRequest(namespace, id, token, collect(opts)), c.stub.Commit)
	if err != nil {
		return CommitResult{}, err
	}
	return commitResult(r), nil
}

// Release drops a lease after failed processing so a redelivery can proceed at once.
func (c *Client) Release(ctx context.Context, namespace string, id []byte, token uint64) (ReleaseResult, error) {
	r, err := invoke(ctx, c, "Release", &pb.ReleaseRequest{Namespace: namespace, Id: id, FencingToken: token}, c.stub.Release)
	if err != nil {
		return ReleaseResult{}, err
	}
	return ReleaseResult{Outcome: ReleaseOutcome(name(r.GetOutcome(), "RELEASE_OUTCOME_")), Degraded: r.GetDegraded()}, nil
}

// Renew extends a live lease (Lease sets its new length).
func (c *Client) Renew(ctx context.Context, namespace string, id []byte, token uint64, opts ...CallOption) (RenewResult, error) {
	a := collect(opts)
	r, err := invoke(ctx, c, "Renew", &pb.RenewRequest{
		Namespace: namespace, Id: id, FencingToken: token, LeaseMs: a.lease.Milliseconds(),
	}, c.stub.Renew)
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
	r, err := invoke(ctx, c, "Inspect", &pb.InspectRequest{Namespace: namespace, Id: id}, c.stub.Inspect)
	if err != nil {
		return InspectResult{}, err
	}
	return inspectResult(r), nil
}

// Forget (admin) deletes a record so the id is new again. Never retried once sent.
func (c *Client) Forget(ctx context.Context, namespace string, id []byte) (ForgetResult, error) {
	r, err := invoke(ctx, c, "Forget", &pb.ForgetRequest{Namespace: namespace, Id: id}, c.stub.Forget)
	if err != nil {
		return ForgetResult{}, err
	}
	return ForgetResult{Outcome: ForgetOutcome(name(r.GetOutcome(), "FORGET_OUTCOME_"))}, nil
}
