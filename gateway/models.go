package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"time"

	"github.com/grokgate/grokgate/apierror"
	"github.com/grokgate/grokgate/xai"
)

// handleModels serves GET /models: xAI's list, which already has OpenAI's
// shape, passed through; for a key limited to some models, only those.
func (s *Server) handleModels(w http.ResponseWriter, r *http.Request) {
	ctx, cancel, _ := s.upstreamContext(r)
	defer cancel(nil)
	resp, err := s.up.Do(ctx, xai.Request{Method: http.MethodGet, Path: "/models"})
	if err != nil {
		s.fail(w, r, upstreamFailure(ctx, r.Context(), err), err)
		return
	}
	defer resp.Body.Close()
	k := infoFrom(r.Context()).key
	if k == nil || len(k.AllowedModels) == 0 {
		s.forwardJSON(ctx, w, r, resp, false)
		return
	}
	body, e, cause := upstreamAnswer(ctx, w, r, resp)
	if e != nil {
		s.fail(w, r, e, cause)
		return
	}
	// Keep every field of the list and of each model; drop the models the
	// key may not use.
	var list map[string]json.RawMessage
	var models []json.RawMessage
	if json.Unmarshal(body, &list) != nil || json.Unmarshal(list["data"], &models) != nil {
		s.fail(w, r, badUpstream("a model list"), nil)
		return
	}
	kept := models[:0]
	for _, m := range models {
		var id struct {
			ID string `json:"id"`
		}
		if json.Unmarshal(m, &id) == nil && k.Allows(id.ID) {
			kept = append(kept, m)
		}
	}
	list["data"], _ = json.Marshal(kept)
	out, _ := json.Marshal(list)
	w.Header().Set("Content-Type", "application/json")
	w.Write(append(out, '\n'))
}

// handleModel serves GET /models/{id}: xAI's model, for a key that may use
// it; to any other key it does not exist, as in the list.
func (s *Server) handleModel(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if k := infoFrom(r.Context()).key; k != nil && !k.Allows(id) {
		s.fail(w, r, modelNotFound(id), nil)
		return
	}
	ctx, cancel, _ := s.upstreamContext(r)
	defer cancel(nil)
	resp, err := s.up.Do(ctx, xai.Request{Method: http.MethodGet, Path: "/models/" + url.PathEscape(id)})
	if err != nil {
		s.fail(w, r, upstreamFailure(ctx, r.Context(), err), err)
		return
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		s.fail(w, r, modelNotFound(id), nil)
		return
	}
	s.forwardJSON(ctx, w, r, resp, false)
}

func modelNotFound(id string) *apierror.Error {
	return &apierror.Error{Status: http.StatusNotFound, Type: apierror.TypeInvalidRequest, Param: "model", Code: "model_not_found",
		Message: "The model " + quote(id) + " does not exist or this API key may not use it. GET /models lists the models it may use."}
}

func (s *Server) handleHealthz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Write([]byte(`{"status":"ok"}` + "\n"))
}

// handleReadyz reports whether the database answers; a load balancer should
// send no traffic to a replica that says no. /healthz, liveness, stays 200.
func (s *Server) handleReadyz(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Ready != nil {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := s.cfg.Ready(ctx); err != nil {
			// Ready may say why, in an *apierror.Error it wraps.
			e := notReady()
			errors.As(err, &e)
			s.fail(w, r, e, err)
			return
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write([]byte(`{"status":"ready"}` + "\n"))
}
