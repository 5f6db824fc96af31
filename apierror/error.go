// Package apierror holds the pieces of the OpenAI wire format that grokgate
// writes itself. It does no I/O.
package apierror

import (
	"encoding/json"
	"net/http"
)

// Error types, as OpenAI's API reports them in error.type.
const (
	TypeInvalidRequest = "invalid_request_error"
	TypeAuthentication = "authentication_error"
	TypePermission     = "permission_error"
	TypeNotFound       = "not_found_error"
	TypeRateLimit      = "rate_limit_error"
	TypeAPI            = "api_error"
	TypeUpstream       = "upstream_error"
)

// Error is an error a client may see: its HTTP status and the fields of the
// OpenAI error envelope. Internal detail belongs in logs, never here.
type Error struct {
	Status  int    // HTTP status; 0 means 500
	Type    string // error.type; "" is derived from Status
	Code    string // error.code; "" is written as null
	Param   string // error.param; "" is written as null
	Message string // error.message: what happened and what to do about it
}

func (e *Error) Error() string { return e.Message }

// StatusCode returns the HTTP status, defaulting to 500.
func (e *Error) StatusCode() int {
	if e.Status == 0 {
		return http.StatusInternalServerError
	}
	return e.Status
}

// envelope is {"error":{"message","type","param","code"}}, with every key
// present as OpenAI sends it.
type envelope struct {
	Error struct {
		Message string  `json:"message"`
		Type    string  `json:"type"`
		Param   *string `json:"param"`
		Code    *string `json:"code"`
	} `json:"error"`
}

// MarshalJSON renders the OpenAI error envelope.
func (e *Error) MarshalJSON() ([]byte, error) {
	var env envelope
	env.Error.Message = e.Message
	env.Error.Type = e.Type
	if env.Error.Type == "" {
		env.Error.Type = TypeFor(e.StatusCode())
	}
	if e.Param != "" {
		env.Error.Param = &e.Param
	}
	if e.Code != "" {
		env.Error.Code = &e.Code
	}
	return json.Marshal(env)
}

// TypeFor returns the error type OpenAI uses for an HTTP status.
func TypeFor(status int) string {
	switch {
	case status == http.StatusUnauthorized:
		return TypeAuthentication
	case status == http.StatusForbidden:
		return TypePermission
	case status == http.StatusNotFound:
		return TypeNotFound
	case status == http.StatusTooManyRequests:
		return TypeRateLimit
	case status >= 500:
		return TypeAPI
	default:
		return TypeInvalidRequest
	}
}

// Invalid is the 400 for a request parameter (param, "" for the body as a
// whole) that the client must fix as msg says.
func Invalid(param, msg string) *Error {
	return &Error{Status: http.StatusBadRequest, Type: TypeInvalidRequest, Param: param, Code: "invalid_request", Message: msg}
}

// StoreUnavailable is the answer when grokgate's database fails; the detail
// belongs in the log.
func StoreUnavailable() *Error {
	return &Error{Status: http.StatusServiceUnavailable, Type: TypeAPI, Code: "store_unavailable",
		Message: "grokgate's database did not answer; try again shortly"}
}
