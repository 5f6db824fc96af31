package gateway

import (
	"context"
	"sync/atomic"
	"time"
)

// watchdog is the one timer of an upstream exchange. It cancels the exchange
// with the cause that applies: xAI late to start answering (the first-byte
// timeout), a stream silent for too long (the idle timeout), or the whole
// exchange past the total timeout. One timer reset per event instead of
// three timers and a deadline context per request: this is per-request and
// per-stream cost on the hot path.
type watchdog struct {
	timer     *time.Timer
	cancel    context.CancelCauseFunc
	total     time.Time // the total timeout's deadline, on the monotonic clock
	idle      time.Duration
	streaming atomic.Bool // an event arrived: silence is now measured by idle
}

func newWatchdog(cancel context.CancelCauseFunc, firstByte, idle, total time.Duration) *watchdog {
	w := &watchdog{cancel: cancel, idle: idle, total: time.Now().Add(total)}
	w.timer = time.AfterFunc(min(firstByte, total), w.fire)
	return w
}

func (w *watchdog) fire() {
	switch {
	case !time.Now().Before(w.total):
		w.cancel(errTotal)
	case w.streaming.Load():
		w.cancel(errIdle)
	default:
		w.cancel(errFirstByteTimeout)
	}
}

// event notes a stream event: the next must come within the idle timeout
// (and the exchange still end by the total deadline).
func (w *watchdog) event() {
	w.streaming.Store(true)
	w.timer.Reset(min(w.idle, time.Until(w.total)))
}

// stop ends the watch; the exchange is over or answered otherwise.
func (w *watchdog) stop() { w.timer.Stop() }
