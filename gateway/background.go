package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/grokgate/grokgate"
	"github.com/grokgate/grokgate/apierror"
	"github.com/grokgate/grokgate/sse"
	"github.com/grokgate/grokgate/xai"
)

// serveBackground serves POST /responses with "background": true, which
// xAI does not implement: grokgate asks xAI for a stream and runs it
// detached from the client (runner.go), into the stream log. Without
// "stream" the answer is the response as it starts (its id, status
// in_progress); with it, the stream as usual, which goes on if the client
// leaves. Either way GET /responses/{id} (with ?stream=true to follow the
// events) and POST /responses/{id}/cancel reach it from any replica.
func (s *Server) serveBackground(w http.ResponseWriter, r *http.Request, body []byte, req *parsedResponses) {
	if s.cfg.Streams == nil {
		s.fail(w, r, apierror.Invalid("background", "'background' is not available on this gateway (it has no stream log). Send the request without it."), nil)
		return
	}
	if req.hasImage && s.cfg.VisionStream != VisionStreamNative {
		s.fail(w, r, apierror.Invalid("background", "'background' with image input needs xAI's own stream (GROKGATE_VISION_STREAM=native). Send the request without 'background'."), nil)
		return
	}
	up, err := editObject(body, []string{"background", "stream", "stream_options"}, field{"stream", []byte("true")})
	if err != nil { // parseResponses accepted an object
		s.fail(w, r, apierror.Invalid("", "Request body must be a JSON object."), err)
		return
	}
	sreq := *req
	sreq.stream = true
	up, _, ok := s.admitResponses(w, r, up, &sreq)
	if !ok {
		return
	}
	infoFrom(r.Context()).stream = req.stream
	ctx, abort, stop, wd := s.runnerContext(r)
	resp, ok := s.send(ctx, w, r, xai.Request{Method: http.MethodPost, Path: "/responses", Body: up, Retry: xai.RetryNotTaken})
	if !ok {
		stop()
		return
	}
	if resp.StatusCode != http.StatusOK || !isEventStream(resp.Header) {
		defer stop()
		defer resp.Body.Close()
		if _, ok := s.responseAnswer(ctx, w, r, resp); ok {
			meterFrom(r.Context()).refusedBody()
			s.fail(w, r, &apierror.Error{Status: http.StatusBadGateway, Code: "upstream_bad_response",
				Message: "xAI answered a streaming request with " + quote(resp.Header.Get("Content-Type")) + " instead of an event stream."}, nil)
		}
		return
	}
	ru := s.startRunner(r, resp, ctx, abort, stop, wd, "", dialectResponses, req.stream)
	f := s.newFollower(w, r, "", dialectResponses)
	if req.stream {
		f.ru = ru
	}
	if !f.awaitFirst(ru, req.stream) {
		return
	}
	f.logID = ru.logID // set before the runner's first signal
	if req.stream {
		f.follow(0)
		return
	}
	st, err := s.cfg.Streams.State(r.Context(), f.logID)
	if err != nil {
		s.fail(w, r, apierror.StoreUnavailable(), err)
		return
	}
	s.writeResponseObject(w, r, f.logID, st)
}

// backgroundResponse serves GET /responses/{id} for a response in the
// stream log: the response as it stands, or with ?stream=true its events
// after starting_after, then the live ones. It reports false for an id the
// log does not have, for the stored-response path.
func (s *Server) backgroundResponse(w http.ResponseWriter, r *http.Request, id string) bool {
	logID := responsesLogPrefix + id
	ctx, cancel := context.WithTimeout(r.Context(), storeTimeout)
	_, err := s.cfg.Streams.State(ctx, logID)
	cancel()
	if errors.Is(err, grokgate.ErrStreamNotFound) {
		return false
	}
	st, ok := s.streamOf(w, r, logID, responseNotFound(id, "response_id"))
	if !ok {
		return true
	}
	q := r.URL.Query()
	if q.Get("stream") != "true" {
		s.writeResponseObject(w, r, logID, st)
		return true
	}
	f := s.newFollower(w, r, logID, dialectResponses)
	if v := q.Get("starting_after"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			s.fail(w, r, apierror.Invalid("starting_after", "'starting_after' must be the sequence_number of an event of this response (an integer of 0 or more), got "+quote(v)+"."), nil)
			return true
		}
		f.afterSeq = n
	}
	if f.follow(0) {
		meterFrom(r.Context()).complete()
	}
	return true
}

// handleCancelResponse serves POST /responses/{id}/cancel: the generation
// is stopped wherever it runs, and the answer is the response as it ended.
func (s *Server) handleCancelResponse(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if s.cfg.Streams == nil {
		s.fail(w, r, responseNotFound(id, "response_id"), nil)
		return
	}
	logID := responsesLogPrefix + id
	st, ok := s.streamOf(w, r, logID, responseNotFound(id, "response_id"))
	if !ok {
		return
	}
	if !st.Ended {
		ctx, cancel := context.WithTimeout(r.Context(), storeTimeout)
		defer cancel()
		if err := s.cfg.Streams.Cancel(ctx, logID); err != nil {
			s.fail(w, r, apierror.StoreUnavailable(), err)
			return
		}
		if ru, ok := s.local.Load(logID); ok {
			ru.(*runner).abort(errCancelled)
		}
		// A runner on another replica sees the cancel at its next lease
		// renewal.
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		deadline := time.After(2 * s.cfg.StreamLease)
	wait:
		for !st.Ended {
			select {
			case <-t.C:
			case <-deadline:
				break wait
			case <-ctx.Done():
				break wait
			}
			if cur, err := s.cfg.Streams.State(ctx, logID); err == nil {
				st = cur
			}
		}
		if !st.Ended {
			st.Ended, st.Status = true, streamCancelled // stopping; the answer says what was asked
		}
	}
	s.writeResponseObject(w, r, logID, st)
}

// writeResponseObject answers with a logged response as it stands: the
// whole response of its terminal event once it ended that way, else the
// response its first event (response.created) announced, with the status
// the log knows.
func (s *Server) writeResponseObject(w http.ResponseWriter, r *http.Request, logID string, st grokgate.StreamState) {
	ctx, cancel := context.WithTimeout(r.Context(), storeTimeout)
	defer cancel()
	evs, _, err := s.cfg.Streams.Read(ctx, logID, 0, 1, 0)
	if err != nil || len(evs) == 0 {
		s.fail(w, r, apierror.StoreUnavailable(), err)
		return
	}
	obj := loggedResponse(evs[0].Data)
	status := "in_progress"
	if st.Ended {
		if st.Last > 1 {
			if last, _, err := s.cfg.Streams.Read(ctx, logID, st.Last-1, 1, 0); err == nil && len(last) == 1 {
				if o := loggedResponse(last[0].Data); o != nil {
					obj = o
				}
			}
		}
		switch st.Status {
		case streamCompleted, streamIncomplete, streamFailed:
			status = st.Status
		case streamCancelled:
			status = "cancelled"
		default:
			status = "failed"
		}
	}
	if obj == nil {
		s.fail(w, r, &apierror.Error{Status: http.StatusBadGateway, Type: apierror.TypeUpstream, Code: "upstream_bad_response",
			Message: "xAI's stream for this response did not carry the response object; retrieve it again later"}, nil)
		return
	}
	status = strconv.Quote(status)
	out, err := editObject(obj, []string{"status", "background"}, field{"status", []byte(status)}, field{"background", []byte("true")})
	if err != nil {
		out = obj
	}
	writeJSONAnswer(w, meterFrom(r.Context()), out)
}

// loggedResponse returns the response object an event carries (response.created,
// response.completed, ...), or nil.
func loggedResponse(ev []byte) []byte {
	data, ok := sse.Data(ev)
	if !ok {
		data, _ = sse.AppendData(nil, ev)
	}
	var v struct {
		Response json.RawMessage `json:"response"`
	}
	if json.Unmarshal(data, &v) != nil || len(v.Response) == 0 || v.Response[0] != '{' {
		return nil
	}
	return v.Response
}
