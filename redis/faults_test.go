package redis_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/grokgate/grokgate"
	"github.com/grokgate/grokgate/internal/faultproxy"
	"github.com/grokgate/grokgate/internal/redistest"
	"github.com/grokgate/grokgate/redis"
)

// testClock is a clock that moves only when told, for the breaker.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *testClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// states records the breaker's state changes.
type states struct {
	mu  sync.Mutex
	got []string
}

func (s *states) LimiterBreaker(state string) {
	s.mu.Lock()
	s.got = append(s.got, state)
	s.mu.Unlock()
}
func (s *states) String() string { s.mu.Lock(); defer s.mu.Unlock(); return strings.Join(s.got, ",") }

// ledger is a usage ledger in memory.
type ledger struct {
	mu    sync.Mutex
	spent map[string]int64
	calls atomic.Int64
	err   error
}

func (l *ledger) Spent(_ context.Context, key string, _, _ time.Time) (int64, int64, error) {
	l.calls.Add(1)
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.spent[key], l.spent[key], l.err
}

func (l *ledger) add(key string, cost int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.spent[key] += cost
}

type faultEnv struct {
	proxy *faultproxy.Proxy
	l     *redis.Limiter
	clock *testClock
	obs   *states
	tick  chan time.Time
}

// openThroughProxy opens a limiter on Redis through a fault proxy, with a
// test clock for the breaker and a refresher that runs when ticked.
func openThroughProxy(t *testing.T, url string, opt redis.Options) faultEnv {
	t.Helper()
	target := strings.TrimSuffix(strings.TrimPrefix(url, "redis://"), "/0")
	e := faultEnv{proxy: faultproxy.Start(t, target), clock: &testClock{t: time.Unix(1_800_000_000, 0)}, obs: &states{},
		tick: make(chan time.Time)}
	if opt.Prefix == "" {
		opt.Prefix = redistest.Prefix()
	}
	if opt.Timeout == 0 {
		opt.Timeout = 300 * time.Millisecond
	}
	opt.Now, opt.Observer, opt.Refresh = e.clock.now, e.obs, e.tick
	l, err := redis.New("redis://"+e.proxy.Addr()+"/0", opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	e.l = l
	return e
}

// refresh runs one refresher round and waits until it is done.
func (e faultEnv) refresh() { e.tick <- time.Time{}; e.tick <- time.Time{} }

// waitState polls the breaker until it is in state.
func waitState(t *testing.T, l *redis.Limiter, state string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for l.BreakerState() != state {
		if time.Now().After(deadline) {
			t.Fatalf("breaker %s, want %s", l.BreakerState(), state)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestBreakerOutage: whether Redis refuses connections or hangs, the breaker
// opens after three failed calls; from then on calls fail at once with
// ErrOpen without reaching Redis, until a probe after the pause finds it
// answering again.
func TestBreakerOutage(t *testing.T) {
	url := redistest.URL(t)
	for _, mode := range []faultproxy.Mode{faultproxy.Refuse, faultproxy.Hang} {
		name := map[faultproxy.Mode]string{faultproxy.Refuse: "refuse", faultproxy.Hang: "hang"}[mode]
		t.Run(name, func(t *testing.T) {
			e := openThroughProxy(t, url, redis.Options{})
			ctx := context.Background()
			lim := grokgate.Limits{RPM: 1000}
			ask := func(i int) (grokgate.Verdict, error) {
				return e.l.Admit(ctx, grokgate.Admission{Key: "k", ID: "r" + string(rune('a'+i%26)), Limits: lim})
			}
			if v, err := ask(0); err != nil || !v.Allowed {
				t.Fatal(v, err)
			}
			if err := e.proxy.Set(mode); err != nil {
				t.Fatal(err)
			}
			for i := range 3 {
				if _, err := ask(i); err == nil || errors.Is(err, redis.ErrOpen) {
					t.Fatalf("call %d during the outage: %v, want Redis's failure", i, err)
				}
			}
			if got := e.l.BreakerState(); got != redis.StateOpen {
				t.Fatalf("after 3 failures the breaker is %s", got)
			}
			// Open: 1,000 calls, none reaches Redis. (Generous bound: each
			// call costs microseconds; one reaching Redis would cost the
			// 300 ms timeout or a refused dial.)
			conns := e.proxy.Conns()
			start := time.Now()
			for i := range 1000 {
				if _, err := ask(i); !errors.Is(err, redis.ErrOpen) {
					t.Fatalf("call %d with the breaker open: %v, want ErrOpen", i, err)
				}
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Fatalf("1,000 calls with the breaker open took %v", d)
			}
			if mode == faultproxy.Hang && e.proxy.Conns() > conns {
				t.Fatalf("calls with the breaker open opened connections: %d, then %d", conns, e.proxy.Conns())
			}
			// The pause passes while Redis still fails: the probe fails
			// and the breaker opens again.
			e.clock.advance(time.Second)
			if _, err := ask(0); !errors.Is(err, redis.ErrOpen) {
				t.Fatalf("call while probing: %v", err)
			}
			waitState(t, e.l, redis.StateOpen)
			// Redis is back; after the (doubled) pause a probe closes it.
			if err := e.proxy.Set(faultproxy.Pass); err != nil {
				t.Fatal(err)
			}
			e.clock.advance(500 * time.Millisecond)
			if _, err := ask(0); !errors.Is(err, redis.ErrOpen) {
				t.Fatalf("call before the doubled pause ended: %v, want ErrOpen", err)
			}
			e.clock.advance(time.Second)
			ask(0) // starts the probe
			waitState(t, e.l, redis.StateClosed)
			if v, err := ask(1); err != nil || !v.Allowed {
				t.Fatalf("after recovery: %+v %v", v, err)
			}
			if got, want := e.obs.String(), "closed,open,half_open,open,half_open,closed"; got != want {
				t.Fatalf("states told to the observer: %s, want %s", got, want)
			}
		})
	}
}

// TestSlotReleasedAfterHang: a stream that ends while Redis hangs cannot
// free its slot then; the release is retried when the refresher next runs
// with Redis answering, so the slot is free long before it would expire.
func TestSlotReleasedAfterHang(t *testing.T) {
	url := redistest.URL(t)
	e := openThroughProxy(t, url, redis.Options{SlotTTL: time.Hour})
	ctx := context.Background()
	lim := grokgate.Limits{MaxStreams: 1, BudgetTicksPerDay: 1000}
	a := grokgate.Admission{Key: "k", ID: "s1", Limits: lim, Stream: true, Cost: 1000}
	if v, err := e.l.Admit(ctx, a); err != nil || !v.Allowed {
		t.Fatal(v, err)
	}
	e.proxy.Set(faultproxy.Hang)
	if err := e.l.Settle(ctx, a, grokgate.Settlement{CostTicks: 10}); err == nil {
		t.Fatal("settled through a hanging Redis")
	}
	if e.l.Pending() != 1 {
		t.Fatalf("%d releases pending, want 1", e.l.Pending())
	}
	e.refresh() // Redis still hangs: the release stays pending
	if e.l.Pending() != 1 {
		t.Fatalf("%d releases pending after a failed retry, want 1", e.l.Pending())
	}
	e.proxy.Set(faultproxy.Pass)
	waitState(t, e.l, redis.StateClosed)
	e.refresh()
	if e.l.Pending() != 0 {
		t.Fatalf("%d releases pending after Redis came back", e.l.Pending())
	}
	// The slot and the budget reservation are free (the hour-long TTL has
	// not passed).
	b := grokgate.Admission{Key: "k", ID: "s2", Limits: lim, Stream: true, Cost: 10}
	if v, err := e.l.Admit(ctx, b); err != nil || !v.Allowed {
		t.Fatalf("after the retried release: %+v %v", v, err)
	}
}

// TestBudgetRebuiltAfterFlush: a budget spent, then Redis flushed (FLUSHALL
// on a Redis of the test's own): the next admission rebuilds the key's
// budget from the ledger and is refused.
func TestBudgetRebuiltAfterFlush(t *testing.T) {
	url := redistest.Private(t)
	led := &ledger{spent: map[string]int64{}}
	l, err := redis.New(url, redis.Options{Ledger: led})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ctx := context.Background()
	lim := grokgate.Limits{BudgetTicksPerDay: 50_000}
	a := grokgate.Admission{Key: "k", ID: "r1", Limits: lim, Cost: 40_000}
	if v, err := l.Admit(ctx, a); err != nil || !v.Allowed {
		t.Fatal(v, err)
	}
	if led.calls.Load() != 1 {
		t.Fatalf("the first admission of a key asked the ledger %d times, want 1", led.calls.Load())
	}
	l.Settle(ctx, a, grokgate.Settlement{CostTicks: 50_000})
	led.add("k", 50_000) // the request's record
	refused := func(what string) {
		t.Helper()
		v, err := l.Admit(ctx, grokgate.Admission{Key: "k", ID: "r2", Limits: lim, Cost: 1})
		if err != nil || v.Allowed || v.Refused != grokgate.LimitBudget {
			t.Fatalf("%s: %+v %v; want refused for budget", what, v, err)
		}
	}
	refused("budget spent")
	if led.calls.Load() != 1 {
		t.Fatalf("admissions with the state in Redis asked the ledger (%d calls)", led.calls.Load())
	}
	rdb := goredis.NewClient(mustParse(t, url))
	defer rdb.Close()
	if err := rdb.FlushAll(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	refused("after FLUSHALL")
	if led.calls.Load() != 2 {
		t.Fatalf("the ledger was asked %d times, want 2", led.calls.Load())
	}
	// A ledger that fails is the limiter's failure: the policy decides.
	rdb.FlushAll(ctx)
	led.err = errors.New("database down")
	if _, err := l.Admit(ctx, grokgate.Admission{Key: "k", ID: "r3", Limits: lim}); err == nil {
		t.Fatal("admitted with neither the budget state nor the ledger")
	}
}

// TestBudgetCaughtUpAfterOutage: a request settles while Redis refuses
// connections, so Redis never counts its cost; once Redis is back, the
// key's budget is brought up to the ledger before its next admission.
func TestBudgetCaughtUpAfterOutage(t *testing.T) {
	url := redistest.URL(t)
	led := &ledger{spent: map[string]int64{}}
	e := openThroughProxy(t, url, redis.Options{Ledger: led})
	ctx := context.Background()
	lim := grokgate.Limits{BudgetTicksPerDay: 1000}
	a := grokgate.Admission{Key: "k", ID: "r1", Limits: lim, Cost: 100}
	if v, err := e.l.Admit(ctx, a); err != nil || !v.Allowed {
		t.Fatal(v, err)
	}
	e.proxy.Set(faultproxy.Refuse)
	if err := e.l.Settle(ctx, a, grokgate.Settlement{CostTicks: 5000}); err == nil {
		t.Fatal("settled with Redis refusing connections")
	}
	led.add("k", 5000)
	e.proxy.Set(faultproxy.Pass)
	v, err := e.l.Admit(ctx, grokgate.Admission{Key: "k", ID: "r2", Limits: lim})
	if err != nil || v.Allowed || v.Refused != grokgate.LimitBudget {
		t.Fatalf("after the outage: %+v %v; want refused for budget (5000 of 1000 in the ledger)", v, err)
	}
}

func mustParse(t *testing.T, url string) *goredis.Options {
	o, err := goredis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// TestCutConnections: connections cut under the limiter (a reset network
// path) cost at most the calls that were on them; the next calls dial again
// and the breaker stays closed.
func TestCutConnections(t *testing.T) {
	e := openThroughProxy(t, redistest.URL(t), redis.Options{})
	ctx := context.Background()
	lim := grokgate.Limits{RPM: 1000}
	for round := range 5 {
		e.proxy.Cut()
		var failed int
		for i := range 10 {
			if _, err := e.l.Admit(ctx, grokgate.Admission{Key: "k", ID: "c" + string(rune('a'+round)) + string(rune('a'+i)), Limits: lim}); err != nil {
				failed++
			}
		}
		if failed > 2 {
			t.Fatalf("round %d: %d of 10 calls failed after a cut", round, failed)
		}
		if s := e.l.BreakerState(); s != redis.StateClosed {
			t.Fatalf("round %d: breaker %s after a cut", round, s)
		}
	}
}
