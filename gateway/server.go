// Package gateway is grokgate's HTTP surface: the OpenAI-compatible API in
// front of xAI. It declares the small interfaces it needs and is given their
// implementations by main.
package gateway

import (
	"context"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/grokgate/grokgate"
	"github.com/grokgate/grokgate/pricing"
	"github.com/grokgate/grokgate/xai"
)

// Authenticator resolves a presented gateway key.
type Authenticator interface {
	// Authenticate returns the key for secret, or an error from package keys
	// (ErrMissing, ErrInvalid, ErrRevoked, ErrExpired).
	Authenticate(ctx context.Context, secret string) (*grokgate.Key, error)
}

// Upstream sends a request to xAI (package xai's Client). The response body
// belongs to the caller; cancelling ctx aborts the exchange.
type Upstream interface {
	Do(ctx context.Context, req xai.Request) (*http.Response, error)
}

// Config tunes the server. Every zero value means the documented default.
type Config struct {
	// MaxBodyBytes caps a request body; 0 means DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// SimulatorURL is the built-in xAI simulator's base URL (such as
	// http://127.0.0.1:40123) when grokgate answers from it; its image
	// files are then served through grokgate's own address, since the
	// simulator listens on loopback. "" for the real xAI API.
	SimulatorURL string
	// MaxBodyBytesInFlight caps the bytes of large request bodies held at
	// once; over it requests wait briefly, then get 503. 0 means 8 times
	// MaxBodyBytes.
	MaxBodyBytesInFlight int64
	// FirstByteTimeout caps how long upstream may take to start answering (the
	// first-byte timeout): to the first event of a stream, or to the whole
	// body otherwise; 0 means DefaultFirstByteTimeout.
	FirstByteTimeout time.Duration
	// StreamIdleTimeout ends a stream whose upstream sends nothing for this
	// long after its first event; 0 means DefaultStreamIdleTimeout.
	StreamIdleTimeout time.Duration
	// TotalTimeout caps one upstream exchange from start to end; 0 means
	// DefaultTotalTimeout.
	TotalTimeout time.Duration
	// Heartbeat is the upstream silence after which a stream gets an SSE
	// comment (": keep-alive") so proxies keep it open; 0 disables them.
	Heartbeat time.Duration
	// Shutdown, when done, ends requests still in flight: streams get the
	// SSE error event. nil means never.
	Shutdown context.Context
	// BodyReadTimeout caps how long a client may take to send its request
	// body, so a body that never ends cannot pin a connection; 0 means
	// DefaultBodyReadTimeout.
	// (A server-wide ReadTimeout would do it too, but would also end the
	// read that notices a client leaving a long stream.)
	BodyReadTimeout time.Duration
	// Ready reports whether the server can serve (database reachable); nil
	// means always ready. An *apierror.Error in its error is /readyz's
	// answer (the reason); otherwise a generic 503.
	Ready func(context.Context) error
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// VisionStream says how a streaming request with image input is answered
	// (GROKGATE_VISION_STREAM); "" means VisionStreamEmulate.
	VisionStream VisionStream
	// StreamErrorFormat says how the error event that ends a begun stream is
	// written (GROKGATE_STREAM_ERROR_FORMAT); "" means StreamErrorString.
	StreamErrorFormat StreamErrorFormat
	// ModelInfoTTL is how long upstream's model metadata (which models take
	// images) is trusted before it is fetched again; 0 means
	// DefaultModelInfoTTL.
	ModelInfoTTL time.Duration
	// Usage receives one record per chat completion request; nil records
	// nothing.
	Usage UsageRecorder
	// Journal notes each metered request as it is sent upstream, so a
	// process that dies leaves it recorded (package spool); nil journals
	// nothing.
	Journal Journal
	// Responses records who owns each stored response of the Responses API;
	// nil leaves the /responses routes out.
	Responses ResponseOwners
	// ResponseOwnersLocal says the Responses store is read by this process
	// alone (SQLite): the owners of new responses are then written behind,
	// in batches, and answered from memory until written, so no request
	// waits on the database for them. With several replicas on one store
	// it must be false: another replica must find an owner as soon as its
	// client holds the id. A batch gathers for ownerLinger before it is
	// written; a process killed meanwhile loses those owners.
	ResponseOwnersLocal bool
	// Observer receives the request metrics (package metrics); nil
	// measures nothing.
	Observer Observer
	// Metrics serves GET /metrics to admin keys; nil leaves the route out.
	Metrics http.Handler
	// Live serves GET /admin/v1/live, the server's own counters as JSON for
	// the console; nil leaves the route out.
	Live http.Handler
	// Sessions lets the console's session cookie stand in for a Bearer key
	// (session.go); nil accepts Bearer keys only.
	Sessions SessionAuthenticator
	// Tracer, when set, traces every request and its xAI exchanges; nil
	// (the default) costs nothing.
	Tracer trace.Tracer
	// Limiter enforces per-key limits (limits.go); nil enforces none.
	Limiter Limiter
	// DefaultLimits apply to keys that leave a limit at 0; 0 is unlimited.
	DefaultLimits grokgate.Limits
	// LimitOnError decides while the limiter fails; "" means LimitAllow.
	LimitOnError LimitPolicy
	// ImagePrices are the per-image prices (ticks) of the image models,
	// reserved against budgets; nil means pricing.DefaultImagePrices.
	ImagePrices map[string]int64
	// ToolPrices are the per-call prices (ticks) of the Responses API's
	// server-side tools, reserved against budgets; nil means
	// pricing.DefaultToolPrices.
	ToolPrices map[string]int64
	// ReasoningTokens is what a request to a reasoning model reserves for
	// its thinking beyond max_tokens; 0 means DefaultReasoningTokens.
	ReasoningTokens int64
	// Streams keeps the events of background responses and resumable chat
	// streams (streamlog.go); nil refuses background and ignores
	// X-Grokgate-Resumable.
	Streams StreamLog
	// ResumeWindow is how long a detached generation runs without any
	// reader before it is stopped (GROKGATE_RESUME_WINDOW); 0 means
	// DefaultResumeWindow. The log keeps its events as long after its end.
	ResumeWindow time.Duration
	// StreamLease is how long a detached generation's runner may go
	// without renewing its lease before readers take its replica for dead;
	// 0 means DefaultStreamLease. It renews four times per lease.
	StreamLease time.Duration
}

// What Config's zero values mean; cmd/grokgate's flags start from them.
const (
	DefaultMaxBodyBytes = 25 << 20
	// DefaultFirstByteTimeout is long: reasoning models can think for
	// minutes before their first event.
	DefaultFirstByteTimeout  = 10 * time.Minute
	DefaultStreamIdleTimeout = 5 * time.Minute
	DefaultTotalTimeout      = 60 * time.Minute
	DefaultBodyReadTimeout   = 60 * time.Second
	DefaultModelInfoTTL      = 10 * time.Minute
)

const (
	// maxUpstreamBody bounds a non-streaming upstream answer held in memory.
	maxUpstreamBody = 64 << 20
)

// Server is the gateway's http.Handler.
type Server struct {
	log  *slog.Logger
	cfg  Config
	auth Authenticator
	up   Upstream
	mux  *http.ServeMux
	// models caches upstream's model metadata for the vision checks.
	models *modelCatalog
	// owners writes the owners of new responses, concurrent ones together.
	owners ownerBatcher
	// bufs recycles SSE read buffers across streams; steady-state relaying
	// then allocates nothing per event. They start at 1 KiB, a few chat
	// chunks, because an open stream holds its buffer while it waits for
	// xAI; the scanner grows one for a larger event.
	bufs sync.Pool
	// logAttrs recycles the access log's attribute slices (observe.go).
	logAttrs sync.Pool
	// limits tracks limiter failures for the failure policy's logs.
	limits limiterHealth
	// inflight ends the exchanges of keys revoked while they run (revoke.go).
	inflight inflight
	// refused counts each key's refused requests this minute (refusals.go).
	refused refusals
	// bodies bounds the large request bodies held at once (bodybudget.go).
	bodies byteBudget
	// runners counts the detached generations in flight (runner.go), for
	// Drain.
	runners sync.WaitGroup
	// local maps the stream log ids of this replica's runners to them, so
	// a cancel arriving here stops its generation at once instead of at
	// the runner's next lease renewal.
	local sync.Map
	// teeBuffer is the events a runner hands its first client ahead
	// (runner.go); tests make it small to make the client fall behind.
	teeBuffer int
}

// NewServer returns the gateway with its API routes; other packages' routes
// (the admin API) are added with Handle, and Handler is what to serve.
func NewServer(log *slog.Logger, cfg Config, auth Authenticator, up Upstream) *Server {
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if cfg.MaxBodyBytesInFlight <= 0 {
		cfg.MaxBodyBytesInFlight = 8 * cfg.MaxBodyBytes
	}
	if cfg.FirstByteTimeout <= 0 {
		cfg.FirstByteTimeout = DefaultFirstByteTimeout
	}
	if cfg.StreamIdleTimeout <= 0 {
		cfg.StreamIdleTimeout = DefaultStreamIdleTimeout
	}
	if cfg.TotalTimeout <= 0 {
		cfg.TotalTimeout = DefaultTotalTimeout
	}
	if cfg.Shutdown == nil {
		cfg.Shutdown = context.Background()
	}
	if cfg.BodyReadTimeout <= 0 {
		cfg.BodyReadTimeout = DefaultBodyReadTimeout
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.VisionStream != VisionStreamJSON && cfg.VisionStream != VisionStreamNative {
		cfg.VisionStream = VisionStreamEmulate
	}
	if cfg.StreamErrorFormat != StreamErrorOpenAI {
		cfg.StreamErrorFormat = StreamErrorString
	}
	if cfg.LimitOnError != LimitDeny {
		cfg.LimitOnError = LimitAllow
	}
	if cfg.ResumeWindow <= 0 {
		cfg.ResumeWindow = DefaultResumeWindow
	}
	if cfg.StreamLease <= 0 {
		cfg.StreamLease = DefaultStreamLease
	}
	if cfg.ModelInfoTTL <= 0 {
		cfg.ModelInfoTTL = DefaultModelInfoTTL
	}
	if cfg.ImagePrices == nil {
		cfg.ImagePrices = pricing.DefaultImagePrices()
	}
	if cfg.ToolPrices == nil {
		cfg.ToolPrices = pricing.DefaultToolPrices()
	}
	if cfg.ReasoningTokens <= 0 {
		cfg.ReasoningTokens = DefaultReasoningTokens
	}
	s := &Server{log: log, cfg: cfg, auth: auth, up: up, mux: http.NewServeMux(), teeBuffer: defaultTeeBuffer}
	s.refused.now, s.refused.write = cfg.Now, s.record
	s.models = newModelCatalog(up, cfg.ModelInfoTTL, cfg.Now, log)
	s.owners.store, s.owners.local, s.owners.log = cfg.Responses, cfg.ResponseOwnersLocal, log
	if cfg.ResponseOwnersLocal {
		s.owners.linger = ownerLinger
	}
	s.up = observedUpstream{s: s, up: up} // after the catalog, whose fetches belong to no one request
	s.bufs.New = func() any { b := make([]byte, 1<<10); return &b }
	s.logAttrs.New = func() any { a := make([]slog.Attr, 0, 28); return &a }
	s.routes()
	return s
}

// Handler is the server as net/http should call it: traced when
// Config.Tracer is set, else the Server itself.
func (s *Server) Handler() http.Handler {
	if s.cfg.Tracer != nil {
		return s.withTracing(s)
	}
	return s
}
