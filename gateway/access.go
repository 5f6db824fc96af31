package gateway

import (
	"net/http"
	"strings"

	"github.com/grokgate/grokgate"
	"github.com/grokgate/grokgate/apierror"
)

// modelNotAllowed returns the 403 for a key that may not use model, or nil.
func modelNotAllowed(k *grokgate.Key, model string) *apierror.Error {
	if k == nil || k.Allows(model) {
		return nil
	}
	return &apierror.Error{Status: http.StatusForbidden, Type: apierror.TypePermission, Param: "model", Code: "model_not_allowed",
		Message: "This API key may not use the model " + quote(model) + ". Models allowed for this key: " +
			strings.Join(k.AllowedModels, ", ") + ". Ask the grokgate operator to allow it."}
}

// RequireAdmin lets only requests with a valid admin-role key through to h
// (the admin API and /metrics); others get the 401 or 403 envelope.
func (s *Server) RequireAdmin(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.authenticate(w, r) {
			return
		}
		if k := infoFrom(r.Context()).key; k == nil || k.Role != grokgate.RoleAdmin {
			s.fail(w, r, &apierror.Error{Status: http.StatusForbidden, Type: apierror.TypePermission, Code: "admin_required",
				Message: "The admin API needs a key with the admin role; this key has the user role."}, nil)
			return
		}
		h(w, r)
	})
}

// RequireKey lets requests with any valid key through to h, which gets the
// key (a key's own views: package admin's /api/v1/me routes).
func (s *Server) RequireKey(h func(http.ResponseWriter, *http.Request, *grokgate.Key)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.authenticate(w, r) {
			h(w, r, infoFrom(r.Context()).key)
		}
	})
}
