// Package ratelimit is grokgate's in-memory limiter, for a single replica:
// exact per-key request, token, stream and budget limits (docs/limits.md).
//
// The request and token windows are sliding window logs: every admission
// within the last window is remembered with its time, so a limit of N admits
// exactly N in any window, however the requests are spread or bunched (a
// fixed window would let 2N through across its edge, a token bucket lets a
// burst plus the refill through). Logs hold at most N requests per key, and
// one entry per request for tokens, so memory stays bounded by the limits.
//
// Keys are spread over shards, each with its own mutex, so requests of
// different keys do not contend; one key's requests take turns on its shard
// for the microsecond a decision takes, which is what makes them exact.
package ratelimit

import (
	"context"
	"fmt"
	"hash/maphash"
	"sync"
	"time"

	"github.com/grokgate/grokgate"
)

// DefaultWindow is the window of the per-minute limits.
const DefaultWindow = time.Minute

// ConcurrencyRetry is the Retry-After of a refused stream: when a slot frees
// is unknown, and streams usually last seconds.
const ConcurrencyRetry = time.Second

const shards = 64

// Limiter keeps every key's windows in memory. The zero value is not ready;
// use New.
type Limiter struct {
	now    func() time.Time
	window time.Duration
	seed   maphash.Seed
	shards [shards]shard
	ledger Ledger
}

// Ledger tells what a key spent, from the usage ledger: the sum of its
// records' cost_in_usd_ticks from dayStart and from monthStart. package
// sqlite and package postgres implement it.
type Ledger interface {
	Spent(ctx context.Context, keyID string, dayStart, monthStart time.Time) (day, month int64, err error)
}

// LedgerTimeout bounds one Ledger call.
const LedgerTimeout = 3 * time.Second

// WithLedger makes l start each key's budgets from what the ledger says it
// spent in the current day and month, the first time it meets the key with
// a budget, so a restart does not give keys their budgets back. Call it
// before l is used.
func (l *Limiter) WithLedger(led Ledger) *Limiter {
	l.ledger = led
	return l
}

type shard struct {
	mu   sync.Mutex
	keys map[string]*state
}

// state is one key's windows. reqs and toks are in time order: entries are
// appended at now, and the clock does not go back within a process (a
// wall-clock step back only makes entries live a little longer).
type state struct {
	reqs []time.Time
	toks []*tokEntry
	// used is the sum of toks' n, kept as entries come and go so a decision
	// costs the same with 10 entries in the window as with 100,000.
	used int64
	// reserved finds an unsettled reservation by request id without a scan.
	reserved map[string]*tokEntry
	streams  map[string]struct{}
	budget   Budget
	// costs holds the budget reservations of requests in flight by id.
	costs map[string]int64
	// loaded says budget holds the ledger's figures (or needs none).
	loaded bool
}

type tokEntry struct {
	at time.Time
	n  int64
}

// New returns an in-memory limiter on the clock now; window 0 means
// DefaultWindow (tests shorten it).
func New(now func() time.Time, window time.Duration) *Limiter {
	if window <= 0 {
		window = DefaultWindow
	}
	l := &Limiter{now: now, window: window, seed: maphash.MakeSeed()}
	for i := range l.shards {
		l.shards[i].keys = map[string]*state{}
	}
	return l
}

// lock locks key's shard and returns the key's state and the mutex to
// unlock (not a func: a method value allocates on every call).
func (l *Limiter) lock(key string) (*state, *sync.Mutex) {
	sh := &l.shards[maphash.String(l.seed, key)%shards]
	sh.mu.Lock()
	st := sh.keys[key]
	if st == nil {
		st = &state{streams: map[string]struct{}{}, reserved: map[string]*tokEntry{}, costs: map[string]int64{}}
		sh.keys[key] = st
	}
	return st, &sh.mu
}

// load reads a key's spending from the ledger the first time the key comes
// with a budget. The ledger is asked without the shard's lock; requests of
// the key arriving meanwhile may ask too, and the figures are merged as the
// larger of the ledger's and what was counted since.
func (l *Limiter) load(ctx context.Context, a grokgate.Admission) error {
	if l.ledger == nil || (a.Limits.BudgetTicksPerDay <= 0 && a.Limits.BudgetTicksPerMonth <= 0) {
		return nil
	}
	st, mu := l.lock(a.Key)
	loaded := st.loaded
	mu.Unlock()
	if loaded {
		return nil
	}
	now := l.now()
	ctx, cancel := context.WithTimeout(ctx, LedgerTimeout)
	day, month, err := l.ledger.Spent(ctx, a.Key, DayStart(now), MonthStart(now))
	cancel()
	if err != nil {
		return fmt.Errorf("reading key %s's spending from the usage ledger: %w", a.Key, err)
	}
	st, mu = l.lock(a.Key)
	defer mu.Unlock()
	if !st.loaded {
		st.budget.roll(now)
		st.budget.DaySpent = max(st.budget.DaySpent, day)
		st.budget.MonthSpent = max(st.budget.MonthSpent, month)
		st.loaded = true
	}
	return nil
}

// prune drops log entries older than the window.
func (st *state) prune(now time.Time, window time.Duration) {
	cut := now.Add(-window)
	i := 0
	for i < len(st.reqs) && !st.reqs[i].After(cut) {
		i++
	}
	st.reqs = st.reqs[i:]
	j := 0
	for j < len(st.toks) && !st.toks[j].at.After(cut) {
		st.used -= st.toks[j].n
		st.toks[j].n = 0 // an unsettled reservation leaving: Settle must not subtract it again
		st.toks[j] = nil
		j++
	}
	st.toks = st.toks[j:]
}

// Check reports whether a request of a.Key would be refused by its
// requests-per-minute limit or a budget, taking nothing: the gateway asks
// before it reads a body, so a key over its limits costs no body read.
// Tokens and streams depend on the body and are left to Admit.
func (l *Limiter) Check(ctx context.Context, a grokgate.Admission) (grokgate.Verdict, error) {
	if err := l.load(ctx, a); err != nil {
		return grokgate.Verdict{}, err
	}
	now := l.now()
	st, mu := l.lock(a.Key)
	defer mu.Unlock()
	st.prune(now, l.window)
	lim := a.Limits
	if lim.RPM > 0 && int64(len(st.reqs)) >= lim.RPM {
		v := refuse(grokgate.LimitRequests, st.reqs[0].Add(l.window).Sub(now))
		v.RequestsReset = st.reqs[len(st.reqs)-1].Add(l.window).Sub(now)
		return v, nil
	}
	if kind, wait, over := st.budget.Over(now, lim); over {
		return refuse(kind, wait), nil
	}
	return grokgate.Verdict{Allowed: true}, nil
}

// Admit decides one request; all its limits are checked before any is
// taken, so a refused request leaves no trace.
func (l *Limiter) Admit(ctx context.Context, a grokgate.Admission) (grokgate.Verdict, error) {
	if err := l.load(ctx, a); err != nil {
		return grokgate.Verdict{}, err
	}
	now := l.now()
	st, mu := l.lock(a.Key)
	defer mu.Unlock()
	st.prune(now, l.window)
	lim := a.Limits
	used := st.used
	need := Reservation(a.Tokens, lim.TPM)
	v := grokgate.Verdict{Allowed: true}
	switch {
	case lim.RPM > 0 && int64(len(st.reqs)) >= lim.RPM:
		v = refuse(grokgate.LimitRequests, st.reqs[0].Add(l.window).Sub(now))
	case lim.TPM > 0 && used+need > lim.TPM:
		v = refuse(grokgate.LimitTokens, tokenWait(st.toks, used+need-lim.TPM, now, l.window))
	case a.Stream && lim.MaxStreams > 0 && int64(len(st.streams)) >= lim.MaxStreams:
		v = refuse(grokgate.LimitConcurrency, ConcurrencyRetry)
	default:
		if kind, wait, over := st.budget.Over(now, lim); over {
			v = refuse(kind, wait)
		}
	}
	if v.Allowed {
		if lim.RPM > 0 {
			st.reqs = append(st.reqs, now)
		}
		if lim.TPM > 0 {
			e := &tokEntry{now, need}
			st.toks = append(st.toks, e)
			st.reserved[a.ID] = e
			st.used += need
			used += need
		}
		if a.Stream && lim.MaxStreams > 0 {
			st.streams[a.ID] = struct{}{}
		}
		if c := CostReservation(a.Cost, lim); c > 0 {
			st.costs[a.ID] = c
			st.budget.Reserved += c
		}
	}
	if n := len(st.reqs); lim.RPM > 0 {
		v.RequestsRemaining = max(lim.RPM-int64(n), 0)
		if n > 0 {
			v.RequestsReset = st.reqs[n-1].Add(l.window).Sub(now)
		}
	}
	if n := len(st.toks); lim.TPM > 0 {
		v.TokensRemaining = max(lim.TPM-used, 0)
		if n > 0 {
			v.TokensReset = st.toks[n-1].at.Add(l.window).Sub(now)
		}
	}
	return v, nil
}

// Settle replaces the request's token reservation by its real usage, counted
// from now (it was spent by now, and a window that began with the request
// may already have passed for a long stream), frees its stream slot and
// replaces its budget reservation by its real cost.
func (l *Limiter) Settle(_ context.Context, a grokgate.Admission, s grokgate.Settlement) error {
	now := l.now()
	st, mu := l.lock(a.Key)
	defer mu.Unlock()
	if e := st.reserved[a.ID]; e != nil {
		// The reservation stays in the log at its place but weighs nothing
		// (or drops out with the window first, if the request outlived it).
		st.used -= e.n
		e.n = 0
		delete(st.reserved, a.ID)
	}
	if a.Limits.TPM > 0 && s.Tokens > 0 {
		st.toks = append(st.toks, &tokEntry{now, s.Tokens})
		st.used += s.Tokens
	}
	delete(st.streams, a.ID)
	if c, ok := st.costs[a.ID]; ok {
		st.budget.Reserved -= c
		delete(st.costs, a.ID)
	}
	st.budget.Add(now, max(s.CostTicks, 0))
	return nil
}

func refuse(kind grokgate.LimitKind, wait time.Duration) grokgate.Verdict {
	return grokgate.Verdict{Refused: kind, RetryAfter: max(wait, time.Millisecond)}
}

// Reservation is what a request reserves against a tokens-per-minute limit:
// its worst case, but never more than the whole limit, so a request larger
// than the limit still runs once the window is empty instead of never.
func Reservation(worst, tpm int64) int64 {
	if tpm > 0 && worst > tpm {
		return tpm
	}
	return max(worst, 0)
}

// CostReservation is what a request reserves against its budgets: its
// worst-case cost, but never more than the larger budget, since a
// reservation of the whole budget already refuses every other request (and
// sums of reservations then cannot overflow).
func CostReservation(cost int64, lim grokgate.Limits) int64 {
	top := max(lim.BudgetTicksPerDay, lim.BudgetTicksPerMonth)
	if top <= 0 || cost <= 0 {
		return 0
	}
	return min(cost, top)
}

// WaitScan bounds how many of the oldest window entries a token refusal
// looks at to compute its Retry-After, so a refusal costs the same however
// many entries the window holds.
const WaitScan = 1024

// tokenWait is how long until free tokens have left the window: the time
// the oldest entries that together weigh free leave it. When more than
// WaitScan entries would be needed it answers when the WaitScan-th leaves,
// which is too early rather than too late: a retry then is refused again
// with a later time.
func tokenWait(toks []*tokEntry, free int64, now time.Time, window time.Duration) time.Duration {
	if len(toks) == 0 {
		return window
	}
	var e *tokEntry
	for i := 0; i < len(toks) && i < WaitScan; i++ {
		e = toks[i]
		if free -= e.n; free <= 0 {
			break
		}
	}
	return e.at.Add(window).Sub(now)
}
