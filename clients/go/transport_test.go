package dedup_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	dedup "github.com/dedup-sidecar/dedup/clients/go"
	pb "github.com/dedup-sidecar/dedup/clients/go/dedupv1"
)

// scripted is a gRPC server (not the sidecar) that fails the first `failures`
// calls of each method with UNAVAILABLE, to pin down the client's retry rules.
type scripted struct {
	pb.UnimplementedDedupServer
	failures int
	mu       sync.Mutex
	calls    map[string]int
	md       metadata.MD
	deadline time.Duration // remaining at arrival; 0 = none
}

func (s *scripted) enter(ctx context.Context, method string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls[method]++
	s.md, _ = metadata.FromIncomingContext(ctx)
	s.deadline = 0
	if d, ok := ctx.Deadline(); ok {
		s.deadline = time.Until(d)
	}
	if s.calls[method] <= s.failures {
		return status.Error(codes.Unavailable, "store unreachable")
	}
	return nil
}

func (s *scripted) Check(ctx context.Context, _ *pb.CheckRequest) (*pb.CheckResponse, error) {
	if err := s.enter(ctx, "Check"); err != nil {
		return nil, err
	}
	return &pb.CheckResponse{Outcome: pb.CheckOutcome_CHECK_OUTCOME_NEW}, nil
}

func (s *scripted) Claim(ctx context.Context, _ *pb.ClaimRequest) (*pb.ClaimResponse, error) {
	if err := s.enter(ctx, "Claim"); err != nil {
		return nil, err
	}
	return &pb.ClaimResponse{Outcome: pb.ClaimOutcome_CLAIM_OUTCOME_ACQUIRED, FencingToken: 7}, nil
}

func (s *scripted) Commit(ctx context.Context, _ *pb.CommitRequest) (*pb.CommitResponse, error) {
	if err := s.enter(ctx, "Commit"); err != nil {
		return nil, err
	}
	return &pb.CommitResponse{Outcome: pb.CommitOutcome_COMMIT_OUTCOME_COMMITTED}, nil
}

func (s *scripted) Forget(ctx context.Context, _ *pb.ForgetRequest) (*pb.ForgetResponse, error) {
	if err := s.enter(ctx, "Forget"); err != nil {
		return nil, err
	}
	return &pb.ForgetResponse{Outcome: pb.ForgetOutcome_FORGET_OUTCOME_FORGOTTEN}, nil
}

func serve(t *testing.T, failures int, opts ...dedup.Option) (*scripted, *dedup.Client) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	s := &scripted{failures: failures, calls: map[string]int{}}
	pb.RegisterDedupServer(srv, s)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	fast := dedup.RetryPolicy{MaxAttempts: 4, InitialBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond}
	client, err := dedup.New(lis.Addr().String(), append([]dedup.Option{dedup.WithRetryPolicy(fast)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Close() })
	return s, client
}

func TestClaimAndCommitAreRetriedOnUnavailable(t *testing.T) {
	s, c := serve(t, 2)
	ctx := context.Background()
	claim, err := c.Claim(ctx, "ns", []byte("id"))
	if err != nil || claim.FencingToken != 7 {
		t.Fatalf("claim: %+v %v", claim, err)
	}
	if _, err := c.Commit(ctx, "ns", []byte("id"), 7); err != nil {
		t.Fatal(err)
	}
	if s.calls["Claim"] != 3 || s.calls["Commit"] != 3 {
		t.Fatalf("calls %v", s.calls)
	}
}

// A Check whose NEW was lost would answer DUPLICATE on a retry, and the caller
// would drop a message nobody processed: never retried once sent.
func TestCheckAndForgetAreNeverRetried(t *testing.T) {
	s, c := serve(t, 2)
	ctx := context.Background()
	if _, err := c.Check(ctx, "ns", []byte("id")); dedup.Code(err) != codes.Unavailable {
		t.Fatalf("check: %v", err)
	}
	if _, err := c.Forget(ctx, "ns", []byte("id")); dedup.Code(err) != codes.Unavailable {
		t.Fatalf("forget: %v", err)
	}
	if s.calls["Check"] != 1 || s.calls["Forget"] != 1 {
		t.Fatalf("calls %v", s.calls)
	}
}

func TestRetriesStopAtMaxAttempts(t *testing.T) {
	s, c := serve(t, 100)
	_, err := c.Claim(context.Background(), "ns", []byte("id"))
	var e *dedup.Error
	if !errors.As(err, &e) || e.Code != codes.Unavailable || status.Code(err) != codes.Unavailable {
		t.Fatalf("err %v", err)
	}
	if s.calls["Claim"] != 4 {
		t.Fatalf("calls %v", s.calls)
	}
}

func TestTraceContextOfTheCallersSpanIsPropagated(t *testing.T) {
	s, c := serve(t, 0)
	traceID, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	spanID, _ := trace.SpanIDFromHex("00f067aa0ba902b7")
	ctx := trace.ContextWithSpanContext(context.Background(), trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: traceID, SpanID: spanID, TraceFlags: trace.FlagsSampled,
	}))
	if _, err := c.Check(ctx, "ns", []byte("id")); err != nil {
		t.Fatal(err)
	}
	got := strings.Join(s.md.Get("traceparent"), ",")
	if got != "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01" {
		t.Fatalf("traceparent %q", got)
	}
}

func TestStaticMetadataAndDefaultDeadline(t *testing.T) {
	s, c := serve(t, 0, dedup.WithMetadata("authorization", "Bearer t0k"))
	if _, err := c.Claim(context.Background(), "ns", []byte("id")); err != nil {
		t.Fatal(err)
	}
	if got := s.md.Get("authorization"); len(got) != 1 || got[0] != "Bearer t0k" {
		t.Fatalf("authorization %v", got)
	}
	if s.deadline <= 0 || s.deadline > dedup.DefaultTimeout {
		t.Fatalf("default deadline not applied: %v", s.deadline)
	}
}
