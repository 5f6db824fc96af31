package main

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strings"
	"testing"
	"time"
)

func gcPercent() uint64 {
	s := []metrics.Sample{{Name: "/gc/gogc:percent"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// TestServeKeepsGCFloor: serve raises the GC percent while the heap is
// small (GROKGATE_GC_FLOOR, on by default), puts it back when it ends, and
// leaves it alone when the operator set GOGC. The gateway runs in this
// process, so its setting is this test's to read. Not parallel: the
// percent is the process's.
func TestServeKeepsGCFloor(t *testing.T) {
	old := debug.SetGCPercent(100)
	defer debug.SetGCPercent(old)

	g := startGW(t, nil)
	deadline := time.Now().Add(10 * time.Second)
	for gcPercent() <= 100 {
		if time.Now().After(deadline) {
			t.Fatalf("GC percent stayed %d with the default 64 MiB floor", gcPercent())
		}
		runtime.GC() // the floor is recomputed after each collection
		time.Sleep(10 * time.Millisecond)
	}
	if p := gcPercent(); p > 1600 {
		t.Errorf("GC percent %d: the runtime's scaled 4 MiB minimum would put the goal above 64 MiB", p)
	}
	if err := g.stop(t); err != nil {
		t.Fatal(err)
	}
	if p := gcPercent(); p != 100 {
		t.Fatalf("after serve ended the GC percent is %d, want 100", p)
	}

	g = startGW(t, map[string]string{"GOGC": "100"})
	for range 5 {
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
	if p := gcPercent(); p != 100 {
		t.Errorf("with GOGC set the GC percent became %d", p)
	}
	if err := g.stop(t); err != nil { // stopping writes the batched log lines
		t.Fatal(err)
	}
	if !strings.Contains(g.Log.String(), "GOGC is set") {
		t.Errorf("serve did not say that GOGC overrides the floor; log:\n%s", g.Log.String())
	}
}
