package redis

import (
	"errors"
	"sync"
	"time"
)

// ErrOpen is the error of a call the circuit breaker did not let through:
// Redis failed just before, and is not called again until a probe finds it
// answering.
var ErrOpen = errors.New("Redis failed just before; not calling it until it answers again")

// Breaker states, as Observer sees them.
const (
	StateClosed   = "closed"    // Redis is called
	StateOpen     = "open"      // calls fail at once
	StateHalfOpen = "half_open" // calls fail at once while a probe asks Redis
)

// breaker keeps calls away from a failing Redis. After Threshold failures
// in a row it opens: calls fail at once (ErrOpen) for a pause, so an outage
// costs a request microseconds instead of a connection attempt or a
// timeout. When the pause is over, the next call starts one probe in the
// background (calls still fail at once while it runs); if Redis answers the
// breaker closes, if not it opens again for twice as long, up to maxPause.
type breaker struct {
	now       func() time.Time
	threshold int
	minPause  time.Duration
	maxPause  time.Duration
	changed   func(state string, err error)

	mu      sync.Mutex
	state   string
	fails   int
	pause   time.Duration
	until   time.Time
	lastErr error
}

func newBreaker(now func() time.Time, threshold int, minPause, maxPause time.Duration, changed func(string, error)) *breaker {
	return &breaker{now: now, threshold: threshold, minPause: minPause, maxPause: maxPause, changed: changed,
		state: StateClosed, pause: minPause}
}

// allow reports whether a call may go to Redis, and whether the caller
// must start a probe (it then also fails the call).
func (b *breaker) allow() (ok, probe bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch b.state {
	case StateClosed:
		return true, false
	case StateOpen:
		if b.now().Before(b.until) {
			return false, false
		}
		b.set(StateHalfOpen, b.lastErr)
		return false, true
	default:
		return false, false
	}
}

// done records the outcome of a call that was let through; failed says
// Redis failed it (not the caller's context, not a script error Redis
// answered with).
func (b *breaker) done(failed bool, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !failed {
		b.fails = 0
		return
	}
	b.fails++
	b.lastErr = err
	if b.state == StateClosed && b.fails >= b.threshold {
		b.open(b.minPause, err)
	}
}

// probed records a probe's outcome.
func (b *breaker) probed(err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.state != StateHalfOpen {
		return
	}
	if err == nil {
		b.fails, b.pause = 0, b.minPause
		b.set(StateClosed, nil)
		return
	}
	b.lastErr = err
	b.open(min(b.pause*2, b.maxPause), err)
}

func (b *breaker) open(pause time.Duration, err error) {
	b.pause = pause
	b.until = b.now().Add(pause)
	b.set(StateOpen, err)
}

func (b *breaker) set(state string, err error) {
	if b.state == state {
		return
	}
	b.state = state
	if b.changed != nil {
		b.changed(state, err)
	}
}

// State is the breaker's state: StateClosed, StateOpen or StateHalfOpen.
func (b *breaker) State() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.state
}
