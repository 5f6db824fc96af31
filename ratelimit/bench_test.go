package ratelimit

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/grokgate/grokgate"
)

// BenchmarkAdmitSettleBusyKey is one request's limiter work on a key whose
// token window already holds 1,000,000 entries, with a budget reservation;
// x_empty_window is its cost over the same work on a key with an empty
// window, in the same run: about 1 when the work does not grow with the
// window.
func BenchmarkAdmitSettleBusyKey(b *testing.B) {
	now := time.Unix(1_000_000, 0)
	clock := func() time.Time { return now }
	busy, empty := New(clock, time.Minute), New(clock, time.Minute)
	lim := grokgate.Limits{RPM: 1 << 40, TPM: 1 << 50, BudgetTicksPerDay: 1 << 50}
	ctx := context.Background()
	l := empty
	admit := func(key string, i int) {
		a := grokgate.Admission{Key: key, ID: strconv.Itoa(i), Limits: lim, Tokens: 100, Cost: 1000}
		if v, _ := l.Admit(ctx, a); !v.Allowed {
			b.Fatal("refused")
		}
		l.Settle(ctx, a, grokgate.Settlement{Tokens: 50, CostTicks: 10})
	}
	const emptyRuns = 100_000
	start := time.Now()
	for i := range emptyRuns {
		now = now.Add(time.Minute) // every admission finds the window empty
		admit("k", i)
	}
	emptyPer := time.Since(start) / emptyRuns
	l = busy
	for i := range 500_000 { // two entries each: the reservation and the usage
		admit("k", i)
	}
	b.ReportAllocs()
	b.ResetTimer()
	i := 500_000
	for b.Loop() {
		now = now.Add(time.Microsecond) // the window slides: old entries leave as new ones come
		admit("k", i)
		i++
	}
	b.ReportMetric(float64(b.Elapsed()/time.Duration(b.N))/float64(emptyPer), "x_empty_window")
}
