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
	for _, base := range []string{"/api/v1", "/v1"} {
		// keyed (middleware.go): key check, limits (admitAfterBody: once
		// the body is parsed), usage metering under the route's name.
		s.Handle(http.MethodPost, base+"/chat/completions", s.keyed(admitAfterBody, "/chat/completions", (*Server).handleChat))
		// A resumable chat stream, picked up again (follow.go).
		s.Handle(http.MethodGet, base+"/chat/completions/{id}/stream", s.keyed(admitOnKey, "", (*Server).handleResumeChat))
		s.Handle(http.MethodGet, base+"/models", s.keyed(admitOnKey, "", (*Server).handleModels))
		// OpenAI's SDKs post to /images/generations; /images/generate is ours.
		// Images are admitted once the body says how many and of which
		// model: their price is reserved against the budgets.
		s.Handle(http.MethodPost, base+"/images/generations", s.keyed(admitAfterBody, "/images/generations", (*Server).handleImages))
		s.Handle(http.MethodPost, base+"/images/generate", s.keyed(admitAfterBody, "/images/generations", (*Server).handleImages))
		s.Handle(http.MethodPost, base+"/vision/analyze", s.keyed(admitAfterBody, "/vision/analyze", (*Server).handleVision))
		s.Handle(http.MethodGet, base+"/models/{id}", s.keyed(admitOnKey, "", (*Server).handleModel))
		if s.cfg.Responses != nil {
			// The Responses API (responses.go); every stored response is
			// its creator key's alone.
			s.Handle(http.MethodPost, base+"/responses", s.keyed(admitAfterBody, "/responses", (*Server).handleResponses))
			s.HandleMethods(base+"/responses/{id}", map[string]http.Handler{
				http.MethodGet:    s.keyed(admitOnKey, "/responses", (*Server).handleGetResponse),
				http.MethodDelete: s.keyed(admitOnKey, "/responses", (*Server).handleDeleteResponse)})
			// Not handle: a catch-all 405 on this path would overlap the
			// one of /responses/{id}; the methods that one serves get the
			// 405 here instead.
			s.Handle(http.MethodPost, base+"/responses/{id}/cancel", s.keyed(admitOnKey, "/responses", (*Server).handleCancelResponse))
			s.mux.Handle("POST "+base+"/responses/compact", s.keyed(admitAfterBody, "/responses", (*Server).handleCompactResponse))
			s.mux.Handle("GET "+base+"/responses/compact", s.methodNotAllowed(http.MethodPost))
			s.mux.Handle("DELETE "+base+"/responses/compact", s.methodNotAllowed(http.MethodPost))
		}
	}
	if s.cfg.Live != nil {
		s.Handle(http.MethodGet, "/admin/v1/live", s.RequireAdmin(s.cfg.Live.ServeHTTP))
	}
	if s.cfg.Metrics != nil {
		s.Handle(http.MethodGet, "/metrics", s.requireMetrics(s.cfg.Metrics.ServeHTTP))
	}
	if h := s.simulatorImages(); h != nil {
		s.Handle(http.MethodGet, simImagesPath+"{name}", h)
	}
	s.Handle(http.MethodGet, "/healthz", http.HandlerFunc(s.handleHealthz))
	s.Handle(http.MethodGet, "/readyz", http.HandlerFunc(s.handleReadyz))
	s.mux.HandleFunc("/", s.handleNotFound)
}

// Handle registers h for method on path, and answers any other method on the
// path with a 405 in the OpenAI envelope (ServeMux's own 405 is plain text).
// Routes of other packages (the admin API) are registered through it, so they
// share the gateway's request ids, access log, panic recovery and envelope,
// and a stream's stack holds one mux, not two.
func (s *Server) Handle(method, path string, h http.Handler) {
	s.mux.Handle(method+" "+path, h)
	s.mux.Handle(path, s.methodNotAllowed(method))
}

// HandleMethods registers several methods on one path, with the same 405
// for any other method as Handle.
func (s *Server) HandleMethods(path string, hs map[string]http.Handler) {
	allowed := make([]string, 0, len(hs))
	for method, h := range hs {
		s.mux.Handle(method+" "+path, h)
		allowed = append(allowed, method)
	}
	sort.Strings(allowed)
	s.mux.Handle(path, s.methodNotAllowed(strings.Join(allowed, ", ")))
}
