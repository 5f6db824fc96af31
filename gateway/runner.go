package gateway

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/grokgate/grokgate"
	"github.com/grokgate/grokgate/apierror"
	"github.com/grokgate/grokgate/sse"
	"github.com/grokgate/grokgate/usage"
)

var (
	// errCancelled: POST /responses/{id}/cancel reached the runner.
	errCancelled = errors.New("generation cancelled")
	// errAbandoned: no client read the stream for the resume window.
	errAbandoned = errors.New("generation abandoned")
)

// runner relays one detached generation (a background response, a
// resumable chat stream) from xAI into the stream log, on a goroutine of
// its own: the client's connection only reads the log, so a client that
// leaves ends nothing. The runner owns the request's meter and limiter
// state once detach handed them over, and settles them when the generation
// ends: one usage record, by the replica that ran it, whether or not anyone
// read the answer to its end.
type runner struct {
	s     *Server
	r     *http.Request // detached: the request's values, never cancelled by its client
	m     *meter
	st    *limitState
	resp  *http.Response
	ctx   context.Context
	abort context.CancelCauseFunc // ends the upstream exchange with a cause
	stop  func()                  // releases the exchange's watchdog and hooks
	wd    *watchdog
	// logID is the stream log's id: set before the run for chat, learnt
	// from the first event for a response.
	logID string
	meta  grokgate.StreamMeta
	owner *ownerRecorder // Responses: the new response's owner record
	// first tells the handler how the generation started: nil once its
	// first event is in the log, else the error to answer with. Buffered:
	// the handler may have gone.
	first    chan *apierror.Error
	signaled bool
	created  bool
	status   string // the Finish status
	renewing chan struct{}
	renewed  chan struct{}
	// tee hands each stored event to the client that started the
	// generation, sparing it a read of the log per event; closed at the
	// end, or when that client falls behind by a full buffer (it then
	// reads the log from where it was, as any resume does).
	tee       chan grokgate.StreamEvent
	teeClosed bool // runner's goroutine only
	// teeSeen is when the tee's reader last took an event or waited for
	// one (unix nanoseconds): a reader, for the resume window, though it
	// does not read the log.
	teeSeen atomic.Int64
}

// defaultTeeBuffer is how many events the first client may lag behind
// before it reads the log instead.
const defaultTeeBuffer = 64

// runnerContext is upstreamContext for a generation that outlives its
// client: only the timeouts, a shutdown past the drain timeout, a revoked
// key, a cancel or the resume window end it.
func (s *Server) runnerContext(r *http.Request) (context.Context, context.CancelCauseFunc, func(), *watchdog) {
	ctx, cancel := context.WithCancelCause(context.WithoutCancel(r.Context()))
	stopShutdown := context.AfterFunc(s.cfg.Shutdown, func() { cancel(errStopped) })
	wd := newWatchdog(cancel, s.cfg.FirstByteTimeout, s.cfg.StreamIdleTimeout, s.cfg.TotalTimeout)
	s.track(wd, infoFrom(r.Context()).key)
	return ctx, cancel, func() {
		cancel(nil)
		wd.stop()
		stopShutdown()
		s.untrack(wd)
	}, wd
}

// detach hands a request's meter and limiter state to a runner: the
// handler's deferred settle and release then leave them alone, and the
// runner gets a request whose context carries a copy of the request's
// info (the handler's own info stays the handler's, for its access-log
// line) and is never cancelled by the client.
func detach(r *http.Request) (*http.Request, *meter, *limitState) {
	info := infoFrom(r.Context())
	cp := *info
	m, st := info.meter, info.limit
	if m != nil {
		m.detached = true
	}
	if st != nil {
		st.detached = true
	}
	info.meter, info.limit = nil, nil
	ctx := context.WithValue(context.WithoutCancel(r.Context()), infoKey{}, &cp)
	return r.WithContext(ctx), m, st
}

// startRunner detaches the request and starts relaying resp into the
// stream log. ctx, abort, stop and wd come from runnerContext.
// With tee, the events are also handed to the request's own follower.
func (s *Server) startRunner(r *http.Request, resp *http.Response, ctx context.Context, abort context.CancelCauseFunc, stop func(), wd *watchdog, logID, dialectName string, tee bool) *runner {
	dr, m, st := detach(r)
	info := infoFrom(dr.Context())
	if tb, ok := resp.Body.(*timedBody); ok {
		// The upstream timing ends with the runner's exchange: its info.
		tb.info, tb.ctx = info, dr.Context()
	}
	ru := &runner{s: s, r: dr, m: m, st: st, resp: resp, ctx: ctx, abort: abort, stop: stop, wd: wd, logID: logID,
		first: make(chan *apierror.Error, 1), tee: make(chan grokgate.StreamEvent, s.teeBuffer)}
	ru.teeSeen.Store(s.cfg.Now().UnixNano())
	if !tee {
		close(ru.tee)
		ru.teeClosed = true
	}
	ru.meta = grokgate.StreamMeta{Dialect: dialectName, Model: info.model, Created: s.cfg.Now().UTC()}
	if info.key != nil {
		ru.meta.Owner = info.key.ID
	}
	if dialectName == dialectResponses {
		ru.owner = s.newOwnerRecorder(dr)
		m.responses.onID = ru.owner.record
	}
	s.runners.Add(1)
	go ru.run()
	return ru
}

// Names of the dialects in StreamMeta.
const (
	dialectChat      = "chat"
	dialectResponses = "responses"
)

func (ru *runner) run() {
	defer ru.end()
	s := ru.s
	bp := s.bufs.Get().(*[]byte)
	defer s.bufs.Put(bp)
	sc := sse.NewScanner(ru.resp.Body, *bp, 0)
	d := ru.m.dialect()
	var scratch []byte
	for sc.Scan() {
		ev := sc.Event()
		ru.wd.event()
		data, ok := sse.Data(ev)
		if !ok {
			scratch, _ = sse.AppendData(scratch[:0], ev)
			data = scratch
		}
		act := d.event(data)
		if ru.m != nil && ru.m.progress.Due() {
			ru.m.publish(d)
		}
		switch act {
		case actWithhold:
			continue
		case actError:
			ru.fail(d.upstreamError(data))
			return
		case actEnd:
			if ru.append(ev) {
				ru.m.complete()
				ru.status = terminalStatus(d)
				drain(sc)
			}
			return
		}
		if !ru.append(ev) {
			return
		}
	}
	ru.ended(sc.Err())
}

// terminalStatus is the Finish status of a stream that reached its end.
func terminalStatus(d dialect) string {
	if rd, ok := d.(*responsesDialect); ok {
		switch rd.m.Terminal {
		case usage.ResponseFailed:
			return streamFailed
		case usage.ResponseIncomplete:
			return streamIncomplete
		}
	}
	return streamCompleted
}

// append writes one event to the log, creating the log at the first; it
// reports whether the generation goes on.
func (ru *runner) append(ev []byte) bool {
	s := ru.s
	if !ru.created && !ru.create() {
		return false
	}
	// An event read is stored even if the generation is being stopped:
	// the stop ends the next read from xAI instead.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ru.ctx), storeTimeout)
	seq, err := s.cfg.Streams.Append(ctx, ru.logID, ev)
	cancel()
	if err == nil {
		ru.toTee(seq, ev)
	}
	if err != nil {
		// The rest of the answer has nowhere to go: readers end with an
		// error event (follow), and xAI stops generating what no one
		// could read.
		ru.status = streamOverflow
		infoFrom(ru.r.Context()).cause = err
		s.log.Warn("a resumable stream's event was not stored; the generation is stopped",
			"request_id", infoFrom(ru.r.Context()).id, "err", err)
		ru.abort(err)
		return false
	}
	if !ru.signaled {
		ru.m.started(s.cfg.Now())
		ru.signal(nil)
	}
	return true
}

// create starts the log at the first event; a response's id comes from it.
func (ru *runner) create() bool {
	s := ru.s
	if ru.logID == "" {
		id := ru.m.responses.id()
		if id == "" {
			ru.abort(errNoEnd)
			ru.signal(&apierror.Error{Status: http.StatusBadGateway, Type: apierror.TypeUpstream, Code: "upstream_bad_response",
				Message: "xAI's stream did not name its response; send the request again"})
			return false
		}
		ru.logID = responsesLogPrefix + id
	}
	ctx, cancel := context.WithTimeout(ru.ctx, storeTimeout)
	err := s.cfg.Streams.Create(ctx, ru.logID, ru.meta)
	cancel()
	if err != nil {
		ru.abort(err)
		infoFrom(ru.r.Context()).cause = err
		if errors.Is(err, grokgate.ErrStreamLogFull) {
			ru.signal(resumeCapacity())
		} else {
			ru.signal(apierror.StoreUnavailable())
		}
		return false
	}
	ru.created = true
	s.local.Store(ru.logID, ru)
	ru.renewing, ru.renewed = make(chan struct{}), make(chan struct{})
	go ru.renew()
	return true
}

func resumeCapacity() *apierror.Error {
	return &apierror.Error{Status: http.StatusTooManyRequests, Type: apierror.TypeRateLimit, Code: "resume_capacity",
		Message: "grokgate holds as many resumable streams as it is configured to; try again shortly, or send the request without background or X-Grokgate-Resumable"}
}

// signal tells the handler, once, how the generation started.
func (ru *runner) signal(e *apierror.Error) {
	if !ru.signaled {
		ru.signaled = true
		ru.first <- e
	}
}

// fail ends the generation with e: the handler answers it with its HTTP
// status if nothing was stored yet, else the log ends with the dialect's
// error event.
func (ru *runner) fail(e *apierror.Error) {
	ru.status = streamFailed
	info := infoFrom(ru.r.Context())
	info.errCode, info.errMsg = e.Code, e.Message
	if !ru.created {
		info.status = e.StatusCode()
		ru.signal(e)
		return
	}
	info.streamErr = true
	ev := ru.m.dialect().appendError(nil, e, ru.s.cfg.StreamErrorFormat)
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ru.ctx), storeTimeout)
	defer cancel()
	seq, err := ru.s.cfg.Streams.Append(ctx, ru.logID, ev)
	if err != nil {
		ru.status = streamOverflow
		return
	}
	ru.toTee(seq, ev)
}

// toTee hands a stored event to the first client, unless it fell behind.
func (ru *runner) toTee(seq int64, ev []byte) {
	if ru.teeClosed {
		return
	}
	select {
	case ru.tee <- grokgate.StreamEvent{Seq: seq, Data: bytes.Clone(ev)}:
	default:
		close(ru.tee)
		ru.teeClosed = true
	}
}

// ended answers for a stream that ended without its final event, as
// relayEnded does for a stream relayed to its client.
func (ru *runner) ended(err error) {
	if err == nil {
		err = errNoEnd
	}
	cause := context.Cause(ru.ctx)
	info := infoFrom(ru.r.Context())
	info.cause = err
	switch {
	case errors.Is(cause, errCancelled):
		ru.status = streamCancelled
		info.status = statusClientClosed
		return
	case errors.Is(cause, errAbandoned):
		ru.fail(&apierror.Error{Status: http.StatusGone, Type: apierror.TypeInvalidRequest, Code: "stream_abandoned",
			Message: "no client read this stream for " + ru.s.cfg.ResumeWindow.String() + ", so its generation was stopped"})
		// After fail, which notes an unstarted stream's 410: the client
		// went away, and that is what the record says.
		info.status = statusClientClosed
		return
	case ru.status == streamOverflow:
		return
	}
	if !ru.created {
		ru.fail(noEventFailure(ru.ctx, context.Background(), err))
		return
	}
	ru.fail(ru.s.midStreamError(cause))
}

// renew keeps the runner's lease while the generation runs, and stops the
// generation when a cancel arrived (from any replica) or no one has read
// it for the resume window.
func (ru *runner) renew() {
	defer close(ru.renewed)
	s := ru.s
	t := time.NewTicker(max(s.cfg.StreamLease/4, 10*time.Millisecond))
	defer t.Stop()
	start := s.cfg.Now()
	for {
		select {
		case <-ru.renewing:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(ru.ctx, storeTimeout)
		st, err := s.cfg.Streams.Renew(ctx, ru.logID)
		cancel()
		if err != nil {
			continue // the lease may lapse: readers then end their streams
		}
		if st.Cancelled {
			ru.abort(errCancelled)
			return
		}
		seen := latest(latest(st.ReadSeen, start), time.Unix(0, ru.teeSeen.Load()))
		if s.cfg.Now().Sub(seen) > s.cfg.ResumeWindow {
			ru.abort(errAbandoned)
			return
		}
	}
}

// end finishes the log, then settles the request as keyedRoute does for
// one served on its own goroutine: one usage record, the limits released.
func (ru *runner) end() {
	s := ru.s
	defer s.runners.Done()
	if ru.renewing != nil {
		close(ru.renewing)
		<-ru.renewed
		s.local.Delete(ru.logID)
	}
	ru.stop()
	ru.resp.Body.Close()
	defer func() {
		// After Finish: a tee reader that found it closed reads the log's
		// end.
		if !ru.teeClosed {
			close(ru.tee)
		}
	}()
	if ru.created {
		if ru.status == "" {
			ru.status = streamFailed
		}
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ru.ctx), storeTimeout)
		if err := s.cfg.Streams.Finish(ctx, ru.logID, ru.status); err != nil {
			s.log.Warn("a resumable stream's end was not stored; its readers will take it for interrupted",
				"request_id", infoFrom(ru.r.Context()).id, "err", err)
		}
		cancel()
	}
	ru.signal(&apierror.Error{Status: http.StatusBadGateway, Type: apierror.TypeUpstream, Code: "stream_interrupted",
		Message: "the upstream stream ended unexpectedly before it was complete"})
	if ru.owner != nil {
		ru.owner.record(ru.m.responses.id())
		ru.owner.wait()
	}
	ru.m.returned = true
	s.settleMeter(&statusWriter{status: http.StatusOK}, ru.r, ru.m)
	if ru.st != nil {
		s.releaseAdmitted(ru.r, ru.st)
	}
	info := infoFrom(ru.r.Context())
	if rec := info.rec; rec != nil {
		s.log.Info("detached generation ended", "request_id", info.id, "stream", ru.logID, "status", ru.status,
			"outcome", string(rec.Outcome), "completion_tokens", rec.CompletionTokens)
	}
}

// Drain waits until the detached generations in flight have ended, or ctx
// ends; serve calls it after the HTTP server's drain, with the same
// deadline, and ends them (Config.Shutdown) if it passes.
func (s *Server) Drain(ctx context.Context) error {
	done := make(chan struct{})
	go func() {
		s.runners.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
