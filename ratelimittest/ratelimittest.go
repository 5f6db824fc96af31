// Package ratelimittest is the conformance suite every grokgate limiter must
// pass, so the in-memory and the Redis limiter keep the same semantics:
// exact limits under concurrency, sliding windows, token reservation and
// settlement, stream slots, budgets.
package ratelimittest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/grokgate/grokgate"
)

// Limiter is what the suite exercises.
type Limiter interface {
	Admit(ctx context.Context, a grokgate.Admission) (grokgate.Verdict, error)
	Settle(ctx context.Context, a grokgate.Admission, s grokgate.Settlement) error
}

// Env is one test's limiter and its clock.
type Env struct {
	L Limiter
	// Replica returns another limiter sharing L's state, as another
	// grokgate replica would; nil when the limiter is process-local.
	Replica func() Limiter
	// Advance moves the limiter's clock forward.
	Advance func(time.Duration)
	// Window is the limiter's per-minute window (tests may shorten it).
	Window time.Duration
	// SlotTTL is how long a stream slot or a budget reservation outlives a
	// replica that stopped refreshing it; 0 when they die with the process.
	SlotTTL time.Duration
}

// Run runs the suite; open returns a fresh limiter for each test.
func Run(t *testing.T, open func(t *testing.T) Env) {
	for _, tc := range []struct {
		name string
		fn   func(t *testing.T, e Env)
	}{
		{"ExactRequestsUnder200Callers", testExactRequests},
		{"SlidingWindowReset", testReset},
		{"Headers", testHeaders},
		{"ExactTokensUnder200Callers", testExactTokens},
		{"TokenReservationAndSettlement", testTokens},
		{"ReservationCappedAtLimit", testReservationCap},
		{"StreamSlots", testStreams},
		{"StreamSlotExpiry", testSlotExpiry},
		{"Budget", testBudget},
		{"BudgetReservationsUnder50Callers", testBudgetConcurrent},
		{"BudgetReservationSettled", testBudgetReservation},
		{"BudgetReservationExpiry", testBudgetReservationExpiry},
		{"BudgetSettledWithoutReservation", testBudgetNoReservation},
		{"KeysIndependent", testKeysIndependent},
		{"Unlimited", testUnlimited},
		{"Check", testCheck},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, open(t)) })
	}
}

// ask is an admission with a fresh request id.
func ask(key string, lim grokgate.Limits, tokens int64, stream bool) grokgate.Admission {
	var b [8]byte
	rand.Read(b[:])
	return grokgate.Admission{Key: key, ID: "req_" + hex.EncodeToString(b[:]), Limits: lim, Tokens: tokens, Stream: stream}
}

func admit(t *testing.T, l Limiter, a grokgate.Admission) grokgate.Verdict {
	t.Helper()
	v, err := l.Admit(context.Background(), a)
	if err != nil {
		t.Fatalf("Admit: %v", err)
	}
	return v
}

func settle(t *testing.T, l Limiter, a grokgate.Admission, s grokgate.Settlement) {
	t.Helper()
	if err := l.Settle(context.Background(), a, s); err != nil {
		t.Fatalf("Settle: %v", err)
	}
}

// spend admits a request of key and settles it at cost.
func spend(t *testing.T, l Limiter, key string, lim grokgate.Limits, cost int64) {
	t.Helper()
	a := ask(key, lim, 0, false)
	admit(t, l, a)
	settle(t, l, a, grokgate.Settlement{CostTicks: cost})
}

// limiters returns L and, when the limiter is shared, a replica, so
// concurrent callers are spread over both.
func limiters(e Env) []Limiter {
	if e.Replica != nil {
		return []Limiter{e.L, e.Replica()}
	}
	return []Limiter{e.L}
}

// burst fires n admissions at once and returns the verdicts.
func burst(t *testing.T, e Env, n int, mk func() grokgate.Admission) ([]grokgate.Verdict, []grokgate.Admission) {
	t.Helper()
	ls := limiters(e)
	vs := make([]grokgate.Verdict, n)
	as := make([]grokgate.Admission, n)
	errs := make([]error, n)
	var start, wg sync.WaitGroup
	start.Add(1)
	for i := range n {
		as[i] = mk()
		wg.Add(1)
		go func() {
			defer wg.Done()
			start.Wait()
			vs[i], errs[i] = ls[i%len(ls)].Admit(context.Background(), as[i])
		}()
	}
	start.Done()
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatalf("Admit: %v", err)
		}
	}
	return vs, as
}

func count(vs []grokgate.Verdict) (allowed int, refused map[grokgate.LimitKind]int) {
	refused = map[grokgate.LimitKind]int{}
	for _, v := range vs {
		if v.Allowed {
			allowed++
		} else {
			refused[v.Refused]++
		}
	}
	return allowed, refused
}

func testExactRequests(t *testing.T, e Env) {
	lim := grokgate.Limits{RPM: 60}
	vs, _ := burst(t, e, 200, func() grokgate.Admission { return ask("k", lim, 0, false) })
	allowed, refused := count(vs)
	if allowed != 60 || refused[grokgate.LimitRequests] != 140 {
		t.Fatalf("allowed %d, refused %v; want exactly 60 allowed and 140 refused for requests", allowed, refused)
	}
	for _, v := range vs {
		if !v.Allowed && (v.RetryAfter <= 0 || v.RetryAfter > e.Window) {
			t.Fatalf("Retry-After %v, want within (0, %v]", v.RetryAfter, e.Window)
		}
	}
}

func testReset(t *testing.T, e Env) {
	lim := grokgate.Limits{RPM: 3}
	for range 3 {
		if v := admit(t, e.L, ask("k", lim, 0, false)); !v.Allowed {
			t.Fatalf("refused within the limit: %+v", v)
		}
	}
	e.Advance(e.Window / 2)
	if v := admit(t, e.L, ask("k", lim, 0, false)); v.Allowed || v.Refused != grokgate.LimitRequests {
		t.Fatalf("4th request half a window later: %+v, want refused for requests", v)
	} else if v.RetryAfter > e.Window/2+10*time.Millisecond {
		t.Fatalf("Retry-After %v, want about half the window (%v)", v.RetryAfter, e.Window/2)
	}
	// Sliding: one more admission half-way, then the first three expire
	// while the later one still counts.
	e.Advance(e.Window/2 + 50*time.Millisecond)
	for i := range 3 {
		if v := admit(t, e.L, ask("k", lim, 0, false)); !v.Allowed {
			t.Fatalf("after the window, request %d refused: %+v", i, v)
		}
	}
	if v := admit(t, e.L, ask("k", lim, 0, false)); v.Allowed {
		t.Fatalf("the new window admitted more than the limit: %+v", v)
	}
}

func testHeaders(t *testing.T, e Env) {
	lim := grokgate.Limits{RPM: 10, TPM: 1000}
	v := admit(t, e.L, ask("k", lim, 100, false))
	if !v.Allowed || v.RequestsRemaining != 9 || v.TokensRemaining != 900 {
		t.Fatalf("first: %+v; want 9 requests and 900 tokens remaining", v)
	}
	if v.RequestsReset <= e.Window-time.Second || v.RequestsReset > e.Window || v.TokensReset <= e.Window-time.Second {
		t.Fatalf("resets %v / %v, want about a window (%v)", v.RequestsReset, v.TokensReset, e.Window)
	}
	e.Advance(e.Window / 4)
	v = admit(t, e.L, ask("k", lim, 50, false))
	if v.RequestsRemaining != 8 || v.TokensRemaining != 850 {
		t.Fatalf("second: %+v", v)
	}
}

func testExactTokens(t *testing.T, e Env) {
	lim := grokgate.Limits{TPM: 1000}
	vs, _ := burst(t, e, 200, func() grokgate.Admission { return ask("k", lim, 30, false) })
	allowed, refused := count(vs)
	if allowed != 33 || refused[grokgate.LimitTokens] != 167 {
		t.Fatalf("allowed %d, refused %v; want exactly 33 (33*30 <= 1000)", allowed, refused)
	}
}

func testTokens(t *testing.T, e Env) {
	lim := grokgate.Limits{TPM: 1000}
	a := ask("k", lim, 600, false)
	if v := admit(t, e.L, a); !v.Allowed || v.TokensRemaining != 400 {
		t.Fatalf("first reservation: %+v", v)
	}
	b := ask("k", lim, 600, false)
	v := admit(t, e.L, b)
	if v.Allowed || v.Refused != grokgate.LimitTokens || v.TokensRemaining != 400 {
		t.Fatalf("second reservation over the limit: %+v, want refused for tokens", v)
	}
	if v.RetryAfter <= 0 || v.RetryAfter > e.Window {
		t.Fatalf("Retry-After %v", v.RetryAfter)
	}
	// The first request really used 100: the reservation gives back 500.
	settle(t, e.L, a, grokgate.Settlement{Tokens: 100})
	if v := admit(t, e.L, b); !v.Allowed || v.TokensRemaining != 300 {
		t.Fatalf("after settlement: %+v; want admitted with 300 left (100 used + 600 reserved)", v)
	}
	// A request that used more than it reserved counts in full.
	settle(t, e.L, b, grokgate.Settlement{Tokens: 880})
	if v := admit(t, e.L, ask("k", lim, 30, false)); v.Allowed {
		t.Fatalf("980 used, 30 more admitted: %+v", v)
	}
	// Settled usage leaves the window a window after it was settled.
	e.Advance(e.Window + 50*time.Millisecond)
	if v := admit(t, e.L, ask("k", lim, 1000, false)); !v.Allowed {
		t.Fatalf("after the window: %+v", v)
	}
}

func testReservationCap(t *testing.T, e Env) {
	lim := grokgate.Limits{TPM: 1000}
	a := ask("k", lim, 50000, false)
	if v := admit(t, e.L, a); !v.Allowed || v.TokensRemaining != 0 {
		t.Fatalf("a request larger than the limit on an empty window: %+v, want admitted reserving the whole limit", v)
	}
	if v := admit(t, e.L, ask("k", lim, 1, false)); v.Allowed {
		t.Fatalf("admitted beside a whole-limit reservation: %+v", v)
	}
}

func testStreams(t *testing.T, e Env) {
	lim := grokgate.Limits{MaxStreams: 2}
	vs, as := burst(t, e, 200, func() grokgate.Admission { return ask("k", lim, 0, true) })
	allowed, refused := count(vs)
	if allowed != 2 || refused[grokgate.LimitConcurrency] != 198 {
		t.Fatalf("allowed %d, refused %v; want exactly 2 streams", allowed, refused)
	}
	// Non-streaming requests do not take slots.
	if v := admit(t, e.L, ask("k", lim, 0, false)); !v.Allowed {
		t.Fatalf("non-stream refused while streams are full: %+v", v)
	}
	var open []grokgate.Admission
	for i, v := range vs {
		if v.Allowed {
			open = append(open, as[i])
		}
	}
	// Every ending frees the slot: a completed stream, and one that failed
	// or whose client left (settled with whatever it used, maybe nothing).
	settle(t, e.L, open[0], grokgate.Settlement{Tokens: 10})
	c := ask("k", lim, 0, true)
	if v := admit(t, e.L, c); !v.Allowed {
		t.Fatalf("slot not freed by a completed stream: %+v", v)
	}
	if v := admit(t, e.L, ask("k", lim, 0, true)); v.Allowed || v.Refused != grokgate.LimitConcurrency || v.RetryAfter <= 0 {
		t.Fatalf("third stream: %+v", v)
	}
	settle(t, e.L, open[1], grokgate.Settlement{})
	settle(t, e.L, c, grokgate.Settlement{})
	vs, _ = burst(t, e, 50, func() grokgate.Admission { return ask("k", lim, 0, true) })
	if allowed, _ := count(vs); allowed != 2 {
		t.Fatalf("after all ended: %d streams admitted, want 2", allowed)
	}
}

func testSlotExpiry(t *testing.T, e Env) {
	if e.SlotTTL == 0 || e.Replica == nil {
		t.Skip("slots live and die with the process")
	}
	lim := grokgate.Limits{MaxStreams: 1}
	crashed := e.Replica()
	if v := admit(t, crashed, ask("k", lim, 0, true)); !v.Allowed {
		t.Fatal(v)
	}
	// The replica dies without settling: its slot holds until the TTL.
	if c, ok := crashed.(interface{ Abandon() }); ok {
		c.Abandon()
	}
	if v := admit(t, e.L, ask("k", lim, 0, true)); v.Allowed {
		t.Fatal("a second stream beside the crashed replica's")
	}
	e.Advance(e.SlotTTL + time.Second)
	if v := admit(t, e.L, ask("k", lim, 0, true)); !v.Allowed {
		t.Fatalf("the crashed replica's slot did not expire: %+v", v)
	}
}

func testBudget(t *testing.T, e Env) {
	lim := grokgate.Limits{BudgetTicksPerDay: 1000}
	spend(t, e.L, "k", lim, 600)
	b := ask("k", lim, 0, false)
	if v := admit(t, e.L, b); !v.Allowed {
		t.Fatalf("600 of 1000 spent, refused: %+v", v)
	}
	settle(t, e.L, b, grokgate.Settlement{CostTicks: 600})
	v := admit(t, e.L, ask("k", lim, 0, false))
	if v.Allowed || v.Refused != grokgate.LimitBudget || v.RetryAfter <= 0 || v.RetryAfter > 24*time.Hour {
		t.Fatalf("budget spent: %+v; want refused for budget until the next UTC day", v)
	}
	// The next day starts a new budget.
	e.Advance(v.RetryAfter + time.Second)
	if v := admit(t, e.L, ask("k", lim, 0, false)); !v.Allowed {
		t.Fatalf("next day: %+v", v)
	}
	month := grokgate.Limits{BudgetTicksPerMonth: 100}
	spend(t, e.L, "m", month, 100)
	if v := admit(t, e.L, ask("m", month, 0, false)); v.Allowed || v.Refused != grokgate.LimitBudget || v.RetryAfter > 31*24*time.Hour {
		t.Fatalf("monthly budget spent: %+v", v)
	}
}

// testBudgetConcurrent: 50 requests at once, each reserving 3,000 ticks of
// a 50,000 budget. Admissions are serial and each is admitted only while
// spent + reserved < budget, so exactly 17 are (16 × 3,000 < 50,000 ≤
// 17 × 3,000), and settled at their reservation they pass the budget by
// less than one reservation.
func testBudgetConcurrent(t *testing.T, e Env) {
	const budget, cost = 50_000, 3_000
	for _, lim := range []grokgate.Limits{{BudgetTicksPerDay: budget}, {BudgetTicksPerMonth: budget}} {
		key := "k" + strconv.FormatInt(lim.BudgetTicksPerMonth, 10)
		vs, as := burst(t, e, 50, func() grokgate.Admission {
			a := ask(key, lim, 0, false)
			a.Cost = cost
			return a
		})
		allowed, refused := count(vs)
		if allowed != 17 || refused[grokgate.LimitBudget] != 33 {
			t.Fatalf("%+v: allowed %d, refused %v; want exactly 17 admitted (reserving 3,000 each of 50,000)", lim, allowed, refused)
		}
		for i, v := range vs {
			if !v.Allowed && (v.RetryAfter <= 0 || v.RetryAfter > 2*time.Second) {
				t.Fatalf("refused while requests are in flight: Retry-After %v, want about a second", v.RetryAfter)
			}
			if v.Allowed {
				settle(t, e.L, as[i], grokgate.Settlement{CostTicks: cost})
			}
		}
		// 51,000 spent: over by less than one reservation, and refused
		// until the period ends.
		v := admit(t, e.L, ask(key, lim, 0, false))
		if v.Allowed || v.Refused != grokgate.LimitBudget || v.RetryAfter <= 2*time.Second {
			t.Fatalf("after settling 51,000 of 50,000: %+v; want refused until the period ends", v)
		}
	}
}

// testBudgetReservation: a reservation counts against the budget while its
// request runs, in Admit and in Check, and settling replaces it by the real
// cost.
func testBudgetReservation(t *testing.T, e Env) {
	lim := grokgate.Limits{BudgetTicksPerDay: 1000, BudgetTicksPerMonth: 5000}
	a := ask("k", lim, 0, false)
	a.Cost = 1 << 62 // more than the budget: reserves the whole of it
	if v := admit(t, e.L, a); !v.Allowed {
		t.Fatalf("nothing spent, refused: %+v", v)
	}
	b := ask("k", lim, 0, false)
	b.Cost = 10
	if v := admit(t, e.L, b); v.Allowed || v.Refused != grokgate.LimitBudget {
		t.Fatalf("beside a reservation of the whole budget: %+v, want refused for budget", v)
	}
	if v := check(t, e.L, b); v.Allowed || v.Refused != grokgate.LimitBudget {
		t.Fatalf("Check beside a reservation of the whole budget: %+v, want refused for budget", v)
	}
	settle(t, e.L, a, grokgate.Settlement{CostTicks: 300})
	if v := admit(t, e.L, b); !v.Allowed {
		t.Fatalf("after the reservation settled at 300: %+v", v)
	}
	settle(t, e.L, b, grokgate.Settlement{CostTicks: 750})
	if v := admit(t, e.L, ask("k", lim, 0, false)); v.Allowed || v.Refused != grokgate.LimitBudget {
		t.Fatalf("1050 of 1000 settled, admitted: %+v", v)
	}
	// Settling twice (a retried settlement) does not give back twice.
	settle(t, e.L, b, grokgate.Settlement{})
	if v := admit(t, e.L, ask("k", lim, 0, false)); v.Allowed {
		t.Fatalf("after a second settlement: %+v", v)
	}
}

// testBudgetReservationExpiry: a replica that dies holding a reservation
// does not hold the budget for longer than the TTL.
func testBudgetReservationExpiry(t *testing.T, e Env) {
	if e.SlotTTL == 0 || e.Replica == nil {
		t.Skip("reservations live and die with the process")
	}
	lim := grokgate.Limits{BudgetTicksPerDay: 1000}
	crashed := e.Replica()
	a := ask("k", lim, 0, false)
	a.Cost = 1000
	if v := admit(t, crashed, a); !v.Allowed {
		t.Fatal(v)
	}
	if c, ok := crashed.(interface{ Abandon() }); ok {
		c.Abandon()
	}
	if v := admit(t, e.L, ask("k", lim, 0, false)); v.Allowed {
		t.Fatal("admitted beside the crashed replica's reservation of the whole budget")
	}
	e.Advance(e.SlotTTL + time.Second)
	if v := admit(t, e.L, ask("k", lim, 0, false)); !v.Allowed {
		t.Fatalf("the crashed replica's reservation did not expire: %+v", v)
	}
}

// testBudgetNoReservation: a request admitted without a reservation (a
// limiter that failed under the allow policy) still counts when settled.
// (The key has been seen before: a limiter may leave a key it has no state
// for to be rebuilt from the ledger, which holds the request's record.)
func testBudgetNoReservation(t *testing.T, e Env) {
	lim := grokgate.Limits{BudgetTicksPerDay: 1000}
	spend(t, e.L, "k", lim, 1)
	settle(t, e.L, ask("k", lim, 0, false), grokgate.Settlement{CostTicks: 1000})
	if v := admit(t, e.L, ask("k", lim, 0, false)); v.Allowed || v.Refused != grokgate.LimitBudget {
		t.Fatalf("1000 of 1000 settled without a reservation, admitted: %+v", v)
	}
}

func testKeysIndependent(t *testing.T, e Env) {
	lim := grokgate.Limits{RPM: 1}
	if !admit(t, e.L, ask("a", lim, 0, false)).Allowed || !admit(t, e.L, ask("b", lim, 0, false)).Allowed {
		t.Fatal("one key's request counted against another")
	}
}

func testUnlimited(t *testing.T, e Env) {
	vs, _ := burst(t, e, 200, func() grokgate.Admission { return ask("k", grokgate.Limits{}, 1e6, true) })
	if allowed, refused := count(vs); allowed != 200 {
		t.Fatalf("no limits, yet refused %v", refused)
	}
}

// checker is a Limiter that can tell, taking nothing, whether a request
// would be refused by its requests-per-minute limit or a budget.
type checker interface {
	Check(ctx context.Context, a grokgate.Admission) (grokgate.Verdict, error)
}

func check(t *testing.T, l Limiter, a grokgate.Admission) grokgate.Verdict {
	t.Helper()
	c, ok := l.(checker)
	if !ok {
		t.Fatalf("%T has no Check", l)
	}
	v, err := c.Check(context.Background(), a)
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	return v
}

// testCheck: Check refuses what Admit would for requests per minute and
// budgets, takes nothing, and leaves tokens and streams to Admit.
func testCheck(t *testing.T, e Env) {
	lim := grokgate.Limits{RPM: 2, TPM: 10, MaxStreams: 1}
	for range 5 {
		if v := check(t, e.L, ask("k", lim, 1000, true)); !v.Allowed {
			t.Fatalf("nothing taken yet, and tokens and streams are not Check's: %+v", v)
		}
	}
	for i := range 2 {
		if v := admit(t, e.L, ask("k", lim, 1, false)); !v.Allowed {
			t.Fatalf("admission %d after checks: %+v; Check took something", i+1, v)
		}
	}
	v := check(t, e.L, ask("k", lim, 0, false))
	if v.Allowed || v.Refused != grokgate.LimitRequests || v.RetryAfter <= 0 || v.RetryAfter > e.Window {
		t.Fatalf("over the requests limit: %+v; want refused for requests", v)
	}
	e.Advance(e.Window + time.Second)
	if v := check(t, e.L, ask("k", lim, 0, false)); !v.Allowed {
		t.Fatalf("a window later: %+v", v)
	}
	budget := grokgate.Limits{BudgetTicksPerDay: 100}
	spend(t, e.L, "b", budget, 100)
	if v := check(t, e.L, ask("b", budget, 0, false)); v.Allowed || v.Refused != grokgate.LimitBudget || v.RetryAfter <= 0 {
		t.Fatalf("budget spent: %+v; want refused for budget", v)
	}
}
