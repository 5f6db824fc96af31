package simulator

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// serveResponses routes /v1/responses and everything below it.
func (s *Simulator) serveResponses(w http.ResponseWriter, r *http.Request) {
	switch p := r.URL.Path; {
	case p == "/v1/responses":
		s.serve(w, r, http.MethodPost, true, s.handleCreateResponse)
	case p == "/v1/responses/compact":
		s.serve(w, r, http.MethodPost, true, s.handleCompact)
	case strings.Contains(strings.TrimPrefix(p, "/v1/responses/"), "/"):
		// e.g. /input_items, which xAI does not have.
		writeError(w, &apiError{status: http.StatusNotFound, msg: "No handler found for " + r.Method + " " + p})
	case r.Method == http.MethodDelete:
		s.serve(w, r, http.MethodDelete, true, s.handleDeleteResponse)
	case r.Method == http.MethodGet || r.Method == http.MethodHead:
		s.serve(w, r, http.MethodGet, true, s.handleGetResponse)
	default:
		w.Header().Set("Allow", "GET, HEAD, DELETE")
		writeError(w, &apiError{status: http.StatusMethodNotAllowed,
			msg: fmt.Sprintf("Method %s is not allowed for %s", r.Method, p)})
	}
}

// readResponsesBody reads a body for /v1/responses, whose undecodable
// bodies get the flat JSON error (chat's get plain text).
func readResponsesBody(w http.ResponseWriter, r *http.Request) (json.RawMessage, *apiError) {
	var raw json.RawMessage
	if err := readJSON(w, r, &raw); err != nil {
		err.plain = false
		return nil, err
	}
	return raw, nil
}

// planRequest reads and plans a create-shaped body and applies the fault
// directives; it returns nil when the request has been answered.
func (s *Simulator) planRequest(w http.ResponseWriter, r *http.Request, stream func(*responsesPlan) bool) *responsesPlan {
	raw, aerr := readResponsesBody(w, r)
	if aerr == nil {
		var p *responsesPlan
		if p, aerr = planResponses(raw, s.chat, teamID(r), s.responses, s.now().Unix()); aerr == nil {
			if s.answerFault(w, r, raw, p.dir, stream(p)) {
				return nil
			}
			return p
		}
	}
	writeError(w, aerr)
	return nil
}

func (s *Simulator) handleCreateResponse(w http.ResponseWriter, r *http.Request) {
	p := s.planRequest(w, r, func(p *responsesPlan) bool { return p.req.stream })
	if p == nil {
		return
	}
	if p.req.stream {
		s.streamResponse(w, r, p)
		return
	}

	// Non-streaming: spend the time the stream would have taken, then answer.
	f, faulty := faultOf(p.dir, p.ext)
	text := len(p.text)
	if faulty {
		text = min(text, f.after)
	}
	deltas := len(p.reasoning) + len(p.args) + text
	if !wait(r.Context(), p.dir.ttft()+time.Duration(max(deltas-1, 0))*p.dir.delay()) {
		s.requestsCanceled.Add(1)
		return
	}
	switch {
	case faulty && f.kind == "cut":
		panic(http.ErrAbortHandler) // the client sees the connection drop
	case faulty && f.kind == "error":
		writeError(w, &apiError{status: http.StatusInternalServerError, code: "Internal error",
			msg: fmt.Sprintf("Simulated error after %d chunks", text)})
	case faulty:
		var done []any
		for _, it := range p.items {
			if it.kind != "message" {
				done = append(done, it.done)
			}
		}
		writeJSON(w, http.StatusOK, p.failed(done, text, len(p.args), len(p.reasoning)))
	default:
		writeJSON(w, http.StatusOK, s.storeResponse(p))
	}
}

// storeResponse returns the finished response, keeping it when store is
// not false.
func (s *Simulator) storeResponse(p *responsesPlan) responseObject {
	final := p.final()
	if p.req.store {
		s.responses.put(storedResponse{obj: final, storedMeta: p.continuation()})
	}
	return final
}

func responseID(r *http.Request) string {
	return strings.TrimPrefix(r.URL.Path, "/v1/responses/")
}

func (s *Simulator) handleGetResponse(w http.ResponseWriter, r *http.Request) {
	id := responseID(r)
	st, ok := s.responses.get(id)
	if !ok {
		writeError(w, responseNotFound(id))
		return
	}
	writeJSON(w, http.StatusOK, st.obj)
}

func (s *Simulator) handleDeleteResponse(w http.ResponseWriter, r *http.Request) {
	id := responseID(r)
	if !s.responses.remove(id) {
		writeError(w, responseNotFound(id))
		return
	}
	writeJSON(w, http.StatusOK, struct {
		ID      string `json:"id"`
		Object  string `json:"object"`
		Deleted bool   `json:"deleted"`
	}{id, "response", true})
}

// compactionTokens is the size of the summary a compaction stands for.
const compactionTokens = 16

// handleCompact answers POST /v1/responses/compact. It takes a create body
// (model, input or previous_response_id) and returns
//
//	{"id","object":"response.compaction","created_at","model",
//	 "output":[{"id":"cmp_<id>","type":"compaction","encrypted_content":"..."}],
//	 "usage":{...}}
//
// The encrypted_content is opaque: a client sends the item back as input,
// where it counts as an ordinary item. Usage bills the input plus 16
// output tokens. hang, status and json_error directives apply.
func (s *Simulator) handleCompact(w http.ResponseWriter, r *http.Request) {
	p := s.planRequest(w, r, func(*responsesPlan) bool { return false })
	if p == nil {
		return
	}
	p.reasoning, p.text, p.args, p.toolCalls, p.sources, p.fees, p.tools = nil, nil, nil, 0, 0, 0, toolUsageDetails{}
	enc := base64.StdEncoding.EncodeToString([]byte(fmt.Sprintf("sim-compaction:%s:%d", p.id, p.inputTokens)))
	writeJSON(w, http.StatusOK, struct {
		ID        string          `json:"id"`
		Object    string          `json:"object"`
		CreatedAt int64           `json:"created_at"`
		Model     string          `json:"model"`
		Output    []any           `json:"output"`
		Usage     *responsesUsage `json:"usage"`
	}{p.id, "response.compaction", p.base.CreatedAt, p.base.Model,
		[]any{struct {
			ID               string `json:"id"`
			Type             string `json:"type"`
			EncryptedContent string `json:"encrypted_content"`
		}{"cmp_" + p.id, "compaction", enc}},
		p.usage(compactionTokens, 0)})
}

// answerFault applies the hang, status and json_error directives (limited
// by fail_times) that every text route shares; it reports whether it
// answered the request.
func (s *Simulator) answerFault(w http.ResponseWriter, r *http.Request, body []byte, d directive, stream bool) bool {
	if d.FailTimes > 0 && s.attempts.next(body) > d.FailTimes {
		return false
	}
	ctx := r.Context()
	switch {
	case d.Hang:
		if stream {
			s.streamsStarted.Add(1)
		}
		<-ctx.Done()
		if stream {
			s.streamsCanceled.Add(1)
		}
	case d.status() != 0:
		st := d.status()
		writeError(w, &apiError{status: st, retryAfter: d.RetryAfter,
			msg: fmt.Sprintf("Simulated upstream error (status %d)", st)})
	case d.JSONError:
		if wait(ctx, d.ttft()) {
			writeJSON(w, http.StatusOK, errorBody{Code: "The service is currently unavailable",
				Error: "Timed out waiting for first token"})
		}
	default:
		return false
	}
	return true
}
