package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/grokgate/grokgate/sse"
	"github.com/grokgate/grokgate/xai"
)

var (
	doneData  = []byte("[DONE]")
	errorKey  = []byte(`"error"`)
	errNoDone = errors.New("upstream stream ended without [DONE]")
)

// relay copies an upstream event stream to the client event by event, each
// byte for byte as xAI sent it, flushing whenever no further event is already
// read, so every event reaches the client before the upstream sends the next.
//
// Response headers are held back until the first event: until then an
// upstream failure can still be answered with a proper HTTP status. After it,
// failures end the stream with one SSE error event and no [DONE].
func (s *Server) relay(w http.ResponseWriter, r *http.Request, ctx context.Context, resp *http.Response, timer *time.Timer) {
	bp := s.bufs.Get().(*[]byte)
	defer s.bufs.Put(bp)
	sc := sse.NewScanner(resp.Body, *bp, 0)
	rc := http.NewResponseController(w)
	m := meterFrom(r.Context())
	started := false
	var scratch []byte // only for events that are not a single data line
	for sc.Scan() {
		ev := sc.Event()
		data, ok := sse.Data(ev)
		if !ok {
			scratch, _ = sse.AppendData(scratch[:0], ev)
			data = scratch
		}
		if bytes.Equal(data, doneData) {
			if !started {
				// [DONE] with nothing before it: nothing to relay but the end.
				s.startStream(w, timer)
				m.started(s.cfg.Now())
				started = true
			}
			if _, err := w.Write(ev); err == nil && rc.Flush() == nil {
				m.complete()
			}
			drain(sc)
			return
		}
		if bytes.Contains(data, errorKey) {
			if msg, isErr := eventError(data); isErr {
				if !started {
					timer.Stop()
					s.fail(w, r, xai.StatusError(http.StatusOK, data), nil)
				} else {
					s.failStream(w, r, msg, nil)
				}
				return
			}
		}
		if m.observe(data) {
			// The usage chunk the client did not ask for: withheld, but
			// what was written before it must not wait in the buffer.
			if started && !sc.Buffered() {
				rc.Flush()
			}
			continue
		}
		if !started {
			s.startStream(w, timer)
			m.started(s.cfg.Now())
			started = true
		}
		if _, err := w.Write(ev); err != nil {
			return // the client is gone; its context cancels upstream
		}
		if !sc.Buffered() {
			if err := rc.Flush(); err != nil {
				return
			}
		}
	}
	err := sc.Err()
	if err == nil {
		err = errNoDone
	}
	if r.Context().Err() != nil {
		infoFrom(r.Context()).status = statusClientClosed
		return
	}
	if !started {
		e := upstreamFailure(ctx, r.Context(), err)
		if errors.Is(err, errNoDone) {
			e.Message = "xAI ended the stream before sending any event; try again"
		}
		s.fail(w, r, e, err)
		return
	}
	msg := "the upstream stream ended unexpectedly before it was complete"
	if errors.Is(context.Cause(ctx), errUpstreamTimeout) {
		msg = "xAI stopped answering in time"
	}
	s.failStream(w, r, msg, err)
}

// startStream commits the SSE response headers.
func (s *Server) startStream(w http.ResponseWriter, timer *time.Timer) {
	timer.Stop()
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	// Tells nginx-style proxies in front of grokgate not to buffer the stream.
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
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
