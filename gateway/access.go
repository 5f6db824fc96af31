package gateway

import (
	"net/http"
	"strings"

	"github.com/grokgate/grokgate"
	"github.com/grokgate/grokgate/openai"
)

// modelNotAllowed returns the 403 for a key that may not use model, or nil.
func modelNotAllowed(k *grokgate.Key, model string) *openai.Error {
	if k == nil || k.Allows(model) {
		return nil
	}
	return &openai.Error{Status: http.StatusForbidden, Type: openai.TypePermission, Param: "model", Code: "model_not_allowed",
		Message: "This API key may not use the model " + quote(model) + ". Models allowed for this key: " +
			strings.Join(k.AllowedModels, ", ") + ". Ask the grokgate operator to allow it."}
}

// adminOnly lets only admin-role keys through; it goes inside authed.
func (s *Server) adminOnly(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if k := infoFrom(r.Context()).key; k == nil || k.Role != grokgate.RoleAdmin {
			s.fail(w, r, adminRequired("The admin API needs a key with the admin role; this key has the user role."), nil)
			return
		}
		h(w, r)
	}
}

func adminRequired(msg string) *openai.Error {
	return &openai.Error{Status: http.StatusForbidden, Type: openai.TypePermission, Code: "admin_required", Message: msg}
}
