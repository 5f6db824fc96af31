package gateway

import (
	"math/rand/v2"
	"net/http"
	"testing"
	"time"

	"github.com/grokgate/grokgate"
)

// TestResetText checks the reset format against Go's duration syntax
// rounded up to the millisecond, which OpenAI's headers use.
func TestResetText(t *testing.T) {
	ds := []time.Duration{0, -time.Second, 1, time.Millisecond, 999 * time.Millisecond, 999*time.Millisecond + 1,
		time.Second, 1500 * time.Millisecond, 59 * time.Second, time.Minute, 6 * time.Minute, 90 * time.Minute, 25 * time.Hour}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		ds = append(ds, time.Duration(rng.Int64N(int64(2*time.Hour))))
	}
	for _, d := range ds {
		want := "0s"
		if d > 0 {
			want = ((d + time.Millisecond - 1) / time.Millisecond * time.Millisecond).String()
		}
		if got := resetText(d); got != want {
			t.Fatalf("resetText(%v) = %q, want %q", d, got, want)
		}
	}
}

func TestSetLimitHeaders(t *testing.T) {
	lim := grokgate.Limits{RPM: 600, TPM: 120000}
	v := grokgate.Verdict{RequestsRemaining: 599, RequestsReset: 100 * time.Millisecond,
		TokensRemaining: 118000, TokensReset: 1500 * time.Millisecond}
	h := http.Header{}
	setLimitHeaders(h, lim, v)
	want := map[string]string{
		"X-Ratelimit-Limit-Requests": "600", "X-Ratelimit-Remaining-Requests": "599", "X-Ratelimit-Reset-Requests": "100ms",
		"X-Ratelimit-Limit-Tokens": "120000", "X-Ratelimit-Remaining-Tokens": "118000", "X-Ratelimit-Reset-Tokens": "1.5s",
	}
	if len(h) != len(want) {
		t.Errorf("got %d headers, want %d: %v", len(h), len(want), h)
	}
	for k, w := range want {
		if got := h[k]; len(got) != 1 || got[0] != w {
			t.Errorf("%s = %q, want [%q]", k, got, w)
		}
	}
	// A later Add must not write into a neighbour's value.
	h.Add("X-Ratelimit-Limit-Requests", "x")
	if got := h.Get("X-Ratelimit-Remaining-Requests"); got != "599" {
		t.Errorf("after Add, X-Ratelimit-Remaining-Requests = %q", got)
	}

	h = http.Header{}
	setLimitHeaders(h, grokgate.Limits{TPM: 5}, grokgate.Verdict{TokensRemaining: 5})
	if len(h) != 3 || h.Get("X-Ratelimit-Limit-Tokens") != "5" || h.Get("X-Ratelimit-Limit-Requests") != "" {
		t.Errorf("tokens-only limit gave %v", h)
	}
	h = http.Header{}
	setLimitHeaders(h, grokgate.Limits{}, grokgate.Verdict{})
	if len(h) != 0 {
		t.Errorf("no limits gave %v", h)
	}

	h = http.Header{}
	if n := testing.AllocsPerRun(100, func() {
		v.RequestsRemaining++
		v.TokensRemaining = 100000 + v.RequestsRemaining
		setLimitHeaders(h, lim, v)
	}); n > 2 {
		t.Errorf("setLimitHeaders allocates %v times, want at most 2", n)
	}
}
