package gateway

import (
	"context"
	"net/http"
	"sync/atomic"
	"time"
)

// watchdog is the one timer of an upstream exchange. It cancels the exchange
// with the cause that applies: xAI late to start answering (the first-byte
// timeout), a stream silent for too long (the idle timeout), or the whole
// exchange past the total timeout. One timer instead of three timers and a
// deadline context per request, and it is not reset per event: an event
// only notes its time, and the timer, when it fires early, sleeps again
// until the idle timeout after the last event. Resetting a runtime timer
// per event cost more than the rest of the event's bookkeeping.
type watchdog struct {
	timer     *time.Timer
	cancel    context.CancelCauseFunc
	born      time.Time // on the monotonic clock, like total
	total     time.Time // the total timeout's deadline
	idle      time.Duration
	streaming atomic.Bool  // an event arrived: silence is now measured by idle
	last      atomic.Int64 // when the last event arrived, in nanoseconds since born
	stopped   atomic.Bool  // the exchange is over: a late fire does nothing
	// rc is the client side of a stream once it has one: ending the
	// exchange must also end a write blocked on a client that stopped
	// reading, which no context cancels.
	rc atomic.Pointer[http.ResponseController]
}

// endGrace is how long a stream's closing event may take to reach the
// client once the exchange is ended; a client that is not reading is cut
// off after it.
const endGrace = time.Second

func newWatchdog(cancel context.CancelCauseFunc, firstByte, idle, total time.Duration) *watchdog {
	now := time.Now()
	w := &watchdog{cancel: cancel, idle: idle, born: now, total: now.Add(total)}
	w.timer = time.AfterFunc(min(firstByte, total), w.fire)
	return w
}

func (w *watchdog) fire() {
	if w.stopped.Load() {
		return
	}
	now := time.Now()
	switch {
	case !now.Before(w.total):
		w.end(errTotal)
	case w.streaming.Load():
		// Events kept coming: sleep until the idle timeout after the last.
		idleAt := w.born.Add(time.Duration(w.last.Load()) + w.idle)
		if now.Before(idleAt) {
			w.timer.Reset(min(idleAt.Sub(now), w.total.Sub(now)))
			return
		}
		w.end(errIdle)
	default:
		w.end(errFirstByteTimeout)
	}
}

// end ends the exchange with cause: upstream at once, the client's side
// after endGrace if a write to it is stuck.
func (w *watchdog) end(cause error) {
	w.cancel(cause)
	if rc := w.rc.Load(); rc != nil {
		rc.SetWriteDeadline(time.Now().Add(endGrace))
	}
}

// event notes a stream event: the next must come within the idle timeout
// (and the exchange still end by the total deadline).
func (w *watchdog) event() {
	w.last.Store(int64(time.Since(w.born)))
	if !w.streaming.Load() {
		// The first event: from now on silence is measured by idle, which
		// may end sooner than the first-byte wait the timer is set for.
		w.streaming.Store(true)
		w.timer.Reset(min(w.idle, time.Until(w.total)))
	}
}

// lastEvent returns when the last event arrived; ok is false before the
// first.
func (w *watchdog) lastEvent() (_ time.Time, ok bool) {
	if !w.streaming.Load() {
		return time.Time{}, false
	}
	return w.born.Add(time.Duration(w.last.Load())), true
}

// stop ends the watch; the exchange is over or answered otherwise.
func (w *watchdog) stop() {
	w.stopped.Store(true)
	w.timer.Stop()
}
