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
type refusals struct {
	mu     sync.Mutex
	minute int64
	byKey  map[string]int64
}

// note counts a refusal of key and returns the key's count this minute.
func (f *refusals) note(key string, now time.Time) int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.roll(now)
	f.byKey[key]++
	return f.byKey[key]
}

// count returns key's refusals this minute.
func (f *refusals) count(key string, now time.Time) int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.roll(now)
	return f.byKey[key]
}

// roll starts a new minute's counts; mu is held. The map is replaced, not
// cleared, so a burst of keys does not keep its memory.
func (f *refusals) roll(now time.Time) {
	if m := now.Unix() / 60; m != f.minute || f.byKey == nil {
		f.minute, f.byKey = m, map[string]int64{}
	}
}

// refusedTooOften answers 429 for a key whose refused requests this minute
// reached its requests-per-minute limit, before any other work (the body is
// not read), and reports whether it did. It is the requests limit, applied
// to requests the limiter never admitted, so its code is the same.
func (s *Server) refusedTooOften(w http.ResponseWriter, r *http.Request) bool {
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
	return true
}
