package ratelimit_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/grokgate/grokgate"
	"github.com/grokgate/grokgate/ratelimit"
	"github.com/grokgate/grokgate/ratelimittest"
)

// clock is a test clock that only moves when told.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func TestConformance(t *testing.T) {
	ratelimittest.Run(t, func(t *testing.T) ratelimittest.Env {
		c := &clock{t: time.Date(2026, 11, 3, 22, 30, 0, 0, time.UTC)}
		return ratelimittest.Env{L: ratelimit.New(c.now, 0), Advance: c.advance, Window: ratelimit.DefaultWindow}
	})
}

type ledger struct {
	day, month int64
	err        error
	calls      int
}

func (l *ledger) Spent(_ context.Context, _ string, _, _ time.Time) (int64, int64, error) {
	l.calls++
	return l.day, l.month, l.err
}

// TestBudgetFromLedger: a limiter that starts (grokgate restarted) takes
// each key's spending of the day and month from the ledger the first time
// the key comes with a budget, once; a ledger that fails is an error, so
// the failure policy decides.
func TestBudgetFromLedger(t *testing.T) {
	c := &clock{t: time.Date(2026, 11, 3, 22, 30, 0, 0, time.UTC)}
	led := &ledger{day: 900, month: 4000}
	l := ratelimit.New(c.now, 0).WithLedger(led)
	ctx := context.Background()
	day := grokgate.Limits{BudgetTicksPerDay: 1000}
	admit := func(lim grokgate.Limits) grokgate.Verdict {
		t.Helper()
		v, err := l.Admit(ctx, grokgate.Admission{Key: "k", ID: "r", Limits: lim})
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	if v := admit(grokgate.Limits{RPM: 10}); !v.Allowed || led.calls != 0 {
		t.Fatalf("a key without a budget: %+v, %d ledger calls", v, led.calls)
	}
	if v := admit(day); !v.Allowed {
		t.Fatalf("900 of 1000 spent: %+v", v)
	}
	l.Settle(ctx, grokgate.Admission{Key: "k", ID: "r", Limits: day}, grokgate.Settlement{CostTicks: 100})
	if v := admit(day); v.Allowed || v.Refused != grokgate.LimitBudget {
		t.Fatalf("1000 of 1000 spent: %+v", v)
	}
	if v := admit(grokgate.Limits{BudgetTicksPerMonth: 4100}); v.Allowed {
		t.Fatalf("4100 of 4100 spent this month: %+v", v)
	}
	if led.calls != 1 {
		t.Fatalf("the ledger was asked %d times, want once", led.calls)
	}
	failing := ratelimit.New(c.now, 0).WithLedger(&ledger{err: errors.New("database down")})
	if _, err := failing.Admit(ctx, grokgate.Admission{Key: "k", ID: "r", Limits: day}); err == nil {
		t.Fatal("no error with the ledger failing")
	}
}
