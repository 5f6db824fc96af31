package gateway

import "net/http"

// routes is the whole API surface. Each OpenAI-compatible route is served at
// /api/v1 (grokgate's documented base URL) and at /v1, where clients that
// assume OpenAI's layout post.
func (s *Server) routes() {
	for _, base := range []string{"/api/v1", "/v1"} {
		s.handle(http.MethodPost, base+"/chat/completions", s.authed(s.handleChat))
		s.handle(http.MethodGet, base+"/models", s.authed(s.handleModels))
		// OpenAI's SDKs post to /images/generations; /images/generate is ours.
		s.handle(http.MethodPost, base+"/images/generations", s.authed(s.handleImages))
		s.handle(http.MethodPost, base+"/images/generate", s.authed(s.handleImages))
		s.handle(http.MethodPost, base+"/vision/analyze", s.authed(s.handleVision))
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
