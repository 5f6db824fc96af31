package gateway

import (
	"net/http"
	"sort"
	"strings"
)

// routes is the whole API surface. Each OpenAI-compatible route is served at
// /api/v1 (grokgate's documented base URL) and at /v1, where clients that
// assume OpenAI's layout post.
func (s *Server) routes() {
	const late = true
	for _, base := range []string{"/api/v1", "/v1"} {
		// keyed (middleware.go): key check, limits (admitted late: once
		// the body is parsed), usage metering under the route's name.
		s.handle(http.MethodPost, base+"/chat/completions", s.keyed(late, "/chat/completions", (*Server).handleChat))
		s.handle(http.MethodGet, base+"/models", s.keyed(!late, "", (*Server).handleModels))
		// OpenAI's SDKs post to /images/generations; /images/generate is ours.
		s.handle(http.MethodPost, base+"/images/generations", s.keyed(!late, "/images/generations", (*Server).handleImages))
		s.handle(http.MethodPost, base+"/images/generate", s.keyed(!late, "/images/generations", (*Server).handleImages))
		s.handle(http.MethodPost, base+"/vision/analyze", s.keyed(late, "/vision/analyze", (*Server).handleVision))
		s.handle(http.MethodGet, base+"/models/{id}", s.keyed(!late, "", (*Server).handleModel))
		if s.cfg.Responses != nil {
			// The Responses API (responses.go); every stored response is
			// its creator key's alone.
			s.handle(http.MethodPost, base+"/responses", s.keyed(late, "/responses", (*Server).handleResponses))
			s.handleMethods(base+"/responses/{id}", map[string]http.Handler{
				http.MethodGet:    s.keyed(!late, "/responses", (*Server).handleGetResponse),
				http.MethodDelete: s.keyed(!late, "/responses", (*Server).handleDeleteResponse)})
			// Not handle: a catch-all 405 on this path would overlap the
			// one of /responses/{id}; the methods that one serves get the
			// 405 here instead.
			s.mux.Handle("POST "+base+"/responses/compact", s.keyed(late, "/responses", (*Server).handleCompactResponse))
			s.mux.Handle("GET "+base+"/responses/compact", s.methodNotAllowed(http.MethodPost))
			s.mux.Handle("DELETE "+base+"/responses/compact", s.methodNotAllowed(http.MethodPost))
		}
	}
	if s.cfg.Admin != nil {
		// The admin API (gateway/admin.go): admin-role keys only.
		admin := func(h http.HandlerFunc) http.Handler { return s.authed(s.adminOnly(h)) }
		s.handleMethods("/admin/v1/keys", map[string]http.Handler{
			http.MethodGet: admin(s.handleListKeys), http.MethodPost: admin(s.handleCreateKey)})
		s.handleMethods("/admin/v1/keys/{id}", map[string]http.Handler{
			http.MethodGet: admin(s.handleGetKey), http.MethodPatch: admin(s.handleUpdateKey)})
		s.handle(http.MethodPost, "/admin/v1/keys/{id}/revoke", admin(s.handleRevokeKey))
		s.handle(http.MethodGet, "/admin/v1/usage", admin(s.handleUsage))
		s.handle(http.MethodGet, "/admin/v1/requests", admin(s.handleAdminRequests))
		// A key's own settings and ledger (ledger.go), for any key.
		for _, base := range []string{"/api/v1", "/v1"} {
			s.handle(http.MethodGet, base+"/me", s.authed(s.handleMe))
			s.handle(http.MethodGet, base+"/me/usage", s.authed(s.handleMyUsage))
			s.handle(http.MethodGet, base+"/me/requests", s.authed(s.handleMyRequests))
		}
	}
	if s.cfg.Live != nil {
		s.handle(http.MethodGet, "/admin/v1/live", s.authed(s.adminOnly(s.cfg.Live.ServeHTTP)))
	}
	if s.cfg.Metrics != nil {
		s.handle(http.MethodGet, "/metrics", s.authed(s.adminOnly(s.cfg.Metrics.ServeHTTP)))
	}
	s.handle(http.MethodGet, "/healthz", http.HandlerFunc(s.handleHealthz))
	s.handle(http.MethodGet, "/readyz", http.HandlerFunc(s.handleReadyz))
	s.mux.HandleFunc("/", s.handleNotFound)
}

// handle registers h for method on path, and answers any other method on the
// path with a 405 in the OpenAI envelope (ServeMux's own 405 is plain text).
func (s *Server) handle(method, path string, h http.Handler) {
	s.mux.Handle(method+" "+path, h)
	s.mux.Handle(path, s.methodNotAllowed(method))
}

// handleMethods registers several methods on one path, with the same 405
// for any other method as handle.
func (s *Server) handleMethods(path string, hs map[string]http.Handler) {
	allowed := make([]string, 0, len(hs))
	for method, h := range hs {
		s.mux.Handle(method+" "+path, h)
		allowed = append(allowed, method)
	}
	sort.Strings(allowed)
	s.mux.Handle(path, s.methodNotAllowed(strings.Join(allowed, ", ")))
}
