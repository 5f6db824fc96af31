package gateway

import (
	"context"
	"errors"
	"testing"
	"time"
)

// waitCause waits for ctx to end and returns its cause.
func waitCause(t *testing.T, ctx context.Context) error {
	t.Helper()
	select {
	case <-ctx.Done():
		return context.Cause(ctx)
	case <-time.After(10 * time.Second):
		t.Fatal("the watchdog never fired")
		return nil
	}
}

func TestWatchdogCauses(t *testing.T) {
	const short, long = 20 * time.Millisecond, time.Hour
	for _, c := range []struct {
		name                   string
		firstByte, idle, total time.Duration
		events                 int
		want                   error
	}{
		{"no first byte in time", short, long, long, 0, errFirstByteTimeout},
		{"total shorter than the first-byte wait", long, long, short, 0, errTotal},
		{"silent after an event", long, short, long, 1, errIdle},
		{"events keep coming past the total", long, long, 3 * short, 3, errTotal},
	} {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithCancelCause(context.Background())
			defer cancel(nil)
			wd := newWatchdog(cancel, c.firstByte, c.idle, c.total)
			defer wd.stop()
			for range c.events {
				wd.event()
				time.Sleep(short / 4)
			}
			if got := waitCause(t, ctx); !errors.Is(got, c.want) {
				t.Errorf("cause %v, want %v", got, c.want)
			}
		})
	}
}

func TestWatchdogEventsPostponeTheIdleTimeout(t *testing.T) {
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	wd := newWatchdog(cancel, time.Hour, 300*time.Millisecond, time.Hour)
	defer wd.stop()
	// Twenty events 50 ms apart span a second, over three idle timeouts,
	// none of which is reached.
	for range 20 {
		wd.event()
		time.Sleep(50 * time.Millisecond)
		if ctx.Err() != nil {
			t.Fatalf("cancelled (%v) while events kept arriving", context.Cause(ctx))
		}
	}
	// Once they stop, the idle timeout still ends the exchange.
	if got := waitCause(t, ctx); !errors.Is(got, errIdle) {
		t.Errorf("cause %v after the events stopped, want %v", got, errIdle)
	}
}

func TestWatchdogStopped(t *testing.T) {
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	wd := newWatchdog(cancel, 10*time.Millisecond, time.Hour, time.Hour)
	wd.stop()
	time.Sleep(50 * time.Millisecond)
	if ctx.Err() != nil {
		t.Fatalf("a stopped watchdog cancelled the exchange: %v", context.Cause(ctx))
	}
}
