package dedup

import (
	"time"

	"go.opentelemetry.io/otel/propagation"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
)

// DefaultTimeout is the deadline of a call whose context has none.
const DefaultTimeout = 5 * time.Second

type config struct {
	timeout      time.Duration
	retry        RetryPolicy
	creds        credentials.TransportCredentials
	metadata     []string
	waitForReady bool
	propagator   propagation.TextMapPropagator
	dialOptions  []grpc.DialOption
	transport    Transport
}

// Transport is how a Client carries Check, Claim, Commit, Release and Renew.
type Transport int

const (
	// TransportStream (the default) carries them over one long-lived,
	// multiplexed Stream per client, coalescing concurrent calls of a kind
	// into batch messages; it falls back to unary calls when the sidecar does
	// not implement Stream. Inspect, Forget and the explicit batch calls stay unary.
	TransportStream Transport = iota
	// TransportUnary makes one unary RPC per call.
	TransportUnary
)

// String names the transport ("stream" or "unary").
func (t Transport) String() string {
	if t == TransportUnary {
		return "unary"
	}
	return "stream"
}

// WithTransport chooses the transport (default TransportStream).
func WithTransport(t Transport) Option { return func(c *config) { c.transport = t } }

// Option configures a Client.
type Option func(*config)

// WithDefaultTimeout sets the deadline of calls whose context has none (default 5s).
func WithDefaultTimeout(d time.Duration) Option { return func(c *config) { c.timeout = d } }

// WithRetryPolicy replaces DefaultRetryPolicy (NoRetries disables retries).
func WithRetryPolicy(p RetryPolicy) Option { return func(c *config) { c.retry = p } }

// WithTransportCredentials enables TLS/mTLS (default: plaintext, for loopback or a Unix socket).
func WithTransportCredentials(tc credentials.TransportCredentials) Option {
	return func(c *config) { c.creds = tc }
}

// WithMetadata adds static metadata (key, value pairs) to every call, e.g. "authorization", "Bearer ...".
func WithMetadata(kv ...string) Option {
	return func(c *config) { c.metadata = append(c.metadata, kv...) }
}

// WithWaitForReady makes calls wait, until their deadline, for a sidecar that
// is not reachable yet, instead of failing fast with UNAVAILABLE. Safe for
// every verb: nothing is sent until the connection is up.
func WithWaitForReady() Option { return func(c *config) { c.waitForReady = true } }

// WithPropagator replaces the W3C TraceContext propagator used to carry the
// caller's span context to the sidecar.
func WithPropagator(p propagation.TextMapPropagator) Option {
	return func(c *config) { c.propagator = p }
}

// WithDialOptions passes extra options to grpc.NewClient.
func WithDialOptions(opts ...grpc.DialOption) Option {
	return func(c *config) { c.dialOptions = append(c.dialOptions, opts...) }
}

// CallOption sets optional request fields; options a verb has no field for are ignored.
type CallOption func(*callArgs)

type callArgs struct {
	fingerprint []byte
	window      time.Duration
	lease       time.Duration
	result      []byte
	hasResult   bool
	wait        time.Duration
}

// Fingerprint sets the content fingerprint (Check, Claim), e.g. a SHA-256 of the payload.
func Fingerprint(b []byte) CallOption { return func(a *callArgs) { a.fingerprint = b } }

// Window sets how long the id is remembered (Check, Commit); 0 = the namespace default.
func Window(d time.Duration) CallOption { return func(a *callArgs) { a.window = d } }

// LeaseFor sets the lease length (Claim, Renew); 0 = the namespace default.
// (Named LeaseFor since the helper's Lease type took the name Lease.)
func LeaseFor(d time.Duration) CallOption { return func(a *callArgs) { a.lease = d } }

// Wait sets a Claim's wait_ms: when another holder's lease is live, the call
// waits up to d for the holder's Commit (DUPLICATE with its result), Release
// or lost lease (ACQUIRED) instead of answering IN_PROGRESS at once. The wait
// ends (IN_PROGRESS) shortly before the call's deadline (100–500 ms). 0 = no wait; at most
// the namespace policy's max_claim_wait (else INVALID_ARGUMENT).
func Wait(d time.Duration) CallOption { return func(a *callArgs) { a.wait = d } }

// Result stores b with a Commit, returned to later duplicates.
func Result(b []byte) CallOption {
	return func(a *callArgs) { a.result, a.hasResult = b, true }
}

func collect(opts []CallOption) callArgs {
	var a callArgs
	for _, o := range opts {
		o(&a)
	}
	return a
}
