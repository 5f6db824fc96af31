// Package redis holds what grokgate's replicas share through one Redis
// (GROKGATE_REDIS_URL): the limiter (Limiter) and the stream log of
// resumable generations (StreamLog, streamlog.go).
//
// The limiter: every replica pointed at the
// same Redis enforces one exact limit per key. Each
// decision is one Lua script, atomic in Redis and timed by Redis's own clock,
// so replicas with skewed clocks still agree; the algorithm is the in-memory
// limiter's (package ratelimit): sliding window logs.
//
// A replica that dies holding stream slots cannot release them; each slot
// therefore expires SlotTTL after its last refresh, and a live replica
// refreshes its open slots every SlotTTL/3.
package redis

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/grokgate/grokgate"
	"github.com/grokgate/grokgate/ratelimit"
)

// DefaultSlotTTL is how long a stream slot outlives its replica.
const DefaultSlotTTL = 30 * time.Second

// Options configures a Limiter.
type Options struct {
	// Prefix starts every Redis key; "" means "grokgate:rl:". Replicas
	// sharing limits must share it.
	Prefix string
	// Window of the per-minute limits; 0 means a minute (tests shorten it).
	Window time.Duration
	// SlotTTL: see the package comment; 0 means DefaultSlotTTL.
	SlotTTL time.Duration
	// Offset shifts Redis's clock for this limiter; nil means none. Tests
	// use it to move time forward.
	Offset func() time.Duration
	// Refresh, when set, ticks the slot refresher instead of a ticker every
	// SlotTTL/3, so tests decide when refreshes happen. The refresher takes
	// one tick at a time: a send returns once the previous refresh is done.
	Refresh <-chan time.Time
	// Timeout bounds one call to Redis, so an unreachable Redis costs a
	// request at most this long before the failure policy decides; 0 means
	// a second.
	Timeout time.Duration
}

// Limiter is the Redis-backed limiter.
type Limiter struct {
	rdb                    *goredis.Client
	opt                    Options
	admit, settle, refresh *goredis.Script

	mu   sync.Mutex
	live map[string]string // request id -> slots key, for the refresher
	stop chan struct{}
	done chan struct{}
}

// ParseURL checks a redis:// or rediss:// URL without connecting.
func ParseURL(url string) error {
	_, err := goredis.ParseURL(url)
	return err
}

// New returns a limiter on the Redis at url (redis://[:password@]host:port/db
// or rediss:// for TLS). It does not connect yet: a Redis that is down at
// start is handled like one that goes down later. Close stops it.
func New(url string, opt Options) (*Limiter, error) {
	ro, err := goredis.ParseURL(url)
	if err != nil {
		return nil, errors.New("redis: the URL is not valid; write it like redis://HOST:6379/0")
	}
	if opt.Prefix == "" {
		opt.Prefix = "grokgate:rl:"
	}
	if opt.Window <= 0 {
		opt.Window = ratelimit.DefaultWindow
	}
	if opt.SlotTTL <= 0 {
		opt.SlotTTL = DefaultSlotTTL
	}
	if opt.Timeout <= 0 {
		opt.Timeout = time.Second
	}
	if opt.Offset == nil {
		opt.Offset = func() time.Duration { return 0 }
	}
	ro.DialTimeout, ro.ReadTimeout, ro.WriteTimeout = opt.Timeout, opt.Timeout, opt.Timeout
	ro.PoolTimeout = 2 * opt.Timeout
	// Retrying inside the client would multiply the wait; the failure
	// policy answers instead, and the next request tries again.
	ro.MaxRetries = -1
	ro.PoolSize = 64
	// Warm connections, so a burst does not begin with a storm of dials.
	ro.MinIdleConns = 8
	l := &Limiter{rdb: goredis.NewClient(ro), opt: opt,
		admit: goredis.NewScript(admitScript), settle: goredis.NewScript(settleScript), refresh: goredis.NewScript(refreshScript),
		live: map[string]string{}, stop: make(chan struct{}), done: make(chan struct{})}
	go l.refresher()
	return l, nil
}

// Ping checks that Redis answers.
func (l *Limiter) Ping(ctx context.Context) error { return l.rdb.Ping(ctx).Err() }

// Close stops refreshing slots and closes the connections. Slots still open
// expire after SlotTTL.
func (l *Limiter) Close() error {
	l.Abandon()
	return l.rdb.Close()
}

// Abandon stops refreshing slots as a crashed replica would.
func (l *Limiter) Abandon() {
	l.mu.Lock()
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
	l.mu.Unlock()
	<-l.done
}

func (l *Limiter) keys(key string) (reqs, toks, slots, budget string) {
	p := l.opt.Prefix + "{" + key + "}:" // one hash slot per key, for Redis Cluster
	return p + "r", p + "t", p + "s", p + "b"
}

func (l *Limiter) offset() int64 { return l.opt.Offset().Milliseconds() }

func ms(d time.Duration) int64 { return d.Milliseconds() }

// Admit decides one request in one atomic script.
func (l *Limiter) Admit(ctx context.Context, a grokgate.Admission) (grokgate.Verdict, error) {
	return l.decide(ctx, a, false)
}

// Check reports whether a request of a.Key would be refused by its
// requests-per-minute limit or a budget, taking nothing: the gateway asks
// before it reads a body, so a key over its limits costs no body read.
// Tokens and streams depend on the body and are left to Admit.
func (l *Limiter) Check(ctx context.Context, a grokgate.Admission) (grokgate.Verdict, error) {
	a.Tokens, a.Stream = 0, false
	a.Limits.TPM, a.Limits.MaxStreams = 0, 0
	return l.decide(ctx, a, true)
}

// decide runs the admission script; check makes it take nothing.
func (l *Limiter) decide(ctx context.Context, a grokgate.Admission, check bool) (grokgate.Verdict, error) {
	reqs, toks, slots, budget := l.keys(a.Key)
	lim := a.Limits
	need := ratelimit.Reservation(a.Tokens, lim.TPM)
	stream := "0"
	if a.Stream {
		stream = "1"
	}
	ctx, cancel := context.WithTimeout(ctx, l.opt.Timeout)
	defer cancel()
	res, err := l.admit.Run(ctx, l.rdb, []string{reqs, toks, slots, budget},
		a.ID, ms(l.opt.Window), lim.RPM, lim.TPM, need, stream, lim.MaxStreams,
		lim.BudgetTicksPerDay, lim.BudgetTicksPerMonth, ms(l.opt.SlotTTL), check, l.offset()).Slice()
	if err != nil {
		return grokgate.Verdict{}, fmt.Errorf("redis limiter: %w", err)
	}
	if len(res) != 7 {
		return grokgate.Verdict{}, fmt.Errorf("redis limiter: script answered %d values", len(res))
	}
	kind, _ := res[0].(string)
	n := make([]int64, 6)
	for i := range n {
		n[i], _ = res[i+1].(int64)
	}
	retry, nreq, used, rreset, treset, nowMS := n[0], n[1], n[2], n[3], n[4], n[5]
	v := grokgate.Verdict{Allowed: kind == ""}
	if lim.RPM > 0 {
		v.RequestsRemaining = max(lim.RPM-nreq, 0)
		v.RequestsReset = time.Duration(rreset) * time.Millisecond
	}
	if lim.TPM > 0 {
		v.TokensRemaining = max(lim.TPM-used, 0)
		v.TokensReset = time.Duration(treset) * time.Millisecond
	}
	now := time.UnixMilli(nowMS)
	switch kind {
	case "":
		if a.Stream && lim.MaxStreams > 0 {
			l.mu.Lock()
			l.live[a.ID] = slots
			l.mu.Unlock()
		}
		return v, nil
	case "budget_day":
		v.Refused, retry = grokgate.LimitBudget, ms(ratelimit.NextDay(now).Sub(now))
	case "budget_month":
		v.Refused, retry = grokgate.LimitBudget, ms(ratelimit.NextMonth(now).Sub(now))
	default:
		v.Refused = grokgate.LimitKind(kind)
	}
	v.RetryAfter = max(time.Duration(retry)*time.Millisecond, time.Millisecond)
	return v, nil
}

// Settle replaces the reservation by the real usage, frees the stream slot
// and adds the cost to the budgets, in one atomic script.
func (l *Limiter) Settle(ctx context.Context, a grokgate.Admission, s grokgate.Settlement) error {
	l.mu.Lock()
	delete(l.live, a.ID)
	l.mu.Unlock()
	_, toks, slots, budget := l.keys(a.Key)
	// The request has ended, however: settle even if its client is gone.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), l.opt.Timeout)
	defer cancel()
	err := l.settle.Run(ctx, l.rdb, []string{toks, slots, budget},
		a.ID, ratelimit.Reservation(a.Tokens, a.Limits.TPM), max(s.Tokens, 0), a.Limits.TPM, ms(l.opt.Window),
		max(s.CostTicks, 0), l.offset()).Err()
	if err != nil {
		return fmt.Errorf("redis limiter: %w", err)
	}
	return nil
}

// refresher keeps this replica's open slots alive.
func (l *Limiter) refresher() {
	defer close(l.done)
	tick := l.opt.Refresh
	if tick == nil {
		t := time.NewTicker(l.opt.SlotTTL / 3)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-l.stop:
			return
		case <-tick:
		}
		l.mu.Lock()
		live := make(map[string]string, len(l.live))
		for id, key := range l.live {
			live[id] = key
		}
		l.mu.Unlock()
		if len(live) == 0 {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), l.opt.Timeout)
		pipe := l.rdb.Pipeline()
		for id, key := range live {
			l.refresh.Eval(ctx, pipe, []string{key}, id, ms(l.opt.SlotTTL), l.offset())
		}
		// EVAL, not EVALSHA: a pipeline cannot fall back on NOSCRIPT. A
		// failure is retried at the next tick, well within the TTL.
		pipe.Exec(ctx)
		cancel()
	}
}
