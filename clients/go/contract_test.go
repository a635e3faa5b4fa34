package dedup_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	dedup "github.com/dedup-sidecar/dedup/clients/go"
)

// The shared contract suite (tests/contract/scenarios.yaml), run against the
// harness started by tests/contract/test_go_client.py (DEDUP_TARGET etc.).

type scenario struct {
	Name   string `yaml:"name"`
	Target string `yaml:"target"`
	Steps  []step `yaml:"steps"`
}

type step struct {
	Op           string           `yaml:"op"`
	NS           string           `yaml:"ns"`
	ID           *string          `yaml:"id"`
	IDs          []string         `yaml:"ids"`
	Fingerprint  string           `yaml:"fingerprint"`
	WindowMs     int64            `yaml:"window_ms"`
	LeaseMs      int64            `yaml:"lease_ms"`
	SaveToken    string           `yaml:"save_token"`
	Token        string           `yaml:"token"`
	Result       *string          `yaml:"result"`
	N            int              `yaml:"n"`
	State        string           `yaml:"state"`
	WithinMs     int64            `yaml:"within_ms"`
	DeadlineMs   int64            `yaml:"deadline_ms"`
	WaitMs       int64            `yaml:"wait_ms"`
	RenewEveryMs int64            `yaml:"renew_every_ms"`
	Async        string           `yaml:"async"`
	Name         string           `yaml:"name"`
	Direct       bool             `yaml:"direct"`
	Actions      []map[string]any `yaml:"actions"`
	Expect       expect           `yaml:"expect"`
}

type expect struct {
	Outcome          string         `yaml:"outcome"`
	State            string         `yaml:"state"`
	Result           *string        `yaml:"result"`
	TokenGreaterThan string         `yaml:"token_greater_than"`
	Error            string         `yaml:"error"`
	FieldViolation   string         `yaml:"field_violation"`
	Outcomes         []string       `yaml:"outcomes"`
	Counts           map[string]int `yaml:"counts"`
	TokenFrom        string         `yaml:"token_from"`
	Status           string         `yaml:"status"`
	Action           string         `yaml:"action"`
	HandlerRan       *bool          `yaml:"handler_ran"`
}

func scenariosPath() string {
	if p := os.Getenv("DEDUP_CONTRACT_SCENARIOS"); p != "" {
		return p
	}
	return filepath.Join("..", "..", "tests", "contract", "scenarios.yaml")
}

func targetFor(t *testing.T, kind string) string {
	env := map[string]string{"": "DEDUP_TARGET", "sidecar": "DEDUP_TARGET", "toggle": "DEDUP_TOGGLE_TARGET",
		"blackhole": "DEDUP_BLACKHOLE_TARGET", "unavailable": "DEDUP_UNAVAILABLE_TARGET"}[kind]
	v := os.Getenv(env)
	if v == "" {
		t.Fatalf("%s is not set", env)
	}
	return v
}

func requireHarness(t *testing.T) {
	if os.Getenv("DEDUP_TARGET") == "" {
		t.Skip("DEDUP_TARGET not set: run through pytest tests/contract/test_go_client.py, which starts the harness")
	}
}

func TestContract(t *testing.T) {
	requireHarness(t)
	raw, err := os.ReadFile(scenariosPath())
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Scenarios []scenario `yaml:"scenarios"`
	}
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Scenarios) == 0 {
		t.Fatal("no scenarios")
	}
	// Every scenario over the default transport (the stream), then over unary calls.
	for _, tr := range []dedup.Transport{dedup.TransportStream, dedup.TransportUnary} {
		t.Run(tr.String(), func(t *testing.T) {
			for _, sc := range doc.Scenarios {
				t.Run(sc.Name, func(t *testing.T) {
					t.Parallel()
					client := dial(t, targetFor(t, sc.Target), tr)
					direct := dial(t, targetFor(t, "sidecar"), tr)
					newRun(tr.String()+"-"+sc.Name).play(t, client, direct, sc)
					if tr == dedup.TransportStream && streamsOnSidecar(sc) && !dedup.StreamInUse(client) {
						t.Fatal("the scenario's calls did not travel over the stream")
					}
				})
			}
		})
	}
}

// streamsOnSidecar: the scenario talks to the live sidecar with calls the stream
// carries (a Claim whose wait outlasts its deadline goes unary, by design).
func streamsOnSidecar(sc scenario) bool {
	if sc.Target != "" && sc.Target != "sidecar" {
		return false
	}
	for _, st := range sc.Steps {
		switch st.Op {
		case "check", "commit", "release", "renew", "once", "concurrent_claims":
			return true
		case "claim":
			if st.WaitMs == 0 {
				return true
			}
		}
	}
	return false
}

func dial(t *testing.T, target string, tr dedup.Transport) *dedup.Client {
	c, err := dedup.New(target, dedup.WithTransport(tr))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

type run struct {
	ids    map[string]string
	mu     sync.Mutex
	tokens map[string]uint64
	async  map[string]chan asyncResult
	direct *dedup.Client
}

type asyncResult struct {
	res result
	err error
}

func newRun(name string) *run {
	b := make([]byte, 5)
	_, _ = rand.Read(b)
	base := fmt.Sprintf("go-%s-%s", name, hex.EncodeToString(b))
	return &run{ids: map[string]string{"$id": base, "$id2": base + "-2"}, tokens: map[string]uint64{},
		async: map[string]chan asyncResult{}}
}

func (r *run) id(raw string) []byte {
	if v, ok := r.ids[raw]; ok {
		return []byte(v)
	}
	return []byte(raw)
}

func (r *run) token(t *testing.T, raw string) uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	v, ok := r.tokens[strings.TrimPrefix(raw, "$")]
	if !ok {
		t.Fatalf("no saved token %q", raw)
	}
	return v
}

// asyncClaims counts the async Claims (of the scenario's client) that start
// the steps; over the stream they are made to pend together (HoldStream), so
// that they are framed together and coalesced (ADR 0018).
func asyncClaims(steps []step) int {
	n := 0
	for n < len(steps) && steps[n].Async != "" && steps[n].Op == "claim" && !steps[n].Direct {
		n++
	}
	return n
}

// pendTogether waits until the n held calls are queued on the stream, then lets it send them.
func pendTogether(t *testing.T, where string, c *dedup.Client, n int, release func()) {
	defer release()
	limit := time.Now().Add(10 * time.Second)
	for dedup.QueuedOnStream(c) < n {
		if time.Now().After(limit) {
			t.Fatalf("%s: %d async calls never pended together on the stream (%d queued)", where, n, dedup.QueuedOnStream(c))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// result is what one step produced, in the scenario's vocabulary.
type result struct {
	outcome  string
	state    string
	stored   []byte
	token    uint64
	outcomes []string
	counts   map[string]int
	// once
	status     string
	action     string
	handlerRan bool
}

func (r *run) play(t *testing.T, c, direct *dedup.Client, sc scenario) {
	r.direct = direct
	var release func() // set while consecutive async Claims are held to pend together
	held, lastHeld := 0, 0
	for i, st := range sc.Steps {
		where := fmt.Sprintf("step %d (%s)", i, st.Op)
		client := c
		if st.Direct {
			client = direct
		}
		if st.Async != "" {
			if n := asyncClaims(sc.Steps[i:]); release == nil && n >= 2 && !st.Direct && dedup.StreamInUse(client) {
				release, held, lastHeld = dedup.HoldStream(client), n, i+n-1
			}
			done := make(chan asyncResult, 1)
			r.async[st.Async] = done
			go func() {
				res, err := r.invoke(t, client, st)
				done <- asyncResult{res, err}
			}()
			if release != nil && i == lastHeld {
				pendTogether(t, where, client, held, release)
				release = nil
			}
			continue
		}
		var got result
		var err error
		if st.Op == "join" {
			done, ok := r.async[st.Name]
			if !ok {
				t.Fatalf("%s: no async call %q", where, st.Name)
			}
			select {
			case a := <-done:
				got, err = a.res, a.err
			case <-time.After(60 * time.Second):
				t.Fatalf("%s: async call %q did not end", where, st.Name)
			}
		} else {
			got, err = r.invoke(t, client, st)
		}
		if err != nil {
			if st.Expect.Error == "" {
				t.Fatalf("%s: unexpected error %v", where, err)
			}
			if st.Expect.Error == "HANDLER" {
				if !errors.Is(err, errHandler) {
					t.Fatalf("%s: want the handler's error, got %v", where, err)
				}
				continue
			}
			if code := dedup.Code(err).String(); !strings.EqualFold(strings.ReplaceAll(code, "_", ""), strings.ReplaceAll(st.Expect.Error, "_", "")) {
				t.Fatalf("%s: want %s, got %v", where, st.Expect.Error, err)
			}
			if st.Expect.FieldViolation != "" {
				r.checkViolation(t, where, err, st.Expect.FieldViolation)
			}
			continue
		}
		if st.Expect.Error != "" {
			t.Fatalf("%s: want error %s, got %+v", where, st.Expect.Error, got)
		}
		r.checkExpect(t, where, st, got)
	}
}

func (r *run) checkViolation(t *testing.T, where string, err error, field string) {
	e, ok := err.(*dedup.Error)
	if !ok {
		t.Fatalf("%s: not a *dedup.Error: %v", where, err)
	}
	var fields []string
	for _, v := range e.FieldViolations {
		fields = append(fields, v.Field)
	}
	if !slices.Contains(fields, field) {
		t.Fatalf("%s: want a violation of %q, got %v", where, field, fields)
	}
}

func (r *run) checkExpect(t *testing.T, where string, st step, got result) {
	ex := st.Expect
	if ex.Outcome != "" && got.outcome != ex.Outcome {
		t.Fatalf("%s: want outcome %s, got %+v", where, ex.Outcome, got)
	}
	if ex.State != "" && got.state != ex.State {
		t.Fatalf("%s: want state %s, got %+v", where, ex.State, got)
	}
	if ex.Result != nil && string(got.stored) != *ex.Result {
		t.Fatalf("%s: want result %q, got %q", where, *ex.Result, got.stored)
	}
	if ex.TokenGreaterThan != "" && got.token <= r.token(t, ex.TokenGreaterThan) {
		t.Fatalf("%s: token %d not greater than %s=%d", where, got.token, ex.TokenGreaterThan, r.token(t, ex.TokenGreaterThan))
	}
	if ex.Outcomes != nil && !slices.Equal(got.outcomes, ex.Outcomes) {
		t.Fatalf("%s: want outcomes %v, got %v", where, ex.Outcomes, got.outcomes)
	}
	if ex.Counts != nil && fmt.Sprint(got.counts) != fmt.Sprint(ex.Counts) {
		t.Fatalf("%s: want counts %v, got %v", where, ex.Counts, got.counts)
	}
	if ex.TokenFrom != "" && got.token <= r.token(t, ex.TokenFrom) {
		t.Fatalf("%s: token %d not greater than %s=%d", where, got.token, ex.TokenFrom, r.token(t, ex.TokenFrom))
	}
	if ex.Status != "" && got.status != ex.Status {
		t.Fatalf("%s: want status %s, got %+v", where, ex.Status, got)
	}
	if ex.Action != "" && got.action != ex.Action {
		t.Fatalf("%s: want action %s, got %+v", where, ex.Action, got)
	}
	if ex.HandlerRan != nil && got.handlerRan != *ex.HandlerRan {
		t.Fatalf("%s: want handler_ran %v, got %+v", where, *ex.HandlerRan, got)
	}
	if st.SaveToken != "" {
		r.saveToken(st.SaveToken, got.token)
	}
}

func (r *run) saveToken(name string, token uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.tokens[name] = token
}

func (r *run) invoke(t *testing.T, c *dedup.Client, st step) (result, error) {
	deadline := time.Duration(st.DeadlineMs) * time.Millisecond
	if deadline == 0 {
		deadline = 5 * time.Second
	}
	ns := st.NS
	if ns == "" {
		ns = "contract"
	}
	var id []byte
	if st.ID != nil {
		id = r.id(*st.ID)
	}
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	lease := dedup.LeaseFor(time.Duration(st.LeaseMs) * time.Millisecond)
	switch st.Op {
	case "once":
		onceCtx := context.Background() // the helper bounds its own calls; deadline_ms only when given
		if st.DeadlineMs > 0 {
			onceCtx = ctx
		}
		return r.once(t, onceCtx, c, ns, id, st)
	case "check":
		res, err := c.Check(ctx, ns, id, dedup.Fingerprint([]byte(st.Fingerprint)), dedup.Window(time.Duration(st.WindowMs)*time.Millisecond))
		return result{outcome: string(res.Outcome), stored: res.Result}, err
	case "claim":
		res, err := c.Claim(ctx, ns, id, dedup.Fingerprint([]byte(st.Fingerprint)), lease,
			dedup.Wait(time.Duration(st.WaitMs)*time.Millisecond))
		return result{outcome: string(res.Outcome), stored: res.Result, token: res.FencingToken}, err
	case "commit":
		opts := []dedup.CallOption{dedup.Window(time.Duration(st.WindowMs) * time.Millisecond)}
		if st.Result != nil {
			opts = append(opts, dedup.Result([]byte(*st.Result)))
		}
		res, err := c.Commit(ctx, ns, id, r.token(t, st.Token), opts...)
		return result{outcome: string(res.Outcome)}, err
	case "release":
		res, err := c.Release(ctx, ns, id, r.token(t, st.Token))
		return result{outcome: string(res.Outcome)}, err
	case "renew":
		res, err := c.Renew(ctx, ns, id, r.token(t, st.Token), lease)
		return result{outcome: string(res.Outcome)}, err
	case "inspect":
		res, err := c.Inspect(ctx, ns, id)
		return result{state: string(res.State), stored: res.Result, token: res.FencingToken}, err
	case "check_batch":
		ids := make([][]byte, len(st.IDs))
		for i, raw := range st.IDs {
			ids[i] = r.id(raw)
		}
		res, err := c.CheckBatch(ctx, ns, dedup.CheckIDs(ids...))
		out := result{}
		for _, x := range res {
			out.outcomes = append(out.outcomes, string(x.Outcome))
		}
		return out, err
	case "claim_batch":
		ids := make([][]byte, len(st.IDs))
		for i, raw := range st.IDs {
			ids[i] = r.id(raw)
		}
		res, err := c.ClaimBatch(ctx, ns, dedup.ClaimIDs(ids...))
		out := result{}
		for _, x := range res {
			out.outcomes = append(out.outcomes, string(x.Outcome))
		}
		return out, err
	case "concurrent_claims":
		return concurrentClaims(ctx, c, ns, id, st.N)
	case "await_state":
		return awaitState(t, c, ns, id, st)
	}
	t.Fatalf("unknown op %q", st.Op)
	return result{}, nil
}

func concurrentClaims(ctx context.Context, c *dedup.Client, ns string, id []byte, n int) (result, error) {
	var wg sync.WaitGroup
	var mu sync.Mutex
	start := make(chan struct{})
	out := result{counts: map[string]int{}}
	var firstErr error
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			res, err := c.Claim(ctx, ns, id)
			mu.Lock()
			defer mu.Unlock()
			if err != nil && firstErr == nil {
				firstErr = err
			}
			out.counts[string(res.Outcome)]++
		}()
	}
	close(start)
	wg.Wait()
	return out, firstErr
}

// awaitState polls Inspect (the only waiting a runner does), bounded by within_ms.
func awaitState(t *testing.T, c *dedup.Client, ns string, id []byte, st step) (result, error) {
	limit := time.Now().Add(time.Duration(st.WithinMs) * time.Millisecond)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		res, err := c.Inspect(ctx, ns, id)
		cancel()
		if err != nil {
			return result{}, err
		}
		if string(res.State) == st.State {
			return result{state: string(res.State)}, nil
		}
		if time.Now().After(limit) {
			t.Fatalf("state %s not seen within %d ms (last %s)", st.State, st.WithinMs, res.State)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// errHandler is the handler's own failure (actions: [{fail: true}]).
var errHandler = errors.New("handler failed")

// once runs the helper over the step's id; the handler runs the step's actions.
func (r *run) once(t *testing.T, ctx context.Context, c *dedup.Client, ns string, id []byte, st step) (result, error) {
	opts := []dedup.OnceOption{dedup.OnceFingerprint([]byte(st.Fingerprint))}
	if st.LeaseMs != 0 {
		opts = append(opts, dedup.OnceLease(time.Duration(st.LeaseMs)*time.Millisecond))
	}
	if st.RenewEveryMs != 0 {
		opts = append(opts, dedup.OnceRenewEvery(time.Duration(st.RenewEveryMs)*time.Millisecond))
	}
	if st.WaitMs != 0 {
		opts = append(opts, dedup.OnceWait(time.Duration(st.WaitMs)*time.Millisecond))
	}
	ran := false
	outcome, err := c.Once(ctx, ns, id, func(hctx context.Context, lease *dedup.Lease) ([]byte, error) {
		ran = true
		for _, action := range st.Actions {
			if err := r.act(hctx, ns, id, lease, action); err != nil {
				return nil, err
			}
		}
		if st.Result == nil {
			return nil, nil
		}
		return []byte(*st.Result), nil
	}, opts...)
	return result{status: string(outcome.Status), action: string(outcome.Action()), stored: outcome.StoredResult,
		token: outcome.FencingToken, handlerRan: ran}, err
}

// act runs one handler action (see the schema in scenarios.yaml).
func (r *run) act(ctx context.Context, ns string, id []byte, lease *dedup.Lease, action map[string]any) error {
	bg := context.Background()
	for verb, arg := range action {
		switch verb {
		case "cut":
			return cutToggle(fmt.Sprint(arg))
		case "forget":
			_, err := r.direct.Forget(bg, ns, id)
			return err
		case "claim_other":
			res, err := r.direct.Claim(bg, ns, id)
			if err == nil && !res.Acquired() {
				err = fmt.Errorf("claim_other: %s", res.Outcome)
			}
			r.saveToken(fmt.Sprint(arg), res.FencingToken)
			return err
		case "await_absent":
			ms, _ := arg.(int)
			limit := time.Now().Add(time.Duration(ms) * time.Millisecond)
			for {
				res, err := r.direct.Inspect(bg, ns, id)
				if err != nil {
					return err
				}
				if res.State == dedup.StateAbsent {
					return nil
				}
				if time.Now().After(limit) {
					return fmt.Errorf("await_absent: still %s after %d ms", res.State, ms)
				}
				time.Sleep(20 * time.Millisecond)
			}
		case "ensure":
			err := lease.Ensure(ctx)
			switch arg {
			case "ok":
				if err != nil || lease.Lost() {
					return fmt.Errorf("ensure: want ok, got %v (lost %v)", err, lease.Lost())
				}
			case "lost":
				if !errors.Is(err, dedup.ErrLeaseLost) || !lease.Lost() {
					return fmt.Errorf("ensure: want the lease lost, got %v (lost %v)", err, lease.Lost())
				}
			}
			return nil
		case "fail":
			return errHandler
		}
		return fmt.Errorf("unknown action %q", verb)
	}
	return nil
}

// cutToggle asks the toggle proxy to cut every connection for ms milliseconds.
func cutToggle(ms string) error {
	conn, err := net.DialTimeout("tcp", os.Getenv("DEDUP_TOGGLE_CONTROL"), 5*time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := fmt.Fprintf(conn, "cut %s\n", ms); err != nil {
		return err
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "ok" {
		return fmt.Errorf("cut: %q %v", line, err)
	}
	return nil
}
