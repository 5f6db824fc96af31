package gateway

import (
	"crypto/subtle"
	"errors"
	"net/http"

	"github.com/grokgate/grokgate"
	"github.com/grokgate/grokgate/apierror"
	"github.com/grokgate/grokgate/keys"
)

// SessionAuthenticator resolves the web console's sign-in cookie (package
// console), which the console's pages send instead of a Bearer key, so the
// browser calls the same API with the same checks as any client.
type SessionAuthenticator interface {
	// Session returns the key of r's session and the session's CSRF token.
	// A request without a session cookie gets (nil, "", nil); an ended or
	// unknown session ErrSessionEnded; a session whose key was revoked or
	// expired the error of package keys; a store failure any other error.
	Session(r *http.Request) (k *grokgate.Key, csrf string, err error)
}

// ErrSessionEnded is a session cookie that signs no one in any more: signed
// out, expired, or never issued.
var ErrSessionEnded = errors.New("console session ended")

// CSRFHeader carries a session's CSRF token on every state-changing request
// authenticated by the session cookie. A page of another site can make the
// browser send the cookie, but cannot read the token to send this header.
const CSRFHeader = "X-CSRF-Token"

// sessionAuth is authenticate for a request without an Authorization
// header when the console is on. It reports whether r carried a session
// cookie, and whether it may go on.
func (s *Server) sessionAuth(w http.ResponseWriter, r *http.Request) (found, ok bool) {
	k, token, err := s.cfg.Sessions.Session(r)
	switch {
	case k == nil && err == nil:
		return false, false
	case errors.Is(err, ErrSessionEnded), errors.Is(err, keys.ErrInvalid), errors.Is(err, keys.ErrRevoked), errors.Is(err, keys.ErrExpired):
		s.fail(w, r, authError(err), nil)
		return true, false
	case err != nil:
		s.fail(w, r, apierror.StoreUnavailable(), err)
		return true, false
	}
	if !safeMethod(r.Method) && (token == "" || subtle.ConstantTimeCompare([]byte(r.Header.Get(CSRFHeader)), []byte(token)) != 1) {
		s.fail(w, r, &apierror.Error{Status: http.StatusForbidden, Type: apierror.TypePermission, Code: "csrf_token_invalid",
			Message: "This request was authenticated by the console's session cookie but lacks its CSRF token (header " + CSRFHeader + "); reload the console page, or send a Bearer key instead."}, nil)
		return true, false
	}
	infoFrom(r.Context()).key = k
	return true, true
}

// safeMethod reports whether method only reads (RFC 9110 9.2.1).
func safeMethod(method string) bool {
	return method == http.MethodGet || method == http.MethodHead || method == http.MethodOptions
}
