// Package redis holds what grokgate's replicas share through one Redis
// (GROKGATE_REDIS_URL): the limiter (Limiter) and the stream log of
// resumable generations (StreamLog, streamlog.go).
//
// The limiter: every replica pointed at the
// same Redis enforces one exact limit per key. Each
// decision is one Lua script, atomic in Redis and timed by Redis's own clock,
// so replicas with skewed clocks still agree; the algorithm is the in-memory
// limiter's (package ratelimit): sliding window logs, with running totals so
// that no decision reads a whole window, and budget reservations.
//
// A replica that dies cannot release its requests' stream slots and budget
// reservations; each therefore expires SlotTTL after its last refresh, and
// a live replica refreshes those of its requests in flight every SlotTTL/3.
//
// A circuit breaker keeps calls away from a Redis that fails (see breaker);
// the gateway's failure policy answers meanwhile. What could not be written
// while Redis failed is made good when it answers: releases of stream slots
// and reservations are retried, and the budget state of a key whose
// settlement was lost is brought up to the ledger (Ledger) before its next
// admission. The same happens to a budget state that is missing, as after a
// restart without persistence or a FLUSHALL.
package redis

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/grokgate/grokgate"
	"github.com/grokgate/grokgate/ratelimit"
)

// DefaultSlotTTL is how long a stream slot or budget reservation outlives
// its replica: a replica that dies frees them within this time.
const DefaultSlotTTL = 8 * time.Second

// Ledger tells what a key spent, from the usage ledger: the sum of its
// records' cost_in_usd_ticks from dayStart and from monthStart (the UTC day
// and month the budgets count). package sqlite and package postgres
// implement it.
type Ledger interface {
	Spent(ctx context.Context, keyID string, dayStart, monthStart time.Time) (day, month int64, err error)
}

// Observer is told when the circuit breaker changes state (StateClosed,
// StateOpen, StateHalfOpen); package metrics implements it.
type Observer interface {
	LimiterBreaker(state string)
}

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
	// Refresh, when set, ticks the refresher instead of a ticker every
	// SlotTTL/3, so tests decide when refreshes happen. The refresher takes
	// one tick at a time: a send returns once the previous refresh is done.
	Refresh <-chan time.Time
	// Timeout bounds one call to Redis, so an unreachable Redis costs a
	// request at most this long before the failure policy decides; 0 means
	// a second.
	Timeout time.Duration
	// Ledger rebuilds missing budget states; nil starts them from zero.
	Ledger Ledger
	// LedgerTimeout bounds one Ledger call; 0 means 3 seconds.
	LedgerTimeout time.Duration
	// BreakerThreshold is how many failed calls in a row open the circuit
	// breaker; 0 means 3.
	BreakerThreshold int
	// BreakerPause is how long the breaker first stays open before it
	// probes Redis (doubling while probes fail, up to 5 s); 0 means 500 ms.
	BreakerPause time.Duration
	// Now is the clock of the breaker; nil means time.Now.
	Now func() time.Time
	// Log says when the breaker opens and closes; nil discards.
	Log *slog.Logger
	// Observer, when set, is told of the breaker's state changes.
	Observer Observer
}

// maxPending bounds the releases waiting for Redis to answer again; past it
// the slots and reservations are left to expire (SlotTTL).
const maxPending = 10_000

// Limiter is the Redis-backed limiter.
type Limiter struct {
	rdb                           *goredis.Client
	opt                           Options
	admit, settle, refresh, merge *goredis.Script
	br                            *breaker

	mu sync.Mutex
	// live holds the leases of this replica's requests in flight, for the
	// refresher.
	live map[string]lease
	// pending are settlements Redis did not take, retried by the
	// refresher.
	pending []pendingRelease
	// retrying counts the releases the refresher has taken from pending
	// and not yet finished.
	retrying int
	// stale names the keys whose budget state missed a settlement: it is
	// merged with the ledger before their next admission.
	stale map[string]struct{}
	stop  chan struct{}
	done  chan struct{}
}

// lease is what a request in flight holds in Redis beyond its window
// entries: a stream slot and a budget reservation.
type lease struct {
	key    string
	slot   bool
	member string // the budget reservation ("id:cost"), "" for none
}

type pendingRelease struct {
	a  grokgate.Admission
	at time.Time
}

// ParseURL checks a redis:// or rediss:// URL without connecting.
func ParseURL(url string) error {
	_, err := goredis.ParseURL(url)
	return err
}

// noMaintNotifications turns off go-redis's cluster maintenance
// notifications: a single Redis has none to send, and in the default
// ("auto") mode the failed handshake on each new connection costs a round
// trip and rewrites the options the connections share, a data race when
// connections open concurrently.
func noMaintNotifications() *maintnotifications.Config {
	return &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
}

// New returns a limiter on the Redis at url (redis://[:password@]host:port/db
// or rediss:// for TLS). It does not connect yet: a Redis that is down at
// start is handled like one that goes down later. Close stops it.
func New(url string, opt Options) (*Limiter, error) {
	ro, err := goredis.ParseURL(url)
	if err != nil {
		return nil, errors.New("redis: the URL is not valid; write it like redis://HOST:6379/0")
	}
	ro.MaintNotificationsConfig = noMaintNotifications()
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
	if opt.LedgerTimeout <= 0 {
		opt.LedgerTimeout = 3 * time.Second
	}
	if opt.Offset == nil {
		opt.Offset = func() time.Duration { return 0 }
	}
	if opt.BreakerThreshold <= 0 {
		opt.BreakerThreshold = 3
	}
	if opt.BreakerPause <= 0 {
		opt.BreakerPause = 500 * time.Millisecond
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Log == nil {
		opt.Log = slog.New(slog.DiscardHandler)
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
		admit: goredis.NewScript(admitScript), settle: goredis.NewScript(settleScript),
		refresh: goredis.NewScript(refreshScript), merge: goredis.NewScript(mergeScript),
		live: map[string]lease{}, stale: map[string]struct{}{}, stop: make(chan struct{}), done: make(chan struct{})}
	l.br = newBreaker(opt.Now, opt.BreakerThreshold, opt.BreakerPause, max(5*time.Second, opt.BreakerPause), l.breakerChanged)
	if opt.Observer != nil {
		opt.Observer.LimiterBreaker(StateClosed)
	}
	go l.refresher()
	return l, nil
}

func (l *Limiter) breakerChanged(state string, err error) {
	switch state {
	case StateOpen:
		l.opt.Log.Warn("Redis is failing: limiter calls fail at once (GROKGATE_RATELIMIT_ON_ERROR decides) until a probe finds it answering",
			"breaker", state, "err", err)
	case StateClosed:
		l.opt.Log.Info("Redis answers again: limiter calls go to Redis", "breaker", state)
	}
	if l.opt.Observer != nil {
		l.opt.Observer.LimiterBreaker(state)
	}
}

// BreakerState is the circuit breaker's state: StateClosed, StateOpen or
// StateHalfOpen.
func (l *Limiter) BreakerState() string { return l.br.State() }

// Ping checks that Redis answers.
func (l *Limiter) Ping(ctx context.Context) error { return l.rdb.Ping(ctx).Err() }

// Close stops refreshing and closes the connections. Slots and
// reservations still held expire after SlotTTL.
func (l *Limiter) Close() error {
	l.Abandon()
	return l.rdb.Close()
}

// Abandon stops refreshing as a crashed replica would.
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

// call runs one Redis call through the circuit breaker, with the timeout.
func (l *Limiter) call(ctx context.Context, fn func(ctx context.Context) error) error {
	ok, probe := l.br.allow()
	if probe {
		go l.probe()
	}
	if !ok {
		return ErrOpen
	}
	cctx, cancel := context.WithTimeout(ctx, l.opt.Timeout)
	defer cancel()
	err := fn(cctx)
	l.br.done(err != nil && ctx.Err() == nil && !isReply(err), err)
	return err
}

// isReply reports an error Redis answered with (a script's error): Redis is
// there, so it is no reason to stop calling it.
func isReply(err error) bool {
	var re goredis.Error
	return errors.As(err, &re) && !errors.Is(err, goredis.ErrClosed)
}

func (l *Limiter) probe() {
	ctx, cancel := context.WithTimeout(context.Background(), l.opt.Timeout)
	defer cancel()
	l.br.probed(l.rdb.Ping(ctx).Err())
}

func (l *Limiter) keys(key string) (reqs, toks, tsum, slots, budget, bq string) {
	p := l.opt.Prefix + "{" + key + "}:" // one hash slot per key, for Redis Cluster
	return p + "r", p + "t", p + "ts", p + "s", p + "b", p + "bq"
}

func (l *Limiter) offset() int64 { return l.opt.Offset().Milliseconds() }

func ms(d time.Duration) int64 { return d.Milliseconds() }

func flag(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// Admit decides one request in one atomic script.
func (l *Limiter) Admit(ctx context.Context, a grokgate.Admission) (grokgate.Verdict, error) {
	return l.decide(ctx, a, false)
}

// Check reports whether a request of a.Key would be refused by its
// requests-per-minute limit or a budget, taking nothing: the gateway asks
// before it reads a body, so a key over its limits costs no body read.
// Tokens and streams depend on the body and are left to Admit.
func (l *Limiter) Check(ctx context.Context, a grokgate.Admission) (grokgate.Verdict, error) {
	a.Tokens, a.Stream, a.Cost = 0, false, 0
	a.Limits.TPM, a.Limits.MaxStreams = 0, 0
	return l.decide(ctx, a, true)
}

func budgeted(lim grokgate.Limits) bool {
	return lim.BudgetTicksPerDay > 0 || lim.BudgetTicksPerMonth > 0
}

// decide runs the admission script; check makes it take nothing. When the
// script finds the key's budget state missing, or this replica knows it
// missed a settlement, the state is rebuilt from the ledger and the script
// runs again.
func (l *Limiter) decide(ctx context.Context, a grokgate.Admission, check bool) (grokgate.Verdict, error) {
	reqs, toks, tsum, slots, budget, bq := l.keys(a.Key)
	lim := a.Limits
	need := ratelimit.Reservation(a.Tokens, lim.TPM)
	cost := ratelimit.CostReservation(a.Cost, lim)
	rebuild := budgeted(lim) && l.isStale(a.Key)
	var res []any
	for attempt := 0; ; attempt++ {
		err := l.call(ctx, func(ctx context.Context) error {
			var err error
			res, err = l.admit.Run(ctx, l.rdb, []string{reqs, toks, tsum, slots, budget, bq},
				a.ID, ms(l.opt.Window), lim.RPM, lim.TPM, need, flag(a.Stream), lim.MaxStreams,
				lim.BudgetTicksPerDay, lim.BudgetTicksPerMonth, ms(l.opt.SlotTTL), flag(check), cost,
				flag(rebuild), l.offset()).Slice()
			return err
		})
		if err != nil {
			l.markStale(a.Key, budgeted(lim))
			return grokgate.Verdict{}, fmt.Errorf("redis limiter: %w", err)
		}
		if len(res) != 7 {
			return grokgate.Verdict{}, fmt.Errorf("redis limiter: script answered %d values", len(res))
		}
		if kind, _ := res[0].(string); kind != "rebuild" {
			break
		}
		if attempt > 0 {
			return grokgate.Verdict{}, errors.New("redis limiter: the budget state vanished again while it was rebuilt")
		}
		nowMS, _ := res[6].(int64)
		if err := l.rebuild(ctx, a.Key, time.UnixMilli(nowMS)); err != nil {
			return grokgate.Verdict{}, fmt.Errorf("redis limiter: rebuilding the budget of key %s from the ledger: %w", a.Key, err)
		}
		rebuild = false
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
		if !check && ((a.Stream && lim.MaxStreams > 0) || cost > 0) {
			ls := lease{key: a.Key, slot: a.Stream && lim.MaxStreams > 0}
			if cost > 0 {
				ls.member = fmt.Sprintf("%s:%d", a.ID, cost)
			}
			l.mu.Lock()
			l.live[a.ID] = ls
			l.mu.Unlock()
		}
		return v, nil
	case "budget_day":
		v.Refused, retry = grokgate.LimitBudget, ms(ratelimit.NextDay(now).Sub(now))
	case "budget_month":
		v.Refused, retry = grokgate.LimitBudget, ms(ratelimit.NextMonth(now).Sub(now))
	case "budget_reserved":
		v.Refused, retry = grokgate.LimitBudget, ms(ratelimit.ReservationRetry)
	default:
		v.Refused = grokgate.LimitKind(kind)
	}
	v.RetryAfter = max(time.Duration(retry)*time.Millisecond, time.Millisecond)
	return v, nil
}

// rebuild brings key's budget state in Redis up to the ledger's figures for
// now's day and month.
func (l *Limiter) rebuild(ctx context.Context, key string, now time.Time) error {
	var day, month int64
	if l.opt.Ledger != nil {
		lctx, cancel := context.WithTimeout(ctx, l.opt.LedgerTimeout)
		var err error
		day, month, err = l.opt.Ledger.Spent(lctx, key, ratelimit.DayStart(now), ratelimit.MonthStart(now))
		cancel()
		if err != nil {
			return err
		}
	}
	_, _, _, _, budget, bq := l.keys(key)
	err := l.call(ctx, func(ctx context.Context) error {
		return l.merge.Run(ctx, l.rdb, []string{budget, bq},
			ratelimit.DayNumber(now), day, ratelimit.MonthNumber(now), month, l.offset()).Err()
	})
	if err != nil {
		return err
	}
	l.mu.Lock()
	delete(l.stale, key)
	l.mu.Unlock()
	l.opt.Log.Info("budget state rebuilt from the usage ledger", "key_id", key, "day_spent", day, "month_spent", month)
	return nil
}

func (l *Limiter) isStale(key string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	_, ok := l.stale[key]
	return ok
}

// markStale notes that key's budget state may lack a cost: a settlement, or
// an admission the failure policy let through, did not reach Redis.
func (l *Limiter) markStale(key string, budget bool) {
	if !budget {
		return
	}
	l.mu.Lock()
	// Bounded like the pending releases; past it the ledger catches up
	// only when a state goes missing.
	if len(l.stale) < maxPending {
		l.stale[key] = struct{}{}
	}
	l.mu.Unlock()
}

// Settle replaces the reservations by the real usage, frees the stream slot
// and adds the cost to the budgets, in one atomic script. When Redis does
// not take it, the release of what the request held is retried once Redis
// answers, and the key's budget is brought up to the ledger before its next
// admission.
func (l *Limiter) Settle(ctx context.Context, a grokgate.Admission, s grokgate.Settlement) error {
	l.mu.Lock()
	ls, held := l.live[a.ID]
	delete(l.live, a.ID)
	l.mu.Unlock()
	// The request has ended, however: settle even if its client is gone.
	err := l.runSettle(context.WithoutCancel(ctx), a, max(s.Tokens, 0), max(s.CostTicks, 0))
	if err == nil {
		return nil
	}
	l.markStale(a.Key, budgeted(a.Limits) || s.CostTicks > 0)
	if held && (ls.slot || ls.member != "") {
		l.mu.Lock()
		if len(l.pending) < maxPending {
			l.pending = append(l.pending, pendingRelease{a: a, at: l.opt.Now()})
		}
		l.mu.Unlock()
	}
	return fmt.Errorf("redis limiter: %w", err)
}

func (l *Limiter) runSettle(ctx context.Context, a grokgate.Admission, tokens, cost int64) error {
	_, toks, tsum, slots, budget, bq := l.keys(a.Key)
	return l.call(ctx, func(ctx context.Context) error {
		return l.settle.Run(ctx, l.rdb, []string{toks, tsum, slots, budget, bq},
			a.ID, ratelimit.Reservation(a.Tokens, a.Limits.TPM), tokens, a.Limits.TPM, ms(l.opt.Window),
			cost, ratelimit.CostReservation(a.Cost, a.Limits), l.offset()).Err()
	})
}

// Pending is the number of releases waiting for Redis to answer again.
func (l *Limiter) Pending() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.pending) + l.retrying
}

// refresher keeps this replica's slots and reservations alive and retries
// the releases Redis did not take.
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
		l.retryReleases()
		l.refreshLive()
	}
}

func (l *Limiter) refreshLive() {
	l.mu.Lock()
	live := make(map[string]lease, len(l.live))
	for id, ls := range l.live {
		live[id] = ls
	}
	l.mu.Unlock()
	if len(live) == 0 {
		return
	}
	// One pipeline, one breaker call: a failure is retried at the next
	// tick, well within the TTL.
	l.call(context.Background(), func(ctx context.Context) error {
		pipe := l.rdb.Pipeline()
		for id, ls := range live {
			_, _, _, slots, _, bq := l.keys(ls.key)
			// EVAL, not EVALSHA: a pipeline cannot fall back on NOSCRIPT.
			l.refresh.Eval(ctx, pipe, []string{slots, bq}, id, ms(l.opt.SlotTTL), ls.member, l.offset())
		}
		_, err := pipe.Exec(ctx)
		return err
	})
}

// retryReleases gives back, now that Redis may answer, what requests that
// ended while it failed still hold. Releases older than SlotTTL are
// dropped: what they held has expired.
func (l *Limiter) retryReleases() {
	l.mu.Lock()
	todo := l.pending
	l.pending = nil
	l.retrying = len(todo)
	l.mu.Unlock()
	cut := l.opt.Now().Add(-l.opt.SlotTTL)
	var left []pendingRelease
	for i, p := range todo {
		if p.at.Before(cut) {
			continue
		}
		if err := l.runSettle(context.Background(), p.a, 0, 0); err != nil {
			left = append(left, todo[i:]...)
			break
		}
	}
	l.mu.Lock()
	l.retrying = 0
	if len(left) > 0 {
		l.pending = append(left, l.pending...)
		if len(l.pending) > maxPending {
			l.pending = l.pending[:maxPending]
		}
	}
	l.mu.Unlock()
}
