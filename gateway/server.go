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

	"github.com/grokgate/grokgate"
)

// Authenticator resolves a presented gateway key.
type Authenticator interface {
	// Authenticate returns the key for secret, or an error from package keys
	// (ErrMissing, ErrInvalid, ErrRevoked, ErrExpired).
	Authenticate(ctx context.Context, secret string) (*grokgate.Key, error)
}

// Upstream sends a request to xAI. The response body belongs to the caller;
// cancelling ctx aborts the exchange.
type Upstream interface {
	Do(ctx context.Context, method, path string, body []byte) (*http.Response, error)
}

// Config tunes the server. Every zero value means the documented default.
type Config struct {
	// MaxBodyBytes caps a request body; 0 means 25 MiB.
	MaxBodyBytes int64
	// UpstreamTimeout caps how long upstream may take to start answering: to
	// the first event of a stream, or to the whole body otherwise. Reasoning
	// models can think for minutes before either, hence the default of 10m
	// when zero.
	UpstreamTimeout time.Duration
	// Ready reports whether the server can serve (database reachable); nil
	// means always ready.
	Ready func(context.Context) error
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Usage receives one record per chat completion request; nil records
	// nothing.
	Usage UsageRecorder
	// Admin backs the /admin/v1 API; nil leaves the admin API out.
	Admin AdminStore
}

const (
	defaultMaxBody         = 25 << 20
	defaultUpstreamTimeout = 10 * time.Minute
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
	// bufs recycles SSE read buffers across streams; steady-state relaying
	// then allocates nothing per event.
	bufs sync.Pool
}

// NewServer returns the gateway handler.
func NewServer(log *slog.Logger, cfg Config, auth Authenticator, up Upstream) http.Handler {
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = defaultMaxBody
	}
	if cfg.UpstreamTimeout <= 0 {
		cfg.UpstreamTimeout = defaultUpstreamTimeout
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &Server{log: log, cfg: cfg, auth: auth, up: up, mux: http.NewServeMux()}
	s.bufs.New = func() any { b := make([]byte, 4096); return &b }
	s.routes()
	return s.withRequestID(s.withRecovery(s.mux))
}
