package gateway

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/grokgate/grokgate/apierror"
	"github.com/grokgate/grokgate/mediatype"
	"github.com/grokgate/grokgate/xai"
)

// handleChat serves POST /chat/completions: validate, forward the client's
// own bytes to xAI, then relay the stream or return the JSON.
func (s *Server) handleChat(w http.ResponseWriter, r *http.Request) {
	body, e := s.readBody(w, r)
	if e != nil {
		s.fail(w, r, e, nil)
		return
	}
	// Parsed here, not in serveChat, so encoding/json's deep recursion never
	// sits on top of serveChat's frame: the stack a stream keeps would
	// otherwise grow past its budget (TestStreamStackBudget).
	req, e := parseChat(body)
	if e != nil {
		s.fail(w, r, e, nil)
		return
	}
	s.serveChat(w, r, body, &req, req.stream && s.cfg.Streams != nil && wantsResumable(r))
}

// serveChat answers a parsed chat completion body; /vision/analyze ends
// here too. resumable: the client asked for a resumable stream, which it
// gets when xAI is asked to stream (an image answered without xAI's stream
// has nothing to resume).
func (s *Server) serveChat(w http.ResponseWriter, r *http.Request, body []byte, req *parsedChat, resumable bool) {
	body, stream, ok := s.admitChatBody(w, r, body, req)
	if !ok {
		return
	}
	if resumable && stream {
		s.serveResumableChat(w, r, body)
		return
	}
	// The upstream context derives from the client's, so a client that goes
	// away cancels the upstream request at once; the watchdog adds the
	// timeouts.
	ctx, cancel, wd := s.upstreamContext(r)
	defer cancel(nil)
	resp, ok := s.send(ctx, w, r, xai.Request{Method: http.MethodPost, Path: "/chat/completions", Body: body})
	if !ok {
		return
	}
	defer resp.Body.Close()
	if stream && resp.StatusCode == http.StatusOK && isEventStream(resp.Header) {
		s.relay(ctx, w, r, resp, wd)
		return
	}
	if req.stream && !stream && s.cfg.VisionStream == VisionStreamEmulate {
		s.emulateStream(ctx, w, r, resp, req.includeUsage)
		return
	}
	s.forwardJSON(ctx, w, r, resp, stream)
}

// send makes a metered request's upstream call within ctx (from
// upstreamContext) and notes on the meter how it went; if not ok, the
// failure was answered.
func (s *Server) send(ctx context.Context, w http.ResponseWriter, r *http.Request, req xai.Request) (*http.Response, bool) {
	m := meterFrom(r.Context())
	resp, err := s.up.Do(ctx, req)
	if err != nil {
		m.sendFailed(ctx, r.Context())
		s.fail(w, r, upstreamFailure(ctx, r.Context(), err), err)
		return nil, false
	}
	m.answered(resp.StatusCode)
	return resp, true
}

// admitChatBody checks the key may use the model and the limits admit the
// request, then returns the body to send and whether xAI is asked to
// stream; if not ok, the answer was written. Apart from serveChat so that
// its locals are off the stack while a stream is relayed.
func (s *Server) admitChatBody(w http.ResponseWriter, r *http.Request, body []byte, req *parsedChat) (_ []byte, stream, ok bool) {
	info := infoFrom(r.Context())
	info.model, info.stream = req.model, req.stream
	if e := modelNotAllowed(info.key, req.model); e != nil {
		s.fail(w, r, e, nil)
		return nil, false, false
	}
	if !s.admitChat(w, r, *req) {
		return nil, false, false
	}
	body = meterFrom(r.Context()).askStreamUsage(s, body, req)
	s.journal(r, meterFrom(r.Context()))
	stream, body, e := s.visionStreaming(w, *req, body)
	if e != nil {
		s.fail(w, r, e, nil)
		return nil, false, false
	}
	if req.stream && !stream {
		markFallback(r)
	}
	return body, stream, true
}

// upstreamContext derives the context of an upstream exchange from the
// client's, so a client that goes away cancels the upstream request at once.
// The cause it is cancelled with tells the timeouts and a shutdown apart.
// The watchdog enforces the timeouts; cancel stops it.
func (s *Server) upstreamContext(r *http.Request) (context.Context, context.CancelCauseFunc, *watchdog) {
	ctx, cancel := context.WithCancelCause(r.Context())
	stopShutdown := context.AfterFunc(s.cfg.Shutdown, func() { cancel(errStopped) })
	wd := newWatchdog(cancel, s.cfg.FirstByteTimeout, s.cfg.StreamIdleTimeout, s.cfg.TotalTimeout)
	s.track(wd, infoFrom(r.Context()).key)
	return ctx, func(cause error) {
		cancel(cause)
		wd.stop()
		stopShutdown()
		s.untrack(wd)
	}, wd
}

// readBody reads the request body within the configured limit.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request) ([]byte, *apierror.Error) {
	return s.readBodyLimit(w, r, s.cfg.MaxBodyBytes)
}

func (s *Server) readBodyLimit(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, *apierror.Error) {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		if !jsonish(mediatype.Of(ct)) {
			return nil, &apierror.Error{Status: http.StatusUnsupportedMediaType, Code: "unsupported_content_type",
				Message: "Unsupported Content-Type " + quote(ct) + "; send the body as JSON with 'Content-Type: application/json'."}
		}
	}
	if r.ContentLength > limit {
		return nil, tooLarge(limit)
	}
	rc := http.NewResponseController(w)
	rc.SetReadDeadline(s.cfg.Now().Add(s.cfg.BodyReadTimeout))
	body, err := readAll(http.MaxBytesReader(w, r.Body, limit), r.ContentLength)
	if err != nil {
		// The deadline stays: net/http discards an unread body before it
		// answers, and must not wait for one that never ends.
		var mbe *http.MaxBytesError
		var ne net.Error
		switch {
		case errors.As(err, &mbe):
			return nil, tooLarge(limit)
		case errors.As(err, &ne) && ne.Timeout():
			return nil, s.bodyTimeout(w)
		}
		return nil, &apierror.Error{Status: http.StatusBadRequest, Code: "body_read_failed",
			Message: "Could not read the request body; send it again."}
	}
	rc.SetReadDeadline(time.Time{})
	return body, nil
}

// ReadJSON reads a JSON object body of at most limit bytes, as the API's
// handlers do (the body deadline, 408, 413), and decodes it into v with the
// strict decoder (decodeBody). The admin API reads its bodies with it.
func (s *Server) ReadJSON(w http.ResponseWriter, r *http.Request, limit int64, v any) *apierror.Error {
	body, e := s.readBodyLimit(w, r, limit)
	if e != nil {
		return e
	}
	return decodeObject(body, v, "")
}

// bodyTimeout is the 408 for a body that did not arrive in time. The
// connection is closed after it: what is left of the body may never come.
func (s *Server) bodyTimeout(w http.ResponseWriter) *apierror.Error {
	w.Header().Set("Connection", "close")
	return &apierror.Error{Status: http.StatusRequestTimeout, Code: "body_timeout",
		Message: "The request body did not arrive within " + s.cfg.BodyReadTimeout.String() + "; send the whole body promptly."}
}

// jsonish accepts the media types JSON bodies arrive with in practice: curl's
// -d sends application/x-www-form-urlencoded unless told otherwise, and the
// body is validated as JSON either way.
func jsonish(mt string) bool {
	switch mt {
	case "application/json", "text/plain", "application/x-www-form-urlencoded":
		return true
	}
	return strings.HasSuffix(mt, "+json")
}

func tooLarge(limit int64) *apierror.Error {
	return &apierror.Error{Status: http.StatusRequestEntityTooLarge, Code: "request_too_large",
		Message: "Request body is larger than the gateway's limit of " + formatBytes(limit) + "; send less (or ask the operator to raise GROKGATE_MAX_BODY_BYTES)."}
}

// forwardJSON returns a non-streaming upstream answer, or the mapped error.
// stream says the client asked to stream, in which case a JSON answer can
// only be xAI's 200-with-error.
func (s *Server) forwardJSON(ctx context.Context, w http.ResponseWriter, r *http.Request, resp *http.Response, stream bool) {
	body, e, cause := upstreamAnswer(ctx, w, r, resp)
	if e != nil {
		s.fail(w, r, e, cause)
		return
	}
	m := meterFrom(r.Context())
	if stream && !bytes.Contains(body, []byte(`"choices"`)) {
		m.refusedBody()
		s.fail(w, r, &apierror.Error{Status: http.StatusBadGateway, Code: "upstream_bad_response",
			Message: "xAI answered a streaming request with " + quote(resp.Header.Get("Content-Type")) + " instead of an event stream."}, nil)
		return
	}
	m.completion(body)
	h := w.Header()
	h["Content-Type"] = jsonType
	w.WriteHeader(http.StatusOK)
	if _, err := w.Write(body); err == nil {
		m.complete()
	}
}

func isEventStream(h http.Header) bool {
	return mediatype.Of(h.Get("Content-Type")) == "text/event-stream"
}

func quote(s string) string { return "\"" + s + "\"" }

func formatBytes(n int64) string {
	switch {
	case n%(1<<20) == 0:
		return itoa(n>>20) + " MiB"
	case n%(1<<10) == 0:
		return itoa(n>>10) + " KiB"
	default:
		return itoa(n) + " bytes"
	}
}
