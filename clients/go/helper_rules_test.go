package dedup_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	dedup "github.com/dedup-sidecar/dedup/clients/go"
	pb "github.com/dedup-sidecar/dedup/clients/go/dedupv1"
)

// The helper's rules (docs/adr/0013-helper-rules.md) against a scripted
// sidecar whose answers each test chooses: commit retried for the lease's
// life, re-claim after LEASE_LOST, never a Release after the effect.

type rulesServer struct {
	pb.UnimplementedDedupServer
	mu      sync.Mutex
	calls   map[string]int
	tokens  []uint64 // fencing tokens of the commits, in order
	claim   func(n int) (*pb.ClaimResponse, error)
	commit  func(n int, token uint64) (*pb.CommitResponse, error)
	renew   func(n int) (*pb.RenewResponse, error)
	release int
}

func (s *rulesServer) count(method string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls[method]++
	return s.calls[method]
}

func (s *rulesServer) Claim(_ context.Context, _ *pb.ClaimRequest) (*pb.ClaimResponse, error) {
	return s.claim(s.count("Claim"))
}

func (s *rulesServer) Commit(_ context.Context, r *pb.CommitRequest) (*pb.CommitResponse, error) {
	n := s.count("Commit")
	s.mu.Lock()
	s.tokens = append(s.tokens, r.GetFencingToken())
	s.mu.Unlock()
	return s.commit(n, r.GetFencingToken())
}

func (s *rulesServer) Renew(context.Context, *pb.RenewRequest) (*pb.RenewResponse, error) {
	return s.renew(s.count("Renew"))
}

func (s *rulesServer) Release(context.Context, *pb.ReleaseRequest) (*pb.ReleaseResponse, error) {
	s.count("Release")
	return &pb.ReleaseResponse{Outcome: pb.ReleaseOutcome_RELEASE_OUTCOME_RELEASED}, nil
}

func (s *rulesServer) snapshot() (map[string]int, []uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	calls := map[string]int{}
	for k, v := range s.calls {
		calls[k] = v
	}
	return calls, append([]uint64{}, s.tokens...)
}

var unavailable = status.Error(codes.Unavailable, "sidecar restarting")

func acquired(token uint64, lease time.Duration) (*pb.ClaimResponse, error) {
	return &pb.ClaimResponse{Outcome: pb.ClaimOutcome_CLAIM_OUTCOME_ACQUIRED, FencingToken: token,
		LeaseExpiresUnixMs: time.Now().Add(lease).UnixMilli()}, nil
}

func committed() (*pb.CommitResponse, error) {
	return &pb.CommitResponse{Outcome: pb.CommitOutcome_COMMIT_OUTCOME_COMMITTED}, nil
}

func rules(t *testing.T, s *rulesServer) *dedup.Client {
	t.Helper()
	s.calls = map[string]int{}
	if s.renew == nil {
		s.renew = func(int) (*pb.RenewResponse, error) { return nil, unavailable }
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	pb.RegisterDedupServer(srv, s) // no Stream: the client falls back to unary calls
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	c, err := dedup.New(lis.Addr().String(), dedup.WithDefaultTimeout(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func effect(context.Context, *dedup.Lease) ([]byte, error) { return []byte("done"), nil }

func TestHelperRetriesCommitWithinTheLease(t *testing.T) {
	s := &rulesServer{
		claim: func(int) (*pb.ClaimResponse, error) { return acquired(3, 10*time.Second) },
		commit: func(n int, _ uint64) (*pb.CommitResponse, error) {
			if n <= 5 { // longer than the client's own retry budget for one call
				return nil, unavailable
			}
			return committed()
		},
	}
	c := rules(t, s)
	o, err := c.Once(context.Background(), "ns", []byte("id"), effect, dedup.OnceLease(10*time.Second))
	calls, _ := s.snapshot()
	if err != nil || o.Status != dedup.Processed || calls["Commit"] != 6 || calls["Release"] != 0 {
		t.Fatalf("%+v %v calls %v", o, err, calls)
	}
}

func TestHelperReclaimsAfterLeaseLostAndCommitsAtOnce(t *testing.T) {
	s := &rulesServer{
		claim: func(n int) (*pb.ClaimResponse, error) { return acquired(uint64(10*n), 10*time.Second) },
		commit: func(_ int, token uint64) (*pb.CommitResponse, error) {
			if token == 10 {
				return &pb.CommitResponse{Outcome: pb.CommitOutcome_COMMIT_OUTCOME_LEASE_LOST}, nil
			}
			return committed()
		},
	}
	c := rules(t, s)
	o, err := c.Once(context.Background(), "ns", []byte("id"), effect)
	calls, tokens := s.snapshot()
	if err != nil || o.Status != dedup.Processed || o.FencingToken != 20 || string(o.StoredResult) != "done" {
		t.Fatalf("%+v %v", o, err)
	}
	if calls["Claim"] != 2 || calls["Release"] != 0 || len(tokens) != 2 || tokens[1] != 20 {
		t.Fatalf("calls %v tokens %v", calls, tokens)
	}
}

func TestHelperReportsLeaseLostWhenAnotherHolderHasTheID(t *testing.T) {
	s := &rulesServer{
		claim: func(n int) (*pb.ClaimResponse, error) {
			if n == 1 {
				return acquired(10, 10*time.Second)
			}
			return &pb.ClaimResponse{Outcome: pb.ClaimOutcome_CLAIM_OUTCOME_IN_PROGRESS, RetryAfterMs: 900}, nil
		},
		commit: func(int, uint64) (*pb.CommitResponse, error) {
			return &pb.CommitResponse{Outcome: pb.CommitOutcome_COMMIT_OUTCOME_LEASE_LOST}, nil
		},
	}
	c := rules(t, s)
	o, err := c.Once(context.Background(), "ns", []byte("id"), effect)
	calls, _ := s.snapshot()
	if err != nil || o.Status != dedup.LeaseLost || !o.ShouldAck() || calls["Commit"] != 1 || calls["Release"] != 0 {
		t.Fatalf("%+v %v calls %v", o, err, calls)
	}
}

// Unreachable for longer than the lease: the helper keeps trying until the
// lease ends, a last claim fails too, and the error says the effect is
// applied but not recorded (nack). Never a Release.
func TestHelperGivesUpWhenTheLeaseEndsUnreachable(t *testing.T) {
	lease := 600 * time.Millisecond
	s := &rulesServer{
		claim: func(n int) (*pb.ClaimResponse, error) {
			if n == 1 {
				return acquired(10, lease)
			}
			return nil, unavailable
		},
		commit: func(int, uint64) (*pb.CommitResponse, error) { return nil, unavailable },
	}
	c := rules(t, s)
	start := time.Now()
	o, err := c.Once(context.Background(), "ns", []byte("id"), effect, dedup.OnceLease(lease))
	elapsed := time.Since(start)
	calls, _ := s.snapshot()
	if dedup.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "commit not recorded") || o.ShouldAck() {
		t.Fatalf("%+v %v", o, err)
	}
	if elapsed < lease-100*time.Millisecond || calls["Commit"] < 3 || calls["Release"] != 0 {
		t.Fatalf("gave up after %v, calls %v", elapsed, calls)
	}
}

func TestHelperReleasesOnlyWhenTheHandlerFails(t *testing.T) {
	s := &rulesServer{
		claim:  func(int) (*pb.ClaimResponse, error) { return acquired(3, 10*time.Second) },
		commit: func(int, uint64) (*pb.CommitResponse, error) { return committed() },
	}
	c := rules(t, s)
	boom := errors.New("before the effect")
	o, err := c.Once(context.Background(), "ns", []byte("id"), func(context.Context, *dedup.Lease) ([]byte, error) {
		return nil, boom
	})
	calls, _ := s.snapshot()
	if !errors.Is(err, boom) || o.Action() != dedup.Nack || calls["Release"] != 1 || calls["Commit"] != 0 {
		t.Fatalf("%+v %v calls %v", o, err, calls)
	}
}

// A renewal the sidecar granted whose answer arrives a whole lease later (the
// consumer was frozen, or the network held the reply) proves nothing about
// now: Ensure reports the lease lost instead of letting an unfenced effect run.
func TestEnsureWhoseAnswerOutlivedTheLeaseSaysLost(t *testing.T) {
	const lease = 600 * time.Millisecond
	s := &rulesServer{
		claim:  func(int) (*pb.ClaimResponse, error) { return acquired(7, lease) },
		commit: func(int, uint64) (*pb.CommitResponse, error) { return committed() },
		renew: func(int) (*pb.RenewResponse, error) {
			time.Sleep(lease + 300*time.Millisecond) // the answer is held past the lease
			return &pb.RenewResponse{Outcome: pb.RenewOutcome_RENEW_OUTCOME_RENEWED,
				LeaseExpiresUnixMs: time.Now().Add(lease).UnixMilli()}, nil
		},
	}
	c := rules(t, s)
	var ensured error
	_, _ = c.Once(context.Background(), "ns", []byte("id"), func(ctx context.Context, l *dedup.Lease) ([]byte, error) {
		ensured = l.Ensure(ctx)
		return nil, nil
	}, dedup.OnceLease(lease), dedup.OnceRenewEvery(time.Minute))
	if !errors.Is(ensured, dedup.ErrLeaseLost) {
		t.Fatalf("Ensure after a renewal answered a lease too late: %v", ensured)
	}
}
