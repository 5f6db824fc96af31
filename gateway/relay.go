package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/grokgate/grokgate/apierror"
	"github.com/grokgate/grokgate/sse"
	"github.com/grokgate/grokgate/xai"
)

// Header values every response of a kind carries, never modified: assigned
// rather than Set, which allocates a slice per header per response. Full
// slice expressions, so an Add copies instead of writing into them.
var (
	eventStreamType = []string{"text/event-stream"}[:1:1]
	noCache         = []string{"no-cache"}[:1:1]
	noBuffering     = []string{"no"}[:1:1]
	jsonType        = []string{"application/json"}[:1:1]
)

var (
	doneData   = []byte("[DONE]")
	errorKey   = []byte(`"error"`)
	keepAlive  = []byte(": keep-alive\n\n")
	errNoEnd   = errors.New("upstream stream ended without its final event")
	errIdle    = errors.New("upstream stream idle")
	errTotal   = errors.New("upstream total timeout")
	errStopped = errors.New("server shutting down")
)

// relay copies an upstream event stream to the client event by event, each
// byte for byte as xAI sent it, flushing the first at once and then whenever
// no further event is already read, so every event reaches the client before
// the upstream sends the next, and the first does not wait for the work on
// those that came with it (a Responses stream opens with several at once).
//
// The request's dialect (dialect.go) meters each event and says where the
// stream ends; event: lines and every other byte pass as xAI sent them.
//
// Response headers are held back until the first event (or the first
// heartbeat): until then an upstream failure can still be answered with a
// proper HTTP status. After it, failures end the stream with the dialect's
// error event.
func (s *Server) relay(ctx context.Context, w http.ResponseWriter, r *http.Request, resp *http.Response, wd *watchdog) {
	out := s.newSSEOut(w, r, wd)
	defer out.close()
	bp := s.bufs.Get().(*[]byte)
	defer s.bufs.Put(bp)
	sc := sse.NewScanner(resp.Body, *bp, 0)

	var scratch []byte // only for events that are not a single data line
	for sc.Scan() {
		ev := sc.Event()
		wd.event() // the idle clock starts with the first event
		out.clock.event()
		data, ok := sse.Data(ev)
		if !ok {
			scratch, _ = sse.AppendData(scratch[:0], ev)
			data = scratch
		}
		act := out.d.event(data)
		if out.m != nil && out.m.progress.Due() {
			out.publish()
		}
		switch act {
		case actEnd:
			if out.write(ev, true) {
				out.m.complete()
			}
			drain(sc)
			return
		case actError:
			s.relayErrorEvent(w, r, out, data)
			return
		case actWithhold:
			// Metered only (chat's usage chunk the client did not ask
			// for), but what was written before it must not wait in the
			// buffer.
			if !sc.Buffered() {
				out.flush()
			}
			continue
		}
		if !out.write(ev, !sc.Buffered()) {
			return // the client is gone; its context cancels upstream
		}
	}
	s.relayEnded(ctx, w, r, out, sc.Err())
}

// publish gives the journal, which asked, the stream's running counts.
func (o *sseOut) publish() { o.m.publish(o.d) }

// relayErrorEvent ends the stream on xAI's error event: with its HTTP error
// if nothing was sent yet, else with the dialect's error event.
func (s *Server) relayErrorEvent(w http.ResponseWriter, r *http.Request, out *sseOut, data []byte) {
	noteStreamEnd(r, nil)
	e := out.d.upstreamError(data)
	if out.claim() {
		s.fail(w, r, e, nil)
	} else {
		out.fail(r, e, nil)
	}
}

// relayEnded answers for a stream that ended without its final event ([DONE]
// or a terminal event): an HTTP error if nothing was sent yet, else the
// dialect's error event. Apart from relay, whose frame stays on the stack
// while a stream is open.
func (s *Server) relayEnded(ctx context.Context, w http.ResponseWriter, r *http.Request, out *sseOut, err error) {
	if err == nil {
		err = errNoEnd
	}
	if r.Context().Err() != nil {
		infoFrom(r.Context()).status = statusClientClosed
		return
	}
	cause := context.Cause(ctx)
	noteStreamEnd(r, cause)
	if out.claim() {
		s.fail(w, r, noEventFailure(ctx, r.Context(), err), err)
		return
	}
	out.fail(r, s.midStreamError(cause), err)
	if errors.Is(cause, errIdle) || errors.Is(cause, errTotal) {
		out.hangUp(r)
	}
}

// noEventFailure is the HTTP error for an upstream stream that ended, with
// err (errNoEnd: xAI simply stopped), before any of its events was sent.
func noEventFailure(ctx, clientCtx context.Context, err error) *apierror.Error {
	e := upstreamFailure(ctx, clientCtx, err)
	if errors.Is(err, errNoEnd) {
		e.Message = "xAI ended the stream before sending any event; try again"
	}
	return e
}

// midStreamError is the error event for a stream that began and then
// ended without its final event, cause being why its upstream context
// ended (nil when xAI simply stopped): relayed and detached streams alike.
func (s *Server) midStreamError(cause error) *apierror.Error {
	msg := "the upstream stream ended unexpectedly before it was complete"
	switch {
	case errors.Is(cause, errFirstByteTimeout):
		msg = "xAI did not start answering in time"
	case errors.Is(cause, errIdle):
		msg = "xAI sent nothing for " + s.cfg.StreamIdleTimeout.String() + "; the stream was ended"
	case errors.Is(cause, errTotal):
		msg = "the stream ran longer than the gateway allows (" + s.cfg.TotalTimeout.String() + ")"
	case errors.Is(cause, errStopped):
		msg = "grokgate is shutting down; send the request again"
	case errors.Is(cause, errRevoked):
		return &apierror.Error{Status: http.StatusUnauthorized, Code: "revoked_api_key", Message: errRevoked.Error()}
	}
	return &apierror.Error{Status: http.StatusBadGateway, Type: apierror.TypeUpstream, Code: "stream_interrupted", Message: msg}
}

// hangUp closes the client's connection after a stream a timeout ended: a
// client that stopped reading would otherwise keep it, and its buffers,
// for its next request. HTTP/1.1 only; an HTTP/2 stream ends with the
// handler, its connection shared.
func (o *sseOut) hangUp(r *http.Request) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.closed = true
	if !r.ProtoAtLeast(1, 1) || r.ProtoAtLeast(2, 0) {
		return
	}
	conn, rw, err := o.rc.Hijack()
	if err != nil {
		return
	}
	// The stream's chunked body ends properly: the error event before it
	// is what the client should see, not a broken transfer.
	if !o.broken {
		rw.WriteString("0\r\n\r\n")
		rw.Flush()
	}
	conn.Close()
}

// sseOut is the client side of one stream. The relay loop and the heartbeat
// timer both write, so writes take mu; it is per stream, never shared.
type sseOut struct {
	s         *Server
	w         http.ResponseWriter
	rc        *http.ResponseController
	wd        *watchdog
	heartbeat *time.Timer // nil when heartbeats are off
	beaten    time.Time   // the last heartbeat, or when the stream's client side began
	m         *meter      // usage metering of this request
	d         dialect     // the request's dialect: how events are metered and an error event looks
	metered   bool        // m knows the first event was sent
	clock     streamClock // metrics: TTFT, gaps, open streams; used by the relay loop only

	mu      sync.Mutex
	started bool
	closed  bool
	broken  bool // a write failed: the client is gone
}

// newSSEOut starts the client side of a stream: its heartbeat and its
// metrics clock. (Set up here rather than in relay, whose frame stays on the
// stack while the stream is open.)
func (s *Server) newSSEOut(w http.ResponseWriter, r *http.Request, wd *watchdog) *sseOut {
	m := meterFrom(r.Context())
	out := &sseOut{s: s, w: w, rc: http.NewResponseController(w), wd: wd, m: m, d: m.dialect(), clock: s.streamClock(r)}
	wd.rc.Store(out.rc)
	if s.cfg.Heartbeat > 0 {
		out.mu.Lock() // beat reads the fields; it may fire before the assignment otherwise
		out.beaten = time.Now()
		out.heartbeat = time.AfterFunc(s.cfg.Heartbeat, out.beat)
		out.mu.Unlock()
	}
	return out
}

// claim takes the response for an ordinary HTTP error if no byte of the
// stream was sent yet, and stops the heartbeat from sending any.
func (o *sseOut) claim() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.started {
		return false
	}
	o.closed = true
	o.wd.stop()
	if o.heartbeat != nil {
		o.heartbeat.Stop()
	}
	return true
}

// write sends one event, committing the headers first if needed, and
// flushes when flush is set or the event is the stream's first. It reports
// whether the client is still there.
func (o *sseOut) write(ev []byte, flush bool) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.broken {
		return false
	}
	if !o.started {
		o.start()
	}
	if _, err := o.w.Write(ev); err != nil {
		o.broken = true
		return false
	}
	if !o.metered {
		o.m.started(o.s.cfg.Now())
		o.metered = true
		flush = true
	}
	if flush {
		if err := o.rc.Flush(); err != nil {
			o.broken = true
			return false
		}
	}
	return true
}

// flush sends what was written, if the stream has begun.
func (o *sseOut) flush() {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.started && !o.broken && o.rc.Flush() != nil {
		o.broken = true
	}
}

// beat writes an SSE comment during upstream silence so proxies and load
// balancers keep the connection, committing the headers if the first token
// is slow. SDKs skip comment lines.
func (o *sseOut) beat() {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed || o.broken {
		return
	}
	// Heartbeats fill upstream silence. Events do not reset the timer (a
	// runtime timer reset per event cost more than the event's other
	// bookkeeping): the timer, when it fires after an event, sleeps again
	// until a full interval has passed since the last one.
	last := o.beaten
	if t, ok := o.wd.lastEvent(); ok && t.After(last) {
		last = t
	}
	if wait := o.s.cfg.Heartbeat - time.Since(last); wait > 0 {
		o.heartbeat.Reset(wait)
		return
	}
	if !o.started {
		o.start()
	}
	if _, err := o.w.Write(keepAlive); err != nil || o.rc.Flush() != nil {
		o.broken = true
		return
	}
	o.beaten = time.Now()
	o.heartbeat.Reset(o.s.cfg.Heartbeat)
}

// start commits the SSE response headers; mu is held.
func (o *sseOut) start() {
	setEventStreamHeaders(o.w.Header())
	o.w.WriteHeader(http.StatusOK)
	o.started = true
}

// setEventStreamHeaders sets the headers every SSE answer carries, relayed
// or emulated.
func setEventStreamHeaders(h http.Header) {
	h["Content-Type"] = eventStreamType
	h["Cache-Control"] = noCache
	// Tells nginx-style proxies in front of grokgate not to buffer the stream.
	h["X-Accel-Buffering"] = noBuffering
}

// writeEmulated sends a whole emulated stream (events built from a complete
// answer) and notes the request complete once it is flushed.
func writeEmulated(w http.ResponseWriter, m *meter, events []byte) {
	setEventStreamHeaders(w.Header())
	w.WriteHeader(http.StatusOK)
	if _, err := w.Write(events); err == nil && http.NewResponseController(w).Flush() == nil {
		m.complete()
	}
}

// fail ends a begun stream with the dialect's error event.
func (o *sseOut) fail(r *http.Request, e *apierror.Error, cause error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.broken {
		return
	}
	o.s.failStream(o.w, r, o.d, e, cause)
}

// close stops the heartbeat; after it no write happens, so the handler may
// return and net/http reuse the writer. The stream's metrics end with it.
func (o *sseOut) close() {
	if o.wd.rc.Swap(nil) != nil {
		// A deadline the watchdog set must not outlive the stream on a
		// connection kept for the next request.
		o.rc.SetWriteDeadline(time.Time{})
	}
	o.mu.Lock()
	o.closed = true
	if o.heartbeat != nil {
		o.heartbeat.Stop()
	}
	o.mu.Unlock()
	o.clock.end()
}

// drain reads what follows [DONE] (normally just the end of the body) so the
// upstream connection goes back to the pool instead of being closed.
func drain(sc *sse.Scanner) {
	for sc.Scan() {
	}
}

// eventError reports whether an event's data is an error object (a top-level
// "error" key that is not null) and returns its message.
func eventError(data []byte) (string, bool) {
	var probe struct {
		Error json.RawMessage `json:"error"`
	}
	if json.Unmarshal(data, &probe) != nil || len(probe.Error) == 0 || string(probe.Error) == "null" {
		return "", false
	}
	if _, msg, ok := xai.ParseError(data); ok {
		return msg, true
	}
	return string(probe.Error), true
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
