package gateway

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/grokgate/grokgate"
	"github.com/grokgate/grokgate/xai"
)

// Observer receives what the gateway measures (package metrics implements
// it). Config.Observer nil measures nothing.
type Observer interface {
	// Request is called once per request, after its access-log line.
	Request(RequestStats)
	// Stream is called when the relay begins an upstream stream; the relay
	// reports each event to what it returns and ends it. Resolving labels
	// here keeps the per-event calls free of lookups and allocations.
	Stream(model string) StreamObserver
	// UpstreamError counts a failure of xAI that the gateway detects itself:
	// "timeout" or "mid_stream". (The xai client counts "connect" and
	// "status" per attempt.)
	UpstreamError(kind string)
	// RateLimited counts a refusal by the gateway's own rate limiter; limit
	// names the limit that refused.
	RateLimited(limit, keyID string)
}

// StreamObserver follows one relayed stream.
type StreamObserver interface {
	// FirstEvent: the first upstream event reached the client this long
	// after the request arrived.
	FirstEvent(sinceArrival time.Duration)
	// Event: another upstream event, this long after the previous one.
	Event(gap time.Duration)
	// End: the stream is over, whichever way.
	End()
}

// RequestStats is what the gateway knows about a request once it ended.
type RequestStats struct {
	Route          string // the API route without its base, such as "/chat/completions"; "other" for unknown paths
	Model          string // the model the client asked for; "" before it is known
	KeyID          string // "" when no valid key was presented
	Status         int    // HTTP status the client got (499: it went away)
	Stream         bool
	Fallback       bool
	Outcome        grokgate.Outcome
	Duration       time.Duration
	CalledUpstream bool
	Upstream       time.Duration // time spent on the xAI exchange
	// Usage is the request's usage record on metered routes (chat
	// completions, vision), nil elsewhere.
	Usage *grokgate.Record
}

// obsInfo is what the observability code adds to requestInfo.
type obsInfo struct {
	rec            *grokgate.Record // the usage record, once settled
	calledUpstream bool
	upstreamDur    time.Duration
	upstreamReqID  string // xAI's own request id header, when it sends one
	upstreamErr    string // "timeout" or "mid_stream", noted by the relay
}

// routeLabel turns a mux pattern ("POST /api/v1/chat/completions") into a
// bounded route name ("/chat/completions").
func routeLabel(pattern string) string {
	if _, p, ok := strings.Cut(pattern, " "); ok {
		pattern = p
	}
	switch {
	case pattern == "" || pattern == "/":
		return "other"
	case strings.HasPrefix(pattern, "/api/v1/"):
		return pattern[len("/api/v1"):]
	case strings.HasPrefix(pattern, "/v1/"):
		return pattern[len("/v1"):]
	}
	return pattern
}

// finish ends a request: its one access-log line, its metrics, and its
// server span's attributes. inner is the request the mux saw (it carries the
// matched pattern).
func (s *Server) finish(r, inner *http.Request, info *requestInfo, sw *statusWriter) {
	status := sw.status
	if info.status == statusClientClosed || (r.Context().Err() != nil && status == 0) {
		status = statusClientClosed
	}
	st := RequestStats{
		Route: routeLabel(inner.Pattern), Model: info.model, Status: status, Stream: info.stream,
		Duration: s.cfg.Now().Sub(info.start), CalledUpstream: info.calledUpstream, Upstream: info.upstreamDur,
		Usage: info.rec, Outcome: outcome(info, status),
	}
	if info.key != nil {
		st.KeyID = info.key.ID
	}
	if info.rec != nil {
		st.Fallback = info.rec.Fallback
		st.Outcome = info.rec.Outcome
	}
	s.accessLog(r, info, sw, st)
	if o := s.cfg.Observer; o != nil {
		kind := info.upstreamErr
		if kind == "" && info.errCode == "upstream_timeout" {
			kind = "timeout"
		}
		if kind != "" {
			o.UpstreamError(kind)
		}
		o.Request(st)
	}
	if s.cfg.Tracer != nil {
		s.endServerSpan(r.Context(), r.Method, info, st)
	}
}

// outcome says how a request without a usage record ended, in the ledger's
// terms: an error after the request reached xAI is xAI's.
func outcome(info *requestInfo, status int) grokgate.Outcome {
	switch {
	case status == statusClientClosed:
		return grokgate.OutcomeClientCanceled
	case status < 400:
		return grokgate.OutcomeCompleted
	case info.calledUpstream:
		return grokgate.OutcomeUpstreamError
	case status >= 500:
		return grokgate.OutcomeInternalError
	}
	return grokgate.OutcomeRejected
}

// accessLog writes the request's one log line. It never holds a secret or
// message contents: keys appear by id and display prefix only, and bodies
// are not logged at all.
//
// The attributes are built in a pooled slice by accessAttrs, not in this
// frame: here, under slog's own frames, they would grow the goroutine's
// stack past its budget (TestStreamStackBudget), and a keep-alive
// connection carries a grown stack into its next stream.
func (s *Server) accessLog(r *http.Request, info *requestInfo, sw *statusWriter, st RequestStats) {
	ap := s.logAttrs.Get().(*[]slog.Attr)
	attrs, level := accessAttrs((*ap)[:0], r, info, sw, st)
	s.log.LogAttrs(r.Context(), level, "request", attrs...)
	clear(attrs) // drop references to this request's strings before pooling
	*ap = attrs
	s.logAttrs.Put(ap)
}

func accessAttrs(attrs []slog.Attr, r *http.Request, info *requestInfo, sw *statusWriter, st RequestStats) ([]slog.Attr, slog.Level) {
	attrs = append(attrs, slog.String("request_id", info.id), slog.String("method", r.Method),
		slog.String("path", r.URL.Path), slog.String("route", st.Route), slog.Int("status", st.Status),
		slog.String("outcome", string(st.Outcome)), slog.Int64("bytes", sw.bytes),
		slog.Float64("duration_ms", ms(st.Duration)))
	if info.key != nil {
		attrs = append(attrs, slog.String("key_id", info.key.ID), slog.String("key_prefix", info.key.Prefix))
	}
	if info.model != "" {
		attrs = append(attrs, slog.String("model", info.model), slog.Bool("stream", info.stream),
			slog.Bool("fallback", st.Fallback))
	}
	if info.calledUpstream {
		attrs = append(attrs, slog.Float64("upstream_ms", ms(info.upstreamDur)))
	}
	if info.upstreamReqID != "" {
		attrs = append(attrs, slog.String("upstream_request_id", info.upstreamReqID))
	}
	if rec := info.rec; rec != nil {
		if rec.TTFB > 0 {
			attrs = append(attrs, slog.Float64("ttfb_ms", ms(rec.TTFB)))
		}
		if rec.UpstreamID != "" {
			attrs = append(attrs, slog.String("upstream_id", rec.UpstreamID))
		}
		if rec.Model != "" {
			attrs = append(attrs, slog.String("response_model", rec.Model))
		}
		attrs = append(attrs, slog.Int64("prompt_tokens", rec.PromptTokens), slog.Int64("completion_tokens", rec.CompletionTokens),
			slog.Int64("reasoning_tokens", rec.ReasoningTokens), slog.Int64("cached_tokens", rec.CachedTokens))
		if rec.Estimated {
			attrs = append(attrs, slog.Bool("tokens_estimated", true))
		}
	}
	level := slog.LevelInfo
	if info.errMsg != "" {
		attrs = append(attrs, slog.String("error", info.errMsg), slog.String("error_code", info.errCode))
		if info.streamErr {
			attrs = append(attrs, slog.Bool("stream_error", true))
		}
		if info.cause != nil {
			attrs = append(attrs, slog.String("cause", info.cause.Error()))
		}
		if st.Status >= 500 || info.streamErr {
			level = slog.LevelWarn
		}
	}
	return attrs, level
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// observedUpstream times every upstream exchange of a request (and, with
// tracing on, wraps it in a client span), so the access log, the upstream
// histogram and the gateway overhead know how long xAI took.
type observedUpstream struct {
	s  *Server
	up Upstream
}

func (u observedUpstream) Do(ctx context.Context, req xai.Request) (*http.Response, error) {
	info := infoFrom(ctx)
	info.calledUpstream = true
	ctx, span := u.s.startClientSpan(ctx, req.Method, req.Path, info)
	start := u.s.cfg.Now()
	resp, err := u.up.Do(ctx, req)
	if err != nil {
		info.upstreamDur += u.s.cfg.Now().Sub(start)
		span.end(nil, err)
		return nil, err
	}
	if id := resp.Header.Get("X-Request-Id"); id != "" {
		info.upstreamReqID = id
	}
	resp.Body = &timedBody{ReadCloser: resp.Body, s: u.s, ctx: ctx, info: info, start: start, span: span, status: resp.StatusCode}
	return resp, nil
}

// timedBody ends the upstream timing (and span) when the handler closes the
// body: by then it has read all it will.
type timedBody struct {
	io.ReadCloser
	s      *Server
	ctx    context.Context
	info   *requestInfo
	start  time.Time
	span   clientSpan
	status int
	done   bool
}

func (b *timedBody) Close() error {
	err := b.ReadCloser.Close()
	if !b.done {
		b.done = true
		b.info.upstreamDur += b.s.cfg.Now().Sub(b.start)
		b.span.end(&spanEnd{status: b.status, m: meterFrom(b.ctx)}, nil)
	}
	return err
}

// streamClock feeds one relayed stream's events to its StreamObserver. Its
// zero value (metrics off) does nothing and reads no clock.
type streamClock struct {
	o     StreamObserver
	now   func() time.Time
	start time.Time // the request's arrival, then the previous event
	first bool
}

func (s *Server) streamClock(r *http.Request) streamClock {
	if s.cfg.Observer == nil {
		return streamClock{}
	}
	info := infoFrom(r.Context())
	return streamClock{o: s.cfg.Observer.Stream(info.model), now: s.cfg.Now, start: info.start, first: true}
}

// event notes one upstream event reaching the client.
func (c *streamClock) event() {
	if c.o == nil {
		return
	}
	now := c.now()
	if c.first {
		c.o.FirstEvent(now.Sub(c.start))
		c.first = false
	} else {
		c.o.Event(now.Sub(c.start))
	}
	c.start = now
}

func (c *streamClock) end() {
	if c.o != nil {
		c.o.End()
	}
}

// noteStreamEnd records why a begun upstream stream failed, for the
// upstream error counter: the gateway's own timeouts are "timeout", a
// shutdown is no upstream error, anything else is "mid_stream".
func noteStreamEnd(r *http.Request, cause error) {
	kind := "mid_stream"
	switch cause {
	case errFirstByteTimeout, errIdle, errTotal:
		kind = "timeout"
	case errStopped:
		kind = ""
	}
	infoFrom(r.Context()).upstreamErr = kind
}

// rateLimited reports a refusal by the gateway's own rate limiter to the
// metrics, if they are on: the limiter calls this rather than the Observer.
func (s *Server) rateLimited(limit string, k *grokgate.Key) {
	if s.cfg.Observer == nil {
		return
	}
	id := ""
	if k != nil {
		id = k.ID
	}
	s.cfg.Observer.RateLimited(limit, id)
}
