package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/grokgate/grokgate"
	"github.com/grokgate/grokgate/apierror"
	"github.com/grokgate/grokgate/xai"
)

// ResponseOwners remembers which key created each stored response (the
// SQLite and PostgreSQL stores implement it). xAI keeps stored responses
// for 30 days and does not tell grokgate's keys apart: without this, anyone
// holding an id could read, continue or delete another key's conversation.
type ResponseOwners interface {
	// RecordResponseOwner records owners in one write; it is idempotent,
	// and an id keeps its first owner.
	RecordResponseOwner(ctx context.Context, owners ...grokgate.ResponseOwner) error
	// ResponseOwner returns grokgate.ErrNotFound for an unknown or expired id.
	ResponseOwner(ctx context.Context, id string, now time.Time) (grokgate.ResponseOwner, error)
	ForgetResponse(ctx context.Context, id string) error
}

// handleResponses serves POST /responses: validate, check the key's
// policies and its ownership of every response the body refers to, admit,
// forward the client's own bytes, then relay the stream or return the JSON;
// the new response is recorded as the key's.
func (s *Server) handleResponses(w http.ResponseWriter, r *http.Request) {
	body, e := s.readBody(w, r)
	if e != nil {
		s.fail(w, r, e, nil)
		return
	}
	req, e := parseResponses(body)
	if e != nil {
		s.fail(w, r, e, nil)
		return
	}
	s.serveResponses(w, r, body, &req)
}

func (s *Server) serveResponses(w http.ResponseWriter, r *http.Request, body []byte, req *parsedResponses) {
	if req.background {
		s.serveBackground(w, r, body, req)
		return
	}
	body, stream, ok := s.admitResponses(w, r, body, req)
	if !ok {
		return
	}
	m := meterFrom(r.Context())
	ctx, cancel, wd := s.upstreamContext(r)
	defer cancel(nil)
	// Creating a response stores it at xAI: a repeat after an answer that
	// may mean xAI took it could store (and bill) it twice.
	resp, ok := s.send(ctx, w, r, xai.Request{Method: http.MethodPost, Path: "/responses", Body: body, Retry: xai.RetryNotTaken})
	if !ok {
		return
	}
	defer resp.Body.Close()
	owner := s.newOwnerRecorder(r)
	defer owner.wait()
	if stream && resp.StatusCode == http.StatusOK && isEventStream(resp.Header) {
		m.responses.onID = owner.record
		s.relay(ctx, w, r, resp, wd)
		owner.record(m.responses.id()) // if the stream ended at the event naming it
		return
	}
	answer, ok := s.responseAnswer(ctx, w, r, resp)
	if !ok {
		return
	}
	if id := responseID(m, answer); id != "" {
		owner.record(id)
		owner.wait() // before the client can use the id
	}
	if req.stream && !stream && s.cfg.VisionStream == VisionStreamEmulate {
		s.emulateResponseStream(w, r, answer)
		return
	}
	if stream {
		// A streaming request answered with JSON that is not an error.
		m.refusedBody()
		s.fail(w, r, &apierror.Error{Status: http.StatusBadGateway, Code: "upstream_bad_response",
			Message: "xAI answered a streaming request with " + quote(resp.Header.Get("Content-Type")) + " instead of an event stream."}, nil)
		return
	}
	writeJSONAnswer(w, m, answer)
}

// admitResponses applies the key's policies (model, tools, ownership) and
// limits, and returns the body to send and whether xAI is asked to stream;
// if not ok, the answer was written.
func (s *Server) admitResponses(w http.ResponseWriter, r *http.Request, body []byte, req *parsedResponses) (_ []byte, stream, ok bool) {
	info := infoFrom(r.Context())
	info.model, info.stream = req.model, req.stream
	e := modelNotAllowed(info.key, req.model)
	if e == nil {
		e = toolsNotAllowed(info.key, req.serverTools)
	}
	if e == nil {
		e = s.checkOwned(r, req.previous, req.referenced)
	}
	if e != nil {
		s.fail(w, r, e, nil)
		return nil, false, false
	}
	pm := s.modelPrices(req.model)
	if e := outputTooLarge(pm, req.model, "max_output_tokens", req.maxOutput); e != nil {
		s.fail(w, r, e, nil)
		return nil, false, false
	}
	// A background generation holds a stream slot until it ends, read or not.
	if !s.admit(w, r, req.stream || req.background, func() (int64, int64) { return responsesNeed(pm, s.cfg.ToolPrices, req, s.cfg.ReasoningTokens) }) {
		return nil, false, false
	}
	m := meterFrom(r.Context())
	m.useResponses()
	if m != nil {
		m.upstream, m.prompt = true, req.promptTokens
	}
	s.journal(r, m)
	stream = req.stream
	if req.stream && req.hasImage && s.cfg.VisionStream != VisionStreamNative {
		var err error
		if body, err = withoutStreaming(body); err != nil { // parseResponses accepted an object
			s.fail(w, r, apierror.Invalid("", "Request body must be a JSON object."), err)
			return nil, false, false
		}
		w.Header().Set(headerStreamFallback, "true")
		markFallback(r)
		stream = false
	}
	return body, stream, true
}

// toolsNotAllowed returns the 403 for the first server-side tool the key
// may not use, or nil. Function tools run in the client and are not the
// policy's concern.
func toolsNotAllowed(k *grokgate.Key, tools []string) *apierror.Error {
	if k == nil {
		return nil
	}
	for _, t := range tools {
		if !k.AllowsTool(t) {
			return &apierror.Error{Status: http.StatusForbidden, Type: apierror.TypePermission, Param: "tools", Code: "tool_not_allowed",
				Message: "This API key may not use the tool " + quote(t) + ". Server-side tools allowed for this key: " +
					strings.Join(k.AllowedTools, ", ") + ". Ask the grokgate operator to allow it."}
		}
	}
	return nil
}

// checkOwned returns the 404 of an unknown response if the caller's key does
// not own previous (when set) or every referenced response.
func (s *Server) checkOwned(r *http.Request, previous string, referenced []string) *apierror.Error {
	if previous != "" {
		if e := s.ownedBy(r, previous, "previous_response_id"); e != nil {
			return e
		}
	}
	for _, id := range referenced {
		if e := s.ownedBy(r, id, "input"); e != nil {
			return e
		}
	}
	return nil
}

// ownedBy answers nil if the caller's key owns response id. Otherwise, for
// an id of another key's as for one that never existed, the same 404: the
// answer must not tell a caller that an id is real.
func (s *Server) ownedBy(r *http.Request, id, param string) *apierror.Error {
	k := infoFrom(r.Context()).key
	ctx, cancel := context.WithTimeout(r.Context(), storeTimeout)
	defer cancel()
	o, ok := s.owners.unwrittenOwner(id)
	var err error
	if !ok {
		o, err = s.cfg.Responses.ResponseOwner(ctx, id, s.cfg.Now())
	}
	switch {
	case err == nil && k != nil && o.KeyID == k.ID:
		return nil
	case err == nil, errors.Is(err, grokgate.ErrNotFound):
		return responseNotFound(id, param)
	}
	infoFrom(r.Context()).cause = err
	return apierror.StoreUnavailable()
}

// storeTimeout bounds one store call on a request's path.
const storeTimeout = 5 * time.Second

func responseNotFound(id, param string) *apierror.Error {
	return &apierror.Error{Status: http.StatusNotFound, Type: apierror.TypeInvalidRequest, Param: param, Code: "response_not_found",
		Message: "No response with id " + quote(id) + " was found for this API key."}
}

// responseID is the id of a non-streaming answer: a response object's id.
func responseID(m *meter, answer []byte) string {
	if m != nil && m.id != "" {
		return m.id
	}
	var v struct {
		ID string `json:"id"`
	}
	if json.Unmarshal(answer, &v) != nil {
		return ""
	}
	return v.ID
}

// handleGetResponse serves GET /responses/{id}: the stored response, for its
// owner only. It is metered as a request and never billed: xAI echoes the
// usage of the generation, which was billed when it ran.
func (s *Server) handleGetResponse(w http.ResponseWriter, r *http.Request) {
	s.storedResponse(w, r, http.MethodGet)
}

// handleDeleteResponse serves DELETE /responses/{id}; grokgate forgets the
// owner once xAI has deleted it.
func (s *Server) handleDeleteResponse(w http.ResponseWriter, r *http.Request) {
	s.storedResponse(w, r, http.MethodDelete)
}

func (s *Server) storedResponse(w http.ResponseWriter, r *http.Request, method string) {
	id := r.PathValue("id")
	if method == http.MethodGet && s.cfg.Streams != nil && s.backgroundResponse(w, r, id) {
		return
	}
	if e := s.ownedBy(r, id, "response_id"); e != nil {
		s.fail(w, r, e, nil)
		return
	}
	if r.URL.RawQuery != "" && r.URL.Query().Get("stream") == "true" {
		s.fail(w, r, apierror.Invalid("stream", "Only a background response (created with \"background\": true) can be streamed again, until GROKGATE_RESUME_WINDOW after it ended; xAI keeps no events to replay. Retrieve this one without 'stream'."), nil)
		return
	}
	ctx, cancel, _ := s.upstreamContext(r)
	defer cancel(nil)
	resp, err := s.up.Do(ctx, xai.Request{Method: method, Path: "/responses/" + id})
	if err != nil {
		s.fail(w, r, upstreamFailure(ctx, r.Context(), err), err)
		return
	}
	defer resp.Body.Close()
	answer, e, cause := upstreamAnswer(ctx, w, r, resp)
	if e != nil {
		if e.Status == http.StatusNotFound {
			// xAI no longer has it (expired or deleted elsewhere).
			s.forget(r, id)
			e = responseNotFound(id, "response_id")
		}
		s.fail(w, r, e, cause)
		return
	}
	if method == http.MethodDelete {
		s.forget(r, id)
	}
	m := meterFrom(r.Context())
	writeJSONAnswer(w, m, answer)
}

// forget drops an owner record; a failure only leaves a record that points
// at nothing, so it is logged on the request, not reported.
func (s *Server) forget(r *http.Request, id string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), storeTimeout)
	defer cancel()
	s.owners.forget(id)
	if err := s.cfg.Responses.ForgetResponse(ctx, id); err != nil {
		infoFrom(r.Context()).cause = err
	}
}

// handleCompactResponse serves POST /responses/compact: a conversation
// compacted into one opaque item, billed like a response; the key must own
// what it compacts, and owns the compaction.
func (s *Server) handleCompactResponse(w http.ResponseWriter, r *http.Request) {
	body, e := s.readBody(w, r)
	if e != nil {
		s.fail(w, r, e, nil)
		return
	}
	req, e := parseResponses(body)
	if e == nil && req.stream {
		e = apierror.Invalid("stream", "'stream' is not supported by /responses/compact; send the request without it.")
	}
	if e != nil {
		s.fail(w, r, e, nil)
		return
	}
	body, _, ok := s.admitResponses(w, r, body, &req)
	if !ok {
		return
	}
	ctx, cancel, _ := s.upstreamContext(r)
	defer cancel(nil)
	resp, ok := s.send(ctx, w, r, xai.Request{Method: http.MethodPost, Path: "/responses/compact", Body: body, Retry: xai.RetryNotTaken})
	if !ok {
		return
	}
	defer resp.Body.Close()
	answer, ok := s.responseAnswer(ctx, w, r, resp)
	if !ok {
		return
	}
	// The compaction item is sent back as input, and its id (cmp_<id>)
	// embeds this id: without a record, its own key would get a 404.
	m := meterFrom(r.Context())
	owner := s.newOwnerRecorder(r)
	owner.record(responseID(m, answer))
	owner.wait()
	writeJSONAnswer(w, m, answer)
}

// responseAnswer reads a non-streaming Responses answer and meters it; if
// not ok, the failure was answered.
func (s *Server) responseAnswer(ctx context.Context, w http.ResponseWriter, r *http.Request, resp *http.Response) ([]byte, bool) {
	answer, e, cause := upstreamAnswer(ctx, w, r, resp)
	if e != nil {
		s.fail(w, r, e, cause)
		return nil, false
	}
	meterFrom(r.Context()).response(answer)
	return answer, true
}

// writeJSONAnswer sends a successful JSON answer and notes it complete.
func writeJSONAnswer(w http.ResponseWriter, m *meter, answer []byte) {
	w.Header()["Content-Type"] = jsonType
	w.WriteHeader(http.StatusOK)
	if _, err := w.Write(answer); err == nil {
		m.complete()
	}
}

// ownerRecorder writes the owner of the response a request creates. A
// stream learns the id from its first event: the write then runs beside the
// relay, started once that event was sent, so the first event is held back
// neither by the database nor by the goroutine's start, and the request
// waits for it before it ends; with a store only this process reads, the
// owner is written behind (ownerBatcher) and nothing waits. record is
// idempotent.
type ownerRecorder struct {
	s    *Server
	r    *http.Request
	done chan struct{} // closed when the write ended; nil before it began
}

func (s *Server) newOwnerRecorder(r *http.Request) *ownerRecorder {
	return &ownerRecorder{s: s, r: r}
}

func (o *ownerRecorder) record(id string) {
	k := infoFrom(o.r.Context()).key
	if o.done != nil || k == nil || id == "" {
		return
	}
	o.done = make(chan struct{})
	rec := grokgate.ResponseOwner{ResponseID: id, KeyID: k.ID, CreatedAt: o.s.cfg.Now().UTC()}
	if o.s.owners.local {
		o.s.owners.behind(rec)
		close(o.done)
		return
	}
	ctx := context.WithoutCancel(o.r.Context()) // the record outlives a client that left
	go func() {
		defer close(o.done)
		ctx, cancel := context.WithTimeout(ctx, storeTimeout)
		defer cancel()
		if err := o.s.owners.record(ctx, rec); err != nil {
			o.s.log.Error("recording a response's owner failed; its owner cannot retrieve or continue it",
				"request_id", infoFrom(o.r.Context()).id, "response_id", id, "err", err)
		}
	}()
}

func (o *ownerRecorder) wait() {
	if o.done != nil {
		<-o.done
	}
}
