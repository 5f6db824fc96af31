package simulator

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Options configures a Simulator.
type Options struct {
	APIKey string           // if non-empty only this bearer key is accepted; if empty any non-empty bearer key is
	Now    func() time.Time // clock for "created" fields; nil means time.Now (delays always use real timers)
	Logger *slog.Logger     // nil means discard
}

// Simulator is the fake xAI API. It implements http.Handler and is safe for
// concurrent use.
type Simulator struct {
	apiKey string
	now    func() time.Time
	log    *slog.Logger
	chat   []modelInfo
	image  []imageModelInfo
	images imageStore
	// responses holds stored Responses API answers.
	responses *responseStore
	// attempts counts identical request bodies for the fail_times directive.
	attempts attemptCounter

	requests         atomic.Int64
	streamsStarted   atomic.Int64
	streamsCompleted atomic.Int64
	streamsCanceled  atomic.Int64
	// requestsCanceled counts non-streaming requests whose client left
	// before the answer was ready.
	requestsCanceled atomic.Int64
	imagesGenerated  atomic.Int64
}

// Stats is a snapshot of the simulator's counters (see the package doc).
type Stats struct {
	Requests         int64 `json:"requests"`
	StreamsStarted   int64 `json:"streams_started"`
	StreamsCompleted int64 `json:"streams_completed"`
	StreamsCanceled  int64 `json:"streams_canceled"`
	RequestsCanceled int64 `json:"requests_canceled"`
	ImagesGenerated  int64 `json:"images_generated"`
}

// maxBodyBytes bounds request bodies; xAI allows 20 MiB per image and any
// number of images, so be generous.
const maxBodyBytes = 64 << 20

// New returns a Simulator configured by opts.
func New(opts Options) *Simulator {
	s := &Simulator{
		apiKey: opts.APIKey,
		now:    opts.Now,
		log:    opts.Logger,
		chat:   chatModels(),
		image:  imageModels(),

		responses: newResponseStore(maxStoredResponses),
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.images.init(maxStoredImages)
	return s
}

// Stats returns a snapshot of the counters.
func (s *Simulator) Stats() Stats {
	return Stats{
		Requests:         s.requests.Load(),
		StreamsStarted:   s.streamsStarted.Load(),
		StreamsCompleted: s.streamsCompleted.Load(),
		StreamsCanceled:  s.streamsCanceled.Load(),
		RequestsCanceled: s.requestsCanceled.Load(),
		ImagesGenerated:  s.imagesGenerated.Load(),
	}
}

// ServeHTTP routes a request. Routing is by hand rather than http.ServeMux so
// that 404 and 405 answers carry xAI's error body.
func (s *Simulator) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Path
	if !strings.HasPrefix(p, "/sim/") {
		s.requests.Add(1)
	}
	s.log.Debug("simulator request", "method", r.Method, "path", p)

	switch {
	case p == "/v1/chat/completions":
		s.serve(w, r, http.MethodPost, true, s.handleChat)
	case p == "/v1/responses" || strings.HasPrefix(p, "/v1/responses/"):
		s.serveResponses(w, r)
	case p == "/v1/images/generations":
		s.serve(w, r, http.MethodPost, true, s.handleImages)
	case p == "/v1/models":
		s.serve(w, r, http.MethodGet, true, s.handleModels)
	case strings.HasPrefix(p, "/v1/models/"):
		s.serve(w, r, http.MethodGet, true, s.handleModel)
	case p == "/v1/language-models":
		s.serve(w, r, http.MethodGet, true, s.handleLanguageModels)
	case strings.HasPrefix(p, "/v1/language-models/"):
		s.serve(w, r, http.MethodGet, true, s.handleLanguageModel)
	case p == "/v1/image-generation-models":
		s.serve(w, r, http.MethodGet, true, s.handleImageModels)
	case strings.HasPrefix(p, "/v1/image-generation-models/"):
		s.serve(w, r, http.MethodGet, true, s.handleImageModel)
	case p == "/sim/stats":
		s.serve(w, r, http.MethodGet, false, s.handleStats)
	case strings.HasPrefix(p, "/sim/images/"):
		s.serve(w, r, http.MethodGet, false, s.handleImageFile)
	default:
		writeError(w, &apiError{status: http.StatusNotFound, msg: "No handler found for " + r.Method + " " + p})
	}
}

// serve checks the method (HEAD rides along with GET) and, if needed, the
// bearer key before calling h.
func (s *Simulator) serve(w http.ResponseWriter, r *http.Request, method string, auth bool, h http.HandlerFunc) {
	if r.Method != method && !(method == http.MethodGet && r.Method == http.MethodHead) {
		allow := method
		if method == http.MethodGet {
			allow = "GET, HEAD"
		}
		w.Header().Set("Allow", allow)
		writeError(w, &apiError{status: http.StatusMethodNotAllowed,
			msg: fmt.Sprintf("Method %s is not allowed for %s", r.Method, r.URL.Path)})
		return
	}
	if auth {
		if err := s.authorize(r); err != nil {
			writeError(w, err)
			return
		}
	}
	h(w, r)
}

// authorize implements xAI's split: a missing or malformed header is 401, a
// well-formed but wrong key is 400 with the key masked.
func (s *Simulator) authorize(r *http.Request) *apiError {
	key, ok := bearerKey(r)
	if !ok {
		return &apiError{status: http.StatusUnauthorized,
			msg: "No API key provided. Pass it as 'Authorization: Bearer <key>'. You can obtain an API key from https://console.x.ai."}
	}
	if s.apiKey != "" && key != s.apiKey {
		return &apiError{status: http.StatusBadRequest,
			msg: "Incorrect API key provided: " + maskKey(key) + ". You can obtain an API key from https://console.x.ai."}
	}
	return nil
}

func bearerKey(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	scheme, key, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	key = strings.TrimSpace(key)
	return key, key != ""
}

// maskKey shows the first and last two characters, like xAI; short keys are
// hidden entirely so the mask never reveals most of a key.
func maskKey(key string) string {
	rs := []rune(key)
	if len(rs) < 8 {
		return "***"
	}
	return string(rs[:2]) + "***" + string(rs[len(rs)-2:])
}

// teamID derives a stable fake team id from the caller's key for 404
// messages, without revealing the key.
func teamID(r *http.Request) string {
	key, _ := bearerKey(r)
	sum := sha256.Sum256([]byte("grokgate-sim-team:" + key))
	h := hex.EncodeToString(sum[:16])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// newID returns a random UUIDv4, the shape of xAI's completion ids.
func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// apiError is an answer in xAI's flat error shape, or, with plain set, the
// plain-text body xAI sends when it cannot decode a request.
type apiError struct {
	status     int
	code       string // empty means codeFor(status)
	msg        string
	plain      bool
	retryAfter int
}

func (e *apiError) Error() string {
	return fmt.Sprintf("simulator: %d: %s", e.status, e.msg)
}

// codeFor maps an HTTP status to the gRPC status phrase xAI puts in "code"
// (the descriptions of tonic's Code values).
func codeFor(status int) string {
	switch status {
	case 400:
		return "Client specified an invalid argument"
	case 401:
		return "The request does not have valid authentication credentials"
	case 403:
		return "The caller does not have permission to execute the specified operation"
	case 404:
		return "Some requested entity was not found"
	case 405, 410, 501:
		return "Operation is not implemented or not supported"
	case 408, 504:
		return "Deadline expired before operation could complete"
	case 409:
		return "The operation was aborted"
	case 413, 429:
		return "Some resource has been exhausted"
	case 499:
		return "The operation was cancelled"
	case 503:
		return "The service is currently unavailable"
	}
	if status >= 500 {
		return "Internal error"
	}
	return "Client specified an invalid argument"
}

func writeError(w http.ResponseWriter, e *apiError) {
	if e.retryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(e.retryAfter))
	}
	if e.plain {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(e.status)
		_, _ = io.WriteString(w, e.msg)
		return
	}
	code := e.code
	if code == "" {
		code = codeFor(e.status)
	}
	writeJSON(w, e.status, errorBody{Code: code, Error: e.msg})
}

type errorBody struct {
	Code  string `json:"code"`
	Error string `json:"error"`
}

// marshal encodes compactly without HTML escaping, as xAI does.
func marshal(v any) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		// Only our own types are encoded here; failing means a programming error.
		panic(err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b := marshal(v)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// readJSON reads the body and decodes it into v. Undecodable bodies get
// xAI's (axum's) 422 plain-text answer.
func readJSON(w http.ResponseWriter, r *http.Request, v any) *apiError {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return &apiError{status: http.StatusRequestEntityTooLarge, msg: "Request body is too large"}
		}
		return &apiError{status: http.StatusBadRequest, msg: "Failed to read the request body: " + err.Error()}
	}
	return decodeJSON(body, v)
}

func decodeJSON(body []byte, v any) *apiError {
	if err := unmarshal(body, v); err != nil {
		var syn *jsontext.SyntacticError
		if errors.As(err, &syn) && syn.Err == jsontext.ErrDuplicateName {
			// serde's words for it
			name := syn.JSONPointer.LastToken()
			return &apiError{status: http.StatusUnprocessableEntity, plain: true,
				msg: "Failed to deserialize the JSON body into the target type: duplicate field `" + name + "`"}
		}
		return &apiError{status: http.StatusUnprocessableEntity, plain: true,
			msg: "Failed to deserialize the JSON body into the target type: " + err.Error()}
	}
	return nil
}

// unmarshal decodes as xAI's serde does: names matched exactly (a "MODEL"
// is an unknown field, ignored, not "model") and given once. encoding/json
// would match names in any case, and tests would then see a body mean
// something it does not mean upstream.
func unmarshal(b []byte, v any) error {
	return jsonv2.Unmarshal(b, v, jsontext.AllowInvalidUTF8(true))
}

// wait blocks for d or until ctx is done; it reports whether the full delay
// passed. A timer (not time.Sleep) lets a departing client end it at once.
func wait(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

func (s *Simulator) handleStats(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.Stats())
}

// attemptCounter counts how often each request body was seen, so that
// #sim{"fail_times":N} fails the first N tries of a request and lets the
// retry through. Bounded with two generations: when the current map fills,
// it becomes the previous one, so a body is remembered for at least
// maxTracked newer bodies (a retry comes long before that).
type attemptCounter struct {
	mu        sync.Mutex
	cur, prev map[[32]byte]int
}

const maxTracked = 4096

func (a *attemptCounter) next(body []byte) int {
	h := sha256.Sum256(body)
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.cur == nil || len(a.cur) >= maxTracked {
		a.prev, a.cur = a.cur, make(map[[32]byte]int)
	}
	n, ok := a.cur[h]
	if !ok {
		n = a.prev[h]
	}
	a.cur[h] = n + 1
	return n + 1
}
