package xai

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"

	"github.com/grokgate/grokgate/apierror"
)

// flatError is xAI's error body: {"code":"<string>","error":"<message>"}.
type flatError struct {
	Code  json.RawMessage `json:"code"`
	Error json.RawMessage `json:"error"`
}

// ParseError reports whether body is an xAI error body and returns its code
// and message. It also understands an OpenAI-style {"error":{"message",...}}
// body, which xAI sends on some routes.
func ParseError(body []byte) (code, message string, ok bool) {
	body = bytes.TrimSpace(body)
	if len(body) == 0 || body[0] != '{' {
		return "", "", false
	}
	var fe flatError
	if json.Unmarshal(body, &fe) != nil || len(fe.Error) == 0 || string(fe.Error) == "null" {
		return "", "", false
	}
	code = rawString(fe.Code)
	switch fe.Error[0] {
	case '"':
		_ = json.Unmarshal(fe.Error, &message)
	case '{':
		var inner struct {
			Message string          `json:"message"`
			Code    json.RawMessage `json:"code"`
		}
		_ = json.Unmarshal(fe.Error, &inner)
		message = inner.Message
		if code == "" {
			code = rawString(inner.Code)
		}
	default:
		message = string(fe.Error)
	}
	if message == "" {
		message = "upstream error"
	}
	return code, message, true
}

func rawString(raw json.RawMessage) string {
	if len(raw) == 0 || string(raw) == "null" {
		return ""
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	return string(raw) // numeric codes
}

// StatusError turns an upstream error response (status and body) into the
// error the client sees. Upstream 4xx keep their status, except the ones that
// are about grokgate's own xAI credentials, which are the operator's problem
// and not the caller's: those become 502 so the caller's SDK does not report
// its own gateway key as bad.
func StatusError(status int, body []byte) *apierror.Error {
	code, msg, ok := ParseError(body)
	if !ok {
		msg = strings.TrimSpace(string(body))
		if len(msg) > 512 {
			msg = msg[:512] + "..."
		}
		if msg == "" {
			msg = http.StatusText(status)
		}
	}
	e := &apierror.Error{Status: status, Code: code, Message: msg}
	switch {
	case status == http.StatusOK:
		// xAI's 200-with-JSON-error on a streaming request: the code tells.
		e.Status = statusForCode(code)
	case status == http.StatusUnauthorized || status == http.StatusForbidden ||
		(status == http.StatusBadRequest && strings.HasPrefix(msg, "Incorrect API key")):
		e.Status = http.StatusBadGateway
		e.Type = apierror.TypeUpstream
		e.Code = "upstream_auth_failed"
		e.Message = "xAI rejected the gateway's upstream API key (status " + strconv.Itoa(status) +
			"); the grokgate operator must check XAI_API_KEY"
	case status == http.StatusUnprocessableEntity:
		e.Status = http.StatusBadRequest
		e.Message = "xAI could not decode the request: " + msg
	case status == http.StatusInternalServerError || status == http.StatusNotImplemented:
		e.Status = http.StatusBadGateway
	case status < 400 || status > 599:
		e.Status = http.StatusBadGateway
	}
	if e.Code == "" && e.Status >= 500 {
		e.Code = "upstream_error"
	}
	if e.Type == "" && e.Status >= 500 {
		e.Type = apierror.TypeUpstream
	}
	return e
}

// statusForCode maps xAI's gRPC-style code phrases to HTTP statuses.
func statusForCode(code string) int {
	c := strings.ToLower(code)
	switch {
	case strings.Contains(c, "unavailable"):
		return http.StatusServiceUnavailable
	case strings.Contains(c, "deadline"):
		return http.StatusGatewayTimeout
	case strings.Contains(c, "invalid argument"), strings.Contains(c, "invalid-argument"):
		return http.StatusBadRequest
	case strings.Contains(c, "not found"), strings.Contains(c, "not-found"):
		return http.StatusNotFound
	case strings.Contains(c, "exhausted"), strings.Contains(c, "rate"):
		return http.StatusTooManyRequests
	default:
		return http.StatusBadGateway
	}
}
