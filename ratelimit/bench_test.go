package ratelimit

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/grokgate/grokgate"
)

// BenchmarkAdmitSettleBusyKey is one request's limiter work on a key whose
// window already holds 100,000 requests: it must not grow with the window.
func BenchmarkAdmitSettleBusyKey(b *testing.B) {
	now := time.Unix(1_000_000, 0)
	l := New(func() time.Time { return now }, time.Minute)
	lim := grokgate.Limits{RPM: 1 << 40, TPM: 1 << 50}
	ctx := context.Background()
	admit := func(i int) {
		a := grokgate.Admission{Key: "k", ID: strconv.Itoa(i), Limits: lim, Tokens: 100}
		if v, _ := l.Admit(ctx, a); !v.Allowed {
			b.Fatal("refused")
		}
		l.Settle(ctx, a, grokgate.Settlement{Tokens: 50})
	}
	for i := range 100_000 {
		admit(i)
	}
	b.ReportAllocs()
	i := 100_000
	for b.Loop() {
		now = now.Add(time.Microsecond) // the window slides: old entries leave as new ones come
		admit(i)
		i++
	}
}
