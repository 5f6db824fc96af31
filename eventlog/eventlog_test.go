package eventlog_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/grokgate/grokgate"
	"github.com/grokgate/grokgate/eventlog"
	"github.com/grokgate/grokgate/eventlogtest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// clock is a test clock that moves only when told.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func open(t *testing.T, b eventlogtest.Bounds) (*eventlog.Log, *clock) {
	c := &clock{now: time.Unix(1_800_000_000, 0)}
	l := eventlog.New(eventlog.Options{Now: c.Now, MaxStreamBytes: b.MaxStreamBytes, MaxBytes: b.MaxBytes, MaxStreams: b.MaxStreams})
	t.Cleanup(func() { l.Close() })
	return l, c
}

func TestConformance(t *testing.T) {
	eventlogtest.Run(t, func(t *testing.T, b eventlogtest.Bounds) eventlogtest.Env {
		l, c := open(t, b)
		return eventlogtest.Env{L: l, Retention: eventlog.DefaultRetention, Advance: c.Advance}
	})
}

// TestSweeperReleases: logs nobody touches again are dropped by the
// sweeper, and their bytes released.
func TestSweeperReleases(t *testing.T) {
	c := &clock{now: time.Unix(1_800_000_000, 0)}
	l := eventlog.New(eventlog.Options{Now: c.Now, Retention: time.Minute, SweepEvery: time.Millisecond})
	defer l.Close()
	ctx := context.Background()
	for i := range 3 {
		id := fmt.Sprint("s", i)
		if err := l.Create(ctx, id, grokgate.StreamMeta{}); err != nil {
			t.Fatal(err)
		}
		if _, err := l.Append(ctx, id, make([]byte, 1000)); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Finish(ctx, "s0", "completed"); err != nil {
		t.Fatal(err)
	}
	if n, b := l.Len(); n != 3 || b != 3000 {
		t.Fatalf("Len %d, %d", n, b)
	}
	c.Advance(59 * time.Second)
	if _, err := l.Renew(ctx, "s2"); err != nil {
		t.Fatal(err)
	}
	c.Advance(time.Second)
	// s0 (finished) and s1 (its runner gone) expire; s2 was renewed.
	deadline := time.Now().Add(10 * time.Second)
	for {
		n, b := l.Len()
		if n == 1 && b == 1000 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the sweeper left %d streams, %d bytes", n, b)
		}
		time.Sleep(time.Millisecond)
	}
	if _, err := l.State(ctx, "s2"); err != nil {
		t.Fatal(err)
	}
}

// TestCloseWakesReaders: Close returns every waiting Read, so a shutdown
// does not wait out their waits.
func TestCloseWakesReaders(t *testing.T) {
	l := eventlog.New(eventlog.Options{})
	ctx := context.Background()
	if err := l.Create(ctx, "s", grokgate.StreamMeta{}); err != nil {
		t.Fatal(err)
	}
	done := make(chan error)
	go func() {
		_, _, err := l.Read(ctx, "s", 0, 10, time.Hour)
		done <- err
	}()
	deadline := time.Now().Add(10 * time.Second)
	for st, _ := l.State(ctx, "s"); st.ReadSeen.IsZero(); st, _ = l.State(ctx, "s") {
		if time.Now().After(deadline) {
			t.Fatal("the reader never read")
		}
		time.Sleep(time.Millisecond)
	}
	l.Close()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not wake the reader")
	}
}

func BenchmarkLog(b *testing.B) {
	eventlogtest.Bench(b, func(b *testing.B) eventlogtest.Log {
		l := eventlog.New(eventlog.Options{MaxStreamBytes: 1 << 40, MaxBytes: 1 << 40})
		b.Cleanup(func() { l.Close() })
		return l
	}, nil)
}
