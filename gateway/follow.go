package gateway

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/grokgate/grokgate"
	"github.com/grokgate/grokgate/apierror"
	"github.com/grokgate/grokgate/sse"
)

// Headers of resumable chat streams.
const (
	headerResumable = "X-Grokgate-Resumable"
	headerStreamID  = "X-Grokgate-Stream-Id"
)

// errInterrupted is what a reader of a generation whose replica died (or
// whose events could not all be stored) is told, in the dialect's error
// event.
var errInterrupted = &apierror.Error{Status: http.StatusBadGateway, Type: apierror.TypeUpstream, Code: "stream_interrupted",
	Message: "the generation was interrupted; send the request again"}

// follower writes a stream log to one client: the events after a point,
// then the live ones, until the generation's end. It serves the client that
// started a detached generation as well as every resume, on any replica,
// so a resumed stream is the same stream: heartbeats, error events and the
// end as on the first.
type follower struct {
	s     *Server
	w     http.ResponseWriter
	r     *http.Request
	rc    *http.ResponseController
	logID string
	d     dialect
	// idLines writes "id: <seq>" before each event (chat), for
	// Last-Event-ID.
	idLines bool
	// afterSeq, for a Responses stream, skips the events whose
	// sequence_number is not above it (starting_after); -1 skips none.
	afterSeq int64
	streamID string // sent as X-Grokgate-Stream-Id, when set
	// ru, for the client that started the generation on this replica: its
	// events come through ru.tee until that closes, then from the log.
	ru      *runner
	started bool
	last    time.Time // the last write, for heartbeats
}

func (s *Server) newFollower(w http.ResponseWriter, r *http.Request, logID, dialectName string) *follower {
	f := &follower{s: s, w: w, r: r, rc: http.NewResponseController(w), logID: logID, afterSeq: -1, last: s.cfg.Now()}
	if dialectName == dialectResponses {
		d := newResponsesDialect()
		f.d = &d
	} else {
		f.d = &chatDialect{clientUsage: true}
	}
	return f
}

// start commits the stream's headers.
func (f *follower) start() {
	if f.started {
		return
	}
	h := f.w.Header()
	setEventStreamHeaders(h)
	if f.streamID != "" {
		h.Set(headerStreamID, f.streamID)
	}
	f.w.WriteHeader(http.StatusOK)
	f.started = true
}

// write sends b and flushes; it reports whether the client is still there.
func (f *follower) write(b []byte) bool {
	f.start()
	if _, err := f.w.Write(b); err != nil {
		return false
	}
	if f.rc.Flush() != nil {
		return false
	}
	f.last = f.s.cfg.Now()
	return true
}

// follow writes the events after seq after, then the live ones; it reports
// whether the stream reached its end.
func (f *follower) follow(after int64) bool {
	s := f.s
	wait := s.cfg.StreamLease / 2
	if s.cfg.Heartbeat > 0 {
		wait = min(wait, s.cfg.Heartbeat)
	}
	var buf []byte
	if f.ru != nil {
		var ok bool
		if after, ok = f.followTee(after); !ok {
			return false
		}
	}
	for {
		evs, st, err := s.cfg.Streams.Read(f.r.Context(), f.logID, after, 256, wait)
		if f.r.Context().Err() != nil {
			return false
		}
		if err != nil {
			// Dropped after its retention, or the store is failing: the
			// reader cannot get the rest.
			infoFrom(f.r.Context()).cause = err
			f.fail(errInterrupted)
			return false
		}
		buf = buf[:0]
		for _, ev := range evs {
			after = ev.Seq
			n := len(buf)
			buf = f.appendEvent(buf, ev)
			if f.afterSeq >= 0 {
				if rd, ok := f.d.(*responsesDialect); ok && rd.m.Seq <= f.afterSeq {
					buf = buf[:n] // at or before starting_after
				}
			}
		}
		if len(buf) > 0 && !f.write(buf) {
			return false
		}
		now := s.cfg.Now()
		switch {
		case st.Ended && after >= st.Last:
			if st.Status == streamOverflow {
				f.fail(errInterrupted)
				return false
			}
			f.start()
			return true
		case !st.Ended && len(evs) == 0 && now.Sub(latest(st.RunnerSeen, st.Meta.Created)) > s.cfg.StreamLease:
			// Its replica died: what it stored is all there will be.
			f.fail(errInterrupted)
			return false
		case len(evs) == 0 && s.cfg.Heartbeat > 0 && now.Sub(f.last) >= s.cfg.Heartbeat:
			if !f.write(keepAlive) {
				return false
			}
		}
	}
}

// followTee writes the events the runner hands over until it stops
// (the generation ended, or this client fell behind); it returns the last
// sequence number written and whether the client is still there.
func (f *follower) followTee(after int64) (int64, bool) {
	s := f.s
	var beat <-chan time.Time
	if s.cfg.Heartbeat > 0 {
		t := time.NewTicker(s.cfg.Heartbeat)
		defer t.Stop()
		beat = t.C
	}
	var buf []byte
	for {
		f.ru.teeSeen.Store(s.cfg.Now().UnixNano())
		select {
		case ev, ok := <-f.ru.tee:
			if !ok {
				return after, true
			}
			buf = f.appendEvent(buf[:0], ev)
			after = ev.Seq
			// Flushed when nothing more is waiting, as the relay does.
			for more := true; more && len(f.ru.tee) > 0; {
				if ev, more = <-f.ru.tee; more {
					buf = f.appendEvent(buf, ev)
					after = ev.Seq
				}
			}
			if !f.write(buf) {
				return after, false
			}
		case <-beat:
			if s.cfg.Now().Sub(f.last) >= s.cfg.Heartbeat && !f.write(keepAlive) {
				return after, false
			}
		case <-f.r.Context().Done():
			return after, false
		}
	}
}

// appendEvent appends ev as this client gets it (with its id: line for
// chat), and feeds it to the dialect, which numbers an error event after it.
func (f *follower) appendEvent(buf []byte, ev grokgate.StreamEvent) []byte {
	data, ok := sse.Data(ev.Data)
	if !ok {
		data, _ = sse.AppendData(nil, ev.Data)
	}
	f.d.event(data)
	if f.idLines {
		buf = strconv.AppendInt(append(buf, "id: "...), ev.Seq, 10)
		buf = append(buf, '\n')
	}
	return append(buf, ev.Data...)
}

func latest(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// fail ends the stream with the dialect's error event.
func (f *follower) fail(e *apierror.Error) {
	f.start()
	f.s.failStream(f.w, f.r, f.d, e, nil)
}

// awaitFirst waits for a runner's first event, keeping the connection
// alive with heartbeats (which commit the headers, as a relayed stream's
// do); it reports whether to follow the log. A failure before the first
// event is answered with its HTTP status if no heartbeat went out.
func (f *follower) awaitFirst(ru *runner, beats bool) bool {
	var beat <-chan time.Time
	if hb := f.s.cfg.Heartbeat; hb > 0 && beats {
		t := time.NewTicker(hb)
		defer t.Stop()
		beat = t.C
	}
	for {
		select {
		case e := <-ru.first:
			if e == nil {
				return true
			}
			if f.started {
				f.fail(e)
			} else {
				f.s.fail(f.w, f.r, e, nil)
			}
			return false
		case <-beat:
			if !f.write(keepAlive) {
				return false
			}
		case <-f.r.Context().Done():
			return false
		}
	}
}

// streamOf returns the state of a stream log the caller's key may read;
// for another key's as for an unknown id, ok is false and notFound was
// answered (the same 404 either way); a failing store is a 503.
func (s *Server) streamOf(w http.ResponseWriter, r *http.Request, logID string, notFound *apierror.Error) (grokgate.StreamState, bool) {
	ctx, cancel := context.WithTimeout(r.Context(), storeTimeout)
	defer cancel()
	st, err := s.cfg.Streams.State(ctx, logID)
	k := infoFrom(r.Context()).key
	switch {
	case err == nil && k != nil && st.Meta.Owner == k.ID:
		return st, true
	case err == nil, errors.Is(err, grokgate.ErrStreamNotFound):
		s.fail(w, r, notFound, nil)
	default:
		s.fail(w, r, apierror.StoreUnavailable(), err)
	}
	return st, false
}

// handleResumeChat serves GET /chat/completions/{id}/stream: the events of
// a resumable chat stream after Last-Event-ID (all without it), then the
// live ones, ending as the stream does.
func (s *Server) handleResumeChat(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if s.cfg.Streams == nil {
		s.fail(w, r, streamNotFound(id), nil)
		return
	}
	after := int64(0)
	if v := r.Header.Get("Last-Event-ID"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			s.fail(w, r, &apierror.Error{Status: http.StatusBadRequest, Param: "Last-Event-ID", Code: "invalid_last_event_id",
				Message: "Last-Event-ID must be the number of an event of this stream (its id: line), got " + quote(v) + "."}, nil)
			return
		}
		after = n
	}
	st, ok := s.streamOf(w, r, chatLogPrefix+id, streamNotFound(id))
	if !ok {
		return
	}
	if st.Meta.Dialect != dialectChat {
		s.fail(w, r, streamNotFound(id), nil)
		return
	}
	f := s.newFollower(w, r, chatLogPrefix+id, dialectChat)
	f.idLines, f.streamID = true, id
	f.follow(after)
}

func streamNotFound(id string) *apierror.Error {
	return &apierror.Error{Status: http.StatusNotFound, Type: apierror.TypeInvalidRequest, Code: "stream_not_found",
		Message: "No resumable stream with id " + quote(id) + " was found for this API key (streams are kept for GROKGATE_RESUME_WINDOW after they end)."}
}

// wantsResumable reports whether a chat request asked for a resumable
// stream.
func wantsResumable(r *http.Request) bool {
	v, ok := r.Header[headerResumable]
	return ok && len(v) > 0 && (v[0] == "true" || v[0] == "1")
}

// newStreamID returns a chat stream's id: random, so no one guesses it
// (the key check stands behind it anyway).
func newStreamID() string {
	id := newRequestID(time.Now())
	return "gs_" + id[len("req_"):]
}
