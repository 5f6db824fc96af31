package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"

	"github.com/grokgate/grokgate/apierror"
)

// statusClientClosed is logged (never sent: nobody is listening) when the
// client went away before the answer was complete, as nginx and Caddy do.
const statusClientClosed = 499

// fail is the one way the server reports an error before any byte of the
// response was written: the status and the OpenAI envelope go to the client;
// cause, the internal detail, goes only to the request's access-log line,
// which the X-Request-Id header ties to the response.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, e *apierror.Error, cause error) {
	info := infoFrom(r.Context())
	status := e.StatusCode()
	info.status, info.errCode, info.errMsg, info.cause = status, e.Code, e.Message, cause
	body, _ := json.Marshal(e)
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Del("Content-Length")
	w.WriteHeader(status)
	w.Write(append(body, '\n'))
}

// StreamErrorFormat says how the chat error event that ends a begun stream
// is written (GROKGATE_STREAM_ERROR_FORMAT).
type StreamErrorFormat string

const (
	// StreamErrorString, the specified default, writes
	// {"error":"API error: <message>"}. The SDKs look for an object there:
	// openai-python shows a generic message, the AI SDK a schema error.
	StreamErrorString StreamErrorFormat = "string"
	// StreamErrorOpenAI writes the OpenAI error envelope,
	// {"error":{"message":"API error: <message>","type","param","code"}},
	// from which the SDKs raise an error carrying the message.
	StreamErrorOpenAI StreamErrorFormat = "openai"
)

// ParseStreamErrorFormat checks a configured format.
func ParseStreamErrorFormat(s string) (StreamErrorFormat, error) {
	switch f := StreamErrorFormat(s); f {
	case StreamErrorString, StreamErrorOpenAI:
		return f, nil
	}
	return "", fmt.Errorf("%q is not a stream error format; use string or openai", s)
}

// failStream ends a stream whose headers are already sent with the dialect's
// error event in the configured format (chat: {"error":"API error: <message>"}
// or the OpenAI error object, and no [DONE]). It is the only writer of that
// event.
func (s *Server) failStream(w http.ResponseWriter, r *http.Request, d dialect, e *apierror.Error, cause error) {
	info := infoFrom(r.Context())
	info.streamErr, info.errCode, info.errMsg, info.cause = true, e.Code, e.Message, cause
	w.Write(d.appendError(make([]byte, 0, 128), e, s.cfg.StreamErrorFormat))
	http.NewResponseController(w).Flush()
}

// Fail is fail for routes of other packages (the admin API): the same
// envelope, and the same access-log line.
func (s *Server) Fail(w http.ResponseWriter, r *http.Request, e *apierror.Error, cause error) {
	s.fail(w, r, e, cause)
}

// upstreamFailure classifies an error from sending to or reading from xAI.
// ctx is the upstream context, whose cause tells a timeout from a client
// that went away.
func upstreamFailure(ctx, clientCtx context.Context, err error) *apierror.Error {
	switch {
	case clientCtx.Err() != nil:
		return &apierror.Error{Status: statusClientClosed, Code: "client_closed", Message: "client closed the request"}
	case errors.Is(context.Cause(ctx), errFirstByteTimeout), errors.Is(context.Cause(ctx), errTotal):
		return &apierror.Error{Status: http.StatusGatewayTimeout, Type: apierror.TypeUpstream, Code: "upstream_timeout",
			Message: "xAI did not start answering in time; try again, or raise GROKGATE_FIRST_BYTE_TIMEOUT"}
	case errors.Is(context.Cause(ctx), errStopped):
		return &apierror.Error{Status: http.StatusServiceUnavailable, Type: apierror.TypeAPI, Code: "shutting_down",
			Message: "grokgate is shutting down; send the request again"}
	case isDialError(err):
		return &apierror.Error{Status: http.StatusBadGateway, Type: apierror.TypeUpstream, Code: "upstream_unreachable",
			Message: "could not reach xAI; try again shortly"}
	default:
		return &apierror.Error{Status: http.StatusBadGateway, Type: apierror.TypeUpstream, Code: "upstream_connection_lost",
			Message: "the connection to xAI broke before it answered; try again"}
	}
}

var errFirstByteTimeout = errors.New("upstream timeout")

func (s *Server) handleNotFound(w http.ResponseWriter, r *http.Request) {
	s.fail(w, r, &apierror.Error{Status: http.StatusNotFound, Code: "unknown_url",
		Message: "Unknown request URL: " + r.Method + " " + r.URL.Path + ". grokgate serves the OpenAI API under /api/v1 (for example POST /api/v1/chat/completions)."}, nil)
}

func (s *Server) methodNotAllowed(allowed string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", allowed)
		s.fail(w, r, &apierror.Error{Status: http.StatusMethodNotAllowed, Code: "method_not_allowed",
			Message: r.Method + " is not allowed on " + r.URL.Path + "; use " + allowed + "."}, nil)
	})
}

func notReady() *apierror.Error {
	return &apierror.Error{Status: http.StatusServiceUnavailable, Type: apierror.TypeAPI, Code: "not_ready",
		Message: "grokgate is not ready: its database does not answer"}
}

// isDialError tells a connection never made (xAI unreachable) from one that
// broke later.
func isDialError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}
