package gateway

import (
	"errors"
	"net/http"
	"sync"
	"time"

	"github.com/grokgate/grokgate"
	"github.com/grokgate/grokgate/apierror"
)

// keyStatus is an Authenticator that can say whether a key it gave out is
// still usable, as of its latest reload (keys.Cache).
type keyStatus interface {
	Status(k *grokgate.Key) error
}

// errRevoked cancels the exchanges of a key revoked (or expired) while they
// ran.
var errRevoked = errors.New("the key was revoked")

// revocationPoll is how often the exchanges in flight are checked against
// the key store's latest reload (which polls each second): a revoked key's
// streams end within two seconds.
const revocationPoll = 500 * time.Millisecond

// inflight tracks every upstream exchange by its key, so that revoking a
// key ends what it has in flight and not only its next request. Its poller
// runs only while something is in flight.
type inflight struct {
	mu      sync.Mutex
	byWD    map[*watchdog]*grokgate.Key
	running bool
}

// track adds an exchange; the returned func removes it.
func (s *Server) track(wd *watchdog, k *grokgate.Key) {
	st, ok := s.auth.(keyStatus)
	if k == nil || !ok {
		return
	}
	f := &s.inflight
	f.mu.Lock()
	if f.byWD == nil {
		f.byWD = map[*watchdog]*grokgate.Key{}
	}
	f.byWD[wd] = k
	start := !f.running
	f.running = true
	f.mu.Unlock()
	if start {
		go s.pollRevocations(st)
	}
}

func (s *Server) untrack(wd *watchdog) {
	f := &s.inflight
	f.mu.Lock()
	delete(f.byWD, wd)
	f.mu.Unlock()
}

// pollRevocations ends the exchanges whose key is no longer usable, until
// none is in flight.
func (s *Server) pollRevocations(st keyStatus) {
	t := time.NewTicker(revocationPoll)
	defer t.Stop()
	f := &s.inflight
	var ended []*watchdog
	for range t.C {
		ended = ended[:0]
		f.mu.Lock()
		if len(f.byWD) == 0 {
			f.running = false
			f.mu.Unlock()
			return
		}
		for wd, k := range f.byWD {
			if st.Status(k) != nil {
				ended = append(ended, wd)
				delete(f.byWD, wd)
			}
		}
		f.mu.Unlock()
		for _, wd := range ended {
			wd.end(errRevoked)
		}
	}
}

// revokedError is the answer to a request whose key was revoked before xAI
// began answering.
func revokedError() *apierror.Error {
	return &apierror.Error{Status: http.StatusUnauthorized, Code: "revoked_api_key",
		Message: "This API key was revoked while the request ran; ask the grokgate operator for a new one."}
}
