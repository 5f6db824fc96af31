package gateway

import (
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/grokgate/grokgate"
	"github.com/grokgate/grokgate/apierror"
)

// refusals counts each key's refused requests (400, 403, 413, 415, 429:
// the outcome "rejected") in the current minute, on this replica. They
// cost no upstream call, so nothing else limits them: without this an
// rpm=1 key could send tens of thousands a minute, each a ledger row.
// The ledger gets one record per key and minute instead, the first refusal's,
// whose Count is how many were refused; it is written when the minute ends
// (at the next refusal, or by a timer if none comes) or at shutdown.
type refusals struct {
	mu     sync.Mutex
	minute int64
	byKey  map[string]int64
	// ledger holds this minute's record of each key, not yet written.
	ledger map[string]*grokgate.Record
	// timer writes the minute's records when it ends; nil while none wait.
	timer *time.Timer
	now   func() time.Time
	write func(grokgate.Record)
}

// note counts rec, a refusal of its key, into the key's record this minute.
func (f *refusals) note(rec grokgate.Record, now time.Time) {
	f.mu.Lock()
	ended := f.roll(now)
	f.byKey[rec.KeyID]++
	if p := f.ledger[rec.KeyID]; p != nil {
		p.Count++
	} else {
		rec.Count = 1
		f.ledger[rec.KeyID] = &rec
		f.arm(now)
	}
	f.mu.Unlock()
	f.flush(ended)
}

// count returns key's refusals this minute.
func (f *refusals) count(key string, now time.Time) int64 {
	f.mu.Lock()
	ended := f.roll(now)
	n := f.byKey[key]
	f.mu.Unlock()
	f.flush(ended)
	return n
}

// roll starts a new minute's counts and returns the records of the minute
// that ended; mu is held. The maps are replaced, not cleared, so a burst of
// keys does not keep its memory.
func (f *refusals) roll(now time.Time) []grokgate.Record {
	m := now.Unix() / 60
	if m == f.minute && f.byKey != nil {
		return nil
	}
	ended := f.take()
	f.minute, f.byKey = m, map[string]int64{}
	return ended
}

// take empties the ledger records; mu is held.
func (f *refusals) take() []grokgate.Record {
	var out []grokgate.Record
	for _, r := range f.ledger {
		out = append(out, *r)
	}
	f.ledger = map[string]*grokgate.Record{}
	return out
}

// arm starts the timer that writes this minute's records at its end, if it
// is not running; mu is held.
func (f *refusals) arm(now time.Time) {
	if f.timer == nil {
		f.timer = time.AfterFunc(time.Unix((f.minute+1)*60, 0).Sub(now), f.tick)
	}
}

// tick writes the records of a minute that ended with no refusal since.
func (f *refusals) tick() {
	f.mu.Lock()
	f.timer = nil
	now := f.now()
	ended := f.roll(now)
	if len(f.ledger) > 0 {
		// The clock had not reached the minute's end: look again then.
		f.arm(now)
	}
	f.mu.Unlock()
	f.flush(ended)
}

// flush writes recs outside mu: the recorder may block for a moment.
func (f *refusals) flush(recs []grokgate.Record) {
	for _, r := range recs {
		f.write(r)
	}
}

// FlushRefusals writes the refused requests counted so far this minute to
// the ledger at once; serve calls it at shutdown, before the recorder is
// flushed, so no minute's refusals are lost.
func (s *Server) FlushRefusals() {
	f := &s.refused
	f.mu.Lock()
	if f.timer != nil {
		f.timer.Stop()
		f.timer = nil
	}
	recs := f.take()
	f.mu.Unlock()
	f.flush(recs)
}

// refusedTooOften answers 429 for a key whose refused requests this minute
// reached its requests-per-minute limit, before any other work (the body is
// not read), and reports whether it did. It is the requests limit, applied
// to requests the limiter never admitted, so its code is the same. On a
// metered route (route not "") the refusal joins the key's ledger record of
// the minute like any other.
func (s *Server) refusedTooOften(w http.ResponseWriter, r *http.Request, route string) bool {
	info := infoFrom(r.Context())
	if info.key == nil {
		return false
	}
	rpm := info.key.Limits.Resolve(s.cfg.DefaultLimits).RPM
	now := s.cfg.Now()
	if rpm <= 0 || s.refused.count(info.key.ID, now) < rpm {
		return false
	}
	wait := 60 - now.Unix()%60
	w.Header().Set("Retry-After", strconv.FormatInt(wait, 10))
	if r.ContentLength != 0 {
		w.Header().Set("Connection", "close") // the body is not read
	}
	s.rateLimited(string(grokgate.LimitRequests), info.key)
	s.fail(w, r, &apierror.Error{Status: http.StatusTooManyRequests, Type: apierror.TypeRateLimit, Code: "rate_limit_requests",
		Message: "This key sent " + itoa(rpm) + " requests this minute that were refused (invalid, not allowed or over a limit), its requests-per-minute limit; fix the requests and try again in " + strconv.FormatInt(wait, 10) + "s."}, nil)
	if route != "" {
		s.refused.note(grokgate.Record{Time: info.start.UTC(), RequestID: info.id, KeyID: info.key.ID, Route: route,
			Status: http.StatusTooManyRequests, Outcome: grokgate.OutcomeRejected, Latency: s.cfg.Now().Sub(info.start)}, now)
	}
	return true
}
