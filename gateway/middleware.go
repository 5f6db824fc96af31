package gateway

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net/http"
	"path"
	"strings"
	"time"

	"github.com/grokgate/grokgate"
	"github.com/grokgate/grokgate/apierror"
	"github.com/grokgate/grokgate/keys"
)

// requestInfo travels with a request so the access log and error writer know
// what the handlers learned. One per request; handlers on that request's
// goroutine write it, the log middleware reads it after they return.
type requestInfo struct {
	id        string
	start     time.Time
	key       *grokgate.Key
	model     string
	stream    bool
	status    int
	errCode   string
	errMsg    string // what the client was told
	cause     error  // internal detail, for the log only
	streamErr bool
	// The limiter's and the meter's state for this request, nil on routes
	// without them. Kept here rather than in context values of their own:
	// each of those would copy the request.
	limit   *limitState
	meter   *meter
	obsInfo // metrics, access log and tracing (observe.go)
}

type infoKey struct{}

func infoFrom(ctx context.Context) *requestInfo {
	if info, ok := ctx.Value(infoKey{}).(*requestInfo); ok {
		return info
	}
	return orphanInfo()
}

// orphanInfo serves code reached outside ServeHTTP (tests of one handler).
// It is kept out of line on purpose: inlined into infoFrom's many callers,
// its requestInfo would be placed in each caller's stack frame, which a
// stream's goroutine holds for the stream's whole life.
//
//go:noinline
func orphanInfo() *requestInfo { return new(requestInfo) }

// newRequestID returns 48 bits of the time in milliseconds followed by 64
// random bits: unique across replicas, and in time order, so the usage
// ledger (keyed by request id) appends to its index instead of inserting at
// random places, which grows the index's cost with its size.
func newRequestID(now time.Time) string {
	var b [14]byte
	ms := uint64(now.UnixMilli())
	for i := 5; i >= 0; i-- {
		b[i] = byte(ms)
		ms >>= 8
	}
	rand.Read(b[6:])
	return "req_" + hex.EncodeToString(b[:])
}

// ServeHTTP is what every request passes first: it gets an id, returned as
// X-Request-Id; a panic becomes a 500 (recoverPanic); an unclean path a 404;
// then the route serves it, and when it ends, whatever way, its access-log
// line and metrics are written (finish).
//
// One method rather than three wrapping handlers because a stream keeps
// every frame below the relay on its goroutine's stack for as long as it is
// open, and net/http's first flush of a response goes deeper still: fewer
// and smaller frames keep that stack within its budget
// (TestStreamStackBudget), a large share of what an open stream costs.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	now := s.cfg.Now()
	info := &requestInfo{id: newRequestID(now), start: now}
	w.Header().Set("X-Request-Id", info.id)
	sw := &statusWriter{ResponseWriter: w}
	inner := r.WithContext(context.WithValue(r.Context(), infoKey{}, info))
	defer s.finish(r, inner, info, sw) // deferred first, so it runs after recoverPanic
	defer s.recoverPanic(sw, inner)
	if r.ContentLength != 0 {
		s.bodyDeadline(w, now)
	}
	if !cleanPath(inner.URL.Path) {
		// ServeMux would redirect with a 301, which turns a POST into a
		// GET in many clients and hides the mistake.
		s.handleNotFound(sw, inner)
		return
	}
	s.mux.ServeHTTP(sw, inner)
}

// bodyDeadline bounds how long a request's body may take to arrive, before
// anything else is known of it: a handler that never reads the body (a 401,
// a 404) would otherwise leave net/http waiting to drain a body announced
// and never sent, holding the connection without a key. The handlers that
// read a body clear it once read; a body that misses it gets a 408.
//
//go:noinline
func (s *Server) bodyDeadline(w http.ResponseWriter, now time.Time) {
	http.NewResponseController(w).SetReadDeadline(now.Add(s.cfg.BodyReadTimeout))
}

// statusWriter records the status and byte count for the access log. Unwrap
// lets http.ResponseController reach the real writer's Flush.
type statusWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += int64(n)
	return n, err
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// recoverPanic, deferred, turns a handler panic into a 500 envelope (if
// nothing was written yet) and a logged stack, so one bad request cannot
// take the process down.
func (s *Server) recoverPanic(w *statusWriter, r *http.Request) {
	v := recover()
	if v == nil {
		return
	}
	if v == http.ErrAbortHandler {
		panic(v)
	}
	s.log.Error("handler panic", "request_id", infoFrom(r.Context()).id, "panic", v)
	if w.status != 0 {
		panic(http.ErrAbortHandler) // headers gone: cut the connection
	}
	s.fail(w, r, &apierror.Error{Status: http.StatusInternalServerError, Code: "internal_error",
		Message: "internal error; report the X-Request-Id to the grokgate operator"}, nil)
}

// authenticate finds the request's gateway key and notes it on the request,
// or answers 401 itself and returns false.
func (s *Server) authenticate(w http.ResponseWriter, r *http.Request) bool {
	h := r.Header.Get("Authorization")
	if h == "" && s.cfg.Sessions != nil {
		// The console's session cookie (session.go); a Bearer key, when
		// sent, always wins.
		if found, ok := s.sessionAuth(w, r); found {
			return ok
		}
	}
	secret, err := bearer(h)
	var k *grokgate.Key
	if err == nil {
		k, err = s.auth.Authenticate(r.Context(), secret)
	}
	if err != nil {
		if r.ContentLength != 0 {
			// No one to read the body for: close rather than drain it.
			w.Header().Set("Connection", "close")
		}
		if errors.Is(err, keys.ErrUnavailable) {
			// Not the key's fault: the store could not confirm it.
			s.fail(w, r, keyStoreUnavailable(err), err)
			return false
		}
		w.Header().Set("WWW-Authenticate", `Bearer realm="grokgate"`)
		s.fail(w, r, authError(err), nil)
		return false
	}
	infoFrom(r.Context()).key = k
	return true
}

// admission says when a keyed route asks the limiter to admit its request.
type admission uint8

const (
	// admitOnKey admits as soon as the key is known.
	admitOnKey admission = iota
	// admitAfterBody leaves admission to the handler (s.admit), once the
	// body is parsed: the token use of chat, vision and Responses depends on it.
	admitAfterBody
)

// keyed serves an API route: the gateway key is checked (authenticate);
// with a limiter, the request is admitted (when says at which point)
// and its slots released when it ends, whatever way; with a route name, it
// is metered so that it ends as exactly one usage record, settled before
// the release so the limits learn its real usage. Only requests with a
// valid key (someone to bill) are recorded. One handler for the three, as
// in ServeHTTP, to keep a stream's stack small; h is a method expression
// for the same reason (a method value adds a wrapper frame).
func (s *Server) keyed(when admission, route string, h func(*Server, http.ResponseWriter, *http.Request)) http.Handler {
	return &keyedRoute{s: s, when: when, route: route, h: h}
}

type keyedRoute struct {
	s     *Server
	when  admission
	route string
	h     func(*Server, http.ResponseWriter, *http.Request)
}

func (k *keyedRoute) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s := k.s
	if !s.authenticate(w, r) {
		return
	}
	info := infoFrom(r.Context())
	if e := metricsOnly(info.key); e != nil {
		s.fail(w, r, e, nil)
		return
	}
	if s.refusedTooOften(w, r, k.route) {
		return
	}
	if held := s.holdBody(w, r); held < 0 {
		return
	} else if held > 0 {
		defer s.bodies.release(held)
	}
	if s.cfg.Limiter != nil {
		st := &limitState{}
		info.limit = st
		defer s.release(r, st)
		if k.when == admitOnKey && !s.admit(w, r, false, nil) {
			return
		}
	}
	if k.route == "" {
		k.h(s, w, r)
		return
	}
	m := newMeter(k.route)
	info.meter = m
	defer s.settle(w, r, m)
	if k.when == admitAfterBody && s.cfg.Limiter != nil && !s.precheck(w, r) {
		m.returned = true
		return
	}
	k.h(s, w, r)
	if !m.detached { // else the runner's now
		m.returned = true
	}
}

var errMalformedAuth = errors.New("malformed Authorization header")

// bearer extracts the token of an "Authorization: Bearer <token>" header.
func bearer(h string) (string, error) {
	if h == "" {
		return "", keys.ErrMissing
	}
	scheme, token, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", errMalformedAuth
	}
	token = strings.TrimSpace(token)
	if token == "" {
		return "", keys.ErrMissing
	}
	return token, nil
}

func authError(err error) *apierror.Error {
	e := &apierror.Error{Status: http.StatusUnauthorized, Code: "invalid_api_key"}
	switch {
	case errors.Is(err, keys.ErrMissing):
		e.Code = "missing_api_key"
		e.Message = "Missing API key. Send your grokgate key as 'Authorization: Bearer <key>'."
	case errors.Is(err, errMalformedAuth):
		e.Message = "Malformed Authorization header. Send your grokgate key as 'Authorization: Bearer <key>'."
	case errors.Is(err, keys.ErrRevoked):
		e.Code = "revoked_api_key"
		e.Message = "This API key has been revoked. Ask the grokgate operator for a new one."
	case errors.Is(err, keys.ErrExpired):
		e.Code = "expired_api_key"
		e.Message = "This API key has expired. Ask the grokgate operator to extend it or for a new one."
	case errors.Is(err, ErrSessionEnded):
		e.Code = "session_ended"
		e.Message = "Your console session has ended; sign in again."
	default:
		e.Message = "Invalid API key. Check the key you were given by the grokgate operator (it starts with \"gg-\")."
	}
	return e
}

// keyStoreUnavailable is the 503 for a key that could not be checked
// (keys.ErrUnavailable): the client may send the request again.
func keyStoreUnavailable(err error) *apierror.Error {
	e := &apierror.Error{Status: http.StatusServiceUnavailable, Type: apierror.TypeAPI, Code: "store_unavailable"}
	switch {
	case errors.Is(err, keys.ErrNotLoaded):
		e.Message = "grokgate cannot check API keys yet: its database has not answered since it started; try again shortly"
	case errors.Is(err, keys.ErrStale):
		e.Message = "grokgate cannot check API keys: its database has not answered for too long to trust the keys it knows; try again shortly"
	default:
		e.Message = "grokgate could not check this API key: its database is not answering; try again shortly"
	}
	return e
}

// cleanPath reports whether p has no "..", "//" or similar (a trailing
// slash is allowed): others get a 404 in the envelope.
func cleanPath(p string) bool {
	return p != "" && p[0] == '/' && (path.Clean(p) == p || path.Clean(p)+"/" == p)
}
