package gateway

import (
	"context"
	"net/http"
	"time"
)

// handleModels serves GET /models: xAI's list, which already has OpenAI's
// shape, passed through.
func (s *Server) handleModels(w http.ResponseWriter, r *http.Request) {
	ctx, cancel, timer := s.upstreamContext(r)
	defer cancel(nil)
	defer timer.Stop()
	resp, err := s.up.Do(ctx, http.MethodGet, "/models", nil)
	if err != nil {
		s.fail(w, r, upstreamFailure(ctx, r.Context(), err), err)
		return
	}
	defer resp.Body.Close()
	s.forwardJSON(w, r, ctx, resp, false)
}

func (s *Server) handleHealthz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Write([]byte(`{"status":"ok"}` + "\n"))
}

// handleReadyz reports whether the database answers; a load balancer should
// send no traffic to a replica that says no.
func (s *Server) handleReadyz(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Ready != nil {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := s.cfg.Ready(ctx); err != nil {
			s.fail(w, r, notReady(), err)
			return
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write([]byte(`{"status":"ready"}` + "\n"))
}
