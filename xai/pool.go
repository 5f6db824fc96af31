package xai

import (
	"strings"
	"sync/atomic"
	"time"
)

// keyPool spreads requests over several xAI keys and keeps failing ones out
// of rotation for a while. Picking a key takes no lock: the cursor and each
// key's cool-down are atomics.
type keyPool struct {
	keys   []*poolKey
	cursor atomic.Uint64
}

type poolKey struct {
	authHeader []string // the Authorization header, built once: "Bearer " + the key
	label      string   // "key#2 (…wxyz)": safe to log, tells keys apart
	// until is the Unix-nanosecond time before which the key should not be
	// used; 0 means available.
	until atomic.Int64
	// fails counts consecutive retryable failures.
	fails atomic.Int32
}

// parseKeys splits a comma-separated XAI_API_KEY.
func parseKeys(list string) []string {
	var out []string
	for _, k := range strings.Split(list, ",") {
		if k = strings.TrimSpace(k); k != "" {
			out = append(out, k)
		}
	}
	return out
}

func newKeyPool(secrets []string) *keyPool {
	p := &keyPool{}
	for i, s := range secrets {
		tail := s
		if len(tail) > 4 {
			tail = tail[len(tail)-4:]
		}
		p.keys = append(p.keys, &poolKey{authHeader: []string{"Bearer " + s}[:1:1], label: "key#" + itoa(i+1) + " (..." + tail + ")"})
	}
	return p
}

// pick returns the next available key in rotation, skipping avoid (the key
// that just failed) and keys cooling down. When every key is cooling down it
// returns the one that recovers first rather than refusing the request.
func (p *keyPool) pick(now time.Time, avoid *poolKey) *poolKey {
	n := uint64(len(p.keys))
	start := p.cursor.Add(1)
	var best *poolKey
	for i := uint64(0); i < n; i++ {
		k := p.keys[(start+i)%n]
		if k.until.Load() <= now.UnixNano() && (k != avoid || n == 1) {
			return k
		}
		if best == nil || k.until.Load() < best.until.Load() || best == avoid {
			best = k
		}
	}
	return best
}

// Cool-down lengths. A key that upstream calls invalid or unfunded will not
// heal by itself soon; one that is rate limited or failing usually does.
const (
	rejectedCooldown = 10 * time.Minute
	failingCooldown  = 30 * time.Second
	failingAfter     = 3 // consecutive retryable failures before a key cools down
)

// hasOther reports whether a key other than k is available now, without
// moving the rotation.
func (p *keyPool) hasOther(now time.Time, k *poolKey) bool {
	for _, o := range p.keys {
		if o != k && o.until.Load() <= now.UnixNano() {
			return true
		}
	}
	return false
}

func (k *poolKey) succeeded() { k.fails.Store(0) }

// failed records a retryable failure; retryAfter, when upstream sent one,
// keeps the key out of rotation at least that long.
func (k *poolKey) failed(now time.Time, retryAfter time.Duration) {
	var cool time.Duration
	if n := k.fails.Add(1); n >= failingAfter {
		cool = failingCooldown
	}
	cool = max(cool, retryAfter)
	if cool > 0 {
		k.until.Store(now.Add(cool).UnixNano())
	}
}

func (k *poolKey) rejected(now time.Time) { k.until.Store(now.Add(rejectedCooldown).UnixNano()) }
