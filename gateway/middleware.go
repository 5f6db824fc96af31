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
	"github.com/grokgate/grokgate/keys"
	"github.com/grokgate/grokgate/openai"
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
	return &requestInfo{}
}

// newRequestID returns 48 bits of the time in milliseconds followed by 64
// random bits: unique across replicas, and in time order, so the usage
// ledger (keyed by request id) appends to its index instead of inserting at
// random places, which under load cost more than the requests themselves.
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

// withRequestID gives every request an id, returns it as X-Request-Id, and
// when the request ends writes its access-log line and metrics (finish).
func (s *Server) withRequestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		now := s.cfg.Now()
		info := &requestInfo{id: newRequestID(now), start: now}
		w.Header().Set("X-Request-Id", info.id)
		sw := &statusWriter{ResponseWriter: w}
		inner := r.WithContext(context.WithValue(r.Context(), infoKey{}, info))
		next.ServeHTTP(sw, inner)
		s.finish(r, inner, info, sw)
	})
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

// withRecovery turns a handler panic into a 500 envelope (if nothing was
// written yet) and a logged stack, so one bad request cannot take the
// process down.
func (s *Server) withRecovery(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			v := recover()
			if v == nil {
				return
			}
			if v == http.ErrAbortHandler {
				panic(v)
			}
			s.log.Error("handler panic", "request_id", infoFrom(r.Context()).id, "panic", v)
			if sw, ok := w.(*statusWriter); ok && sw.status != 0 {
				panic(http.ErrAbortHandler) // headers gone: cut the connection
			}
			s.fail(w, r, &openai.Error{Status: http.StatusInternalServerError, Code: "internal_error",
				Message: "internal error; report the X-Request-Id to the grokgate operator"}, nil)
		}()
		next.ServeHTTP(w, r)
	})
}

// authed requires a valid gateway key.
func (s *Server) authed(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		secret, err := bearer(r.Header.Get("Authorization"))
		var k *grokgate.Key
		if err == nil {
			k, err = s.auth.Authenticate(r.Context(), secret)
		}
		if err != nil {
			w.Header().Set("WWW-Authenticate", `Bearer realm="grokgate"`)
			s.fail(w, r, authError(err), nil)
			return
		}
		infoFrom(r.Context()).key = k
		h(w, r)
	})
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

func authError(err error) *openai.Error {
	e := &openai.Error{Status: http.StatusUnauthorized, Code: "invalid_api_key"}
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
	default:
		e.Message = "Invalid API key. Check the key you were given by the grokgate operator (it starts with \"gg-\")."
	}
	return e
}

// withCleanPath answers paths with "..", "//" or similar with a 404 in the
// envelope. ServeMux would redirect them with a 301, which turns a POST into
// a GET in many clients and hides the mistake.
func (s *Server) withCleanPath(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.Path
		if p == "" || p[0] != '/' || path.Clean(p) != p && path.Clean(p)+"/" != p {
			s.handleNotFound(w, r)
			return
		}
		next.ServeHTTP(w, r)
	})
}
