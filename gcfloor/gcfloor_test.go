package gcfloor

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"testing"
	"time"
)

func TestPercent(t *testing.T) {
	const mib = 1 << 20
	for _, tc := range []struct {
		floor, live, scannable uint64
		base, want             int
	}{
		{64 * mib, 4 * mib, 4 * mib, 100, 1500},    // goal 4 + 4×15 = 64 MiB
		{64 * mib, 4 * mib, 8 * mib, 100, 750},     // stacks count toward the goal too
		{64 * mib, 40 * mib, 40 * mib, 100, 100},   // GOGC's own goal (80) is above the floor
		{64 * mib, 300 * mib, 500 * mib, 100, 100}, // live heap above the floor
		{64 * mib, 1, 1, 100, 1600},                // tiny heap: the runtime's 4 MiB minimum goal, scaled, is the floor
		{64 * mib, 2 * mib, 3 * mib, 100, 1600},    // likewise
		{64 * mib, 4 * mib, 4 * mib, 2000, 2000},   // never below base
		{64 * mib, 0, 0, 100, 100},                 // nothing measured yet
	} {
		if got := Percent(tc.floor, tc.live, tc.scannable, tc.base); got != tc.want {
			t.Errorf("Percent(%d, %d, %d, %d) = %d, want %d", tc.floor, tc.live, tc.scannable, tc.base, got, tc.want)
		}
	}
}

func gcPercent() int64 {
	s := []metrics.Sample{{Name: "/gc/gogc:percent"}}
	metrics.Read(s)
	return int64(s[0].Value.Uint64())
}

// TestKeep runs the real loop: after a collection the percent is raised so
// the goal reaches the floor; stop puts base back and ends the loop.
func TestKeep(t *testing.T) {
	old := debug.SetGCPercent(100)
	defer debug.SetGCPercent(old)

	const floor = 512 << 20 // far above this test binary's live heap
	stop := Keep(floor, 100)
	defer stop()
	waitFor(t, "the percent to rise after a collection", func() bool { return gcPercent() > 1000 })
	if p := gcPercent(); p > floor*100/heapMinimum {
		t.Fatalf("percent %d puts the runtime's minimum goal above the floor", p)
	}

	// Keep a live heap above the floor: the next cycles hand back to base.
	stop()
	if got := gcPercent(); got != 100 {
		t.Fatalf("after stop the percent is %d, want 100", got)
	}
	stop = Keep(8<<20, 100)
	waitFor(t, "the percent to rise for an 8 MiB floor", func() bool { return gcPercent() > 100 })
	ballast := make([][]byte, 0, 32)
	for range 32 {
		ballast = append(ballast, make([]byte, 1<<20))
	}
	waitFor(t, "the percent to fall back to base with a live heap above the floor", func() bool { return gcPercent() == 100 })
	runtime.KeepAlive(ballast)
	stop()
}

// waitFor collects until cond holds: the adjustment runs on the runtime's
// cleanup goroutine after a cycle, so it is waited for, with a bound.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s (percent %d)", what, gcPercent())
		}
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
}
