package gateway

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/grokgate/grokgate/apierror"
)

// largeBody is the size from which a request body counts against the
// in-flight budget; smaller ones are too small to matter and too many to
// be worth the lock.
const largeBody = 64 << 10

// bodyWait is how long a large body waits for room before a 503.
const bodyWait = 2 * time.Second

// byteBudget bounds the bytes of large request bodies held at once, so
// many clients announcing large bodies cannot, together, take the process's
// memory: each may send up to GROKGATE_MAX_BODY_BYTES, and a body is held
// (read, then re-encoded) until its request ends.
type byteBudget struct {
	mu   sync.Mutex
	used int64
	wake chan struct{} // closed and replaced at each release
}

// acquire takes n bytes of max, waiting at most wait for room; a body alone
// larger than the budget is let through when nothing else is held, so that
// what GROKGATE_MAX_BODY_BYTES allows stays possible.
func (b *byteBudget) acquire(ctx context.Context, n, max int64, wait time.Duration) bool {
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	for {
		b.mu.Lock()
		if b.used == 0 || b.used+n <= max {
			b.used += n
			b.mu.Unlock()
			return true
		}
		if b.wake == nil {
			b.wake = make(chan struct{})
		}
		wake := b.wake
		b.mu.Unlock()
		select {
		case <-wake:
		case <-deadline.C:
			return false
		case <-ctx.Done():
			return false
		}
	}
}

func (b *byteBudget) release(n int64) {
	b.mu.Lock()
	b.used -= n
	if b.wake != nil {
		close(b.wake)
		b.wake = nil
	}
	b.mu.Unlock()
}

// holdBody reserves room for r's body if it is large, and returns the
// bytes to release when the request ends (0: nothing held). If there is no
// room in time it answers 503 itself and returns -1.
func (s *Server) holdBody(w http.ResponseWriter, r *http.Request) int64 {
	n := r.ContentLength
	if n < 0 { // chunked: as much as it may be
		n = s.cfg.MaxBodyBytes
	}
	if n < largeBody || n > s.cfg.MaxBodyBytes { // over the limit: a 413 without reading it
		return 0
	}
	if s.bodies.acquire(r.Context(), n, s.cfg.MaxBodyBytesInFlight, bodyWait) {
		return n
	}
	w.Header().Set("Retry-After", "1")
	w.Header().Set("Connection", "close") // the body is not read
	s.fail(w, r, &apierror.Error{Status: http.StatusServiceUnavailable, Type: apierror.TypeAPI, Code: "server_busy",
		Message: "grokgate is receiving as many large request bodies as it holds at once (GROKGATE_MAX_BODY_BYTES_IN_FLIGHT); try again shortly"}, nil)
	return -1
}
