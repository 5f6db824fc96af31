// Package gcfloor keeps Go's garbage collector from running on a tiny heap.
//
// With GOGC=100 the collector runs whenever the heap has grown by as much as
// the last cycle left live (and after no less than 4 MiB). Between requests
// a gateway's live heap is a few MiB, while under load it allocates a few
// hundred MiB a second, nearly all of it garbage within a millisecond: it
// would collect dozens of times a second, each cycle costing CPU (marking,
// assists that slow the requests that allocate) for little memory returned.
//
// A floor makes the heap goal at least Floor bytes while the live heap is
// small, by raising the GC percent after each cycle, and hands control back
// to the base percent once the live heap is large enough (thousands of open
// streams) that GOGC's own goal is above the floor. The heap then peaks near
// max(floor, what GOGC alone allows), and a GOMEMLIMIT still wins over both.
// This is the minimum-heap tuner some large Go services run (a "ballast"
// done with the GC's own knob).
package gcfloor

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
)

// heapMinimum is the runtime's smallest heap goal at GOGC=100 (its
// defaultHeapMinimum). The runtime scales it by GOGC/100 too, so while the
// live heap is tiny the goal is heapMinimum × percent/100, and the percent
// must not exceed floor/heapMinimum × 100.
const heapMinimum = 4 << 20

// Keep raises the GC percent after every collection so that the heap goal
// is at least floor bytes, never setting it below base (the percent GOGC
// gave). stop restores base and ends the adjustments; it is safe to call
// more than once.
func Keep(floor uint64, base int) (stop func()) {
	k := &keeper{floor: floor, base: base, samples: []metrics.Sample{
		{Name: "/gc/heap/live:bytes"},
		{Name: "/gc/scan/stack:bytes"},
		{Name: "/gc/scan/globals:bytes"},
	}}
	k.adjust()
	k.arm()
	return func() {
		k.mu.Lock()
		defer k.mu.Unlock()
		if k.stopped {
			return
		}
		k.stopped = true
		debug.SetGCPercent(k.base)
	}
}

type keeper struct {
	floor   uint64
	base    int
	samples []metrics.Sample // read only by adjust, which runs one at a time
	last    int
	// mu orders adjust's setting against stop's: once stop has put base
	// back, no adjustment may land after it.
	mu      sync.Mutex
	stopped bool
}

// sentinel is garbage from birth: its cleanup runs after the next cycle.
// It holds a pointer so the tiny allocator does not batch it with others.
type sentinel struct{ _ *int }

// arm schedules adjust after the next collection. Cleanups run one at a
// time on the runtime's cleanup goroutine, so adjust never races itself.
func (k *keeper) arm() {
	runtime.AddCleanup(&sentinel{}, func(k *keeper) {
		if k.adjust() {
			k.arm()
		}
	}, k)
}

// adjust sets the percent for the live heap the last cycle left, and
// reports whether the keeper is still running.
func (k *keeper) adjust() bool {
	metrics.Read(k.samples)
	live, stacks, globals := k.samples[0].Value.Uint64(), k.samples[1].Value.Uint64(), k.samples[2].Value.Uint64()
	p := Percent(k.floor, live, live+stacks+globals, k.base)
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.stopped {
		return false
	}
	// A few percent either way changes nothing worth a call.
	if p != k.last && (k.last == 0 || p == k.base || p <= k.last*9/10 || p >= k.last*11/10) {
		debug.SetGCPercent(p)
		k.last = p
	}
	return true
}

// Percent is the GC percent whose heap goal is about floor: the runtime
// aims for live + scannable × percent/100 (scannable being the live heap
// plus goroutine stacks and globals), and for no less than heapMinimum ×
// percent/100. It is never below base.
func Percent(floor, live, scannable uint64, base int) int {
	if live >= floor || scannable == 0 {
		return base
	}
	p := min((floor-live)*100/scannable, floor*100/heapMinimum)
	return max(base, int(p))
}
