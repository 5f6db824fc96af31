package gateway

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/grokgate/grokgate"
)

// TestRefusalsLimitedAndAggregated: refused requests reach the ledger once
// per key and minute, not one row each, and a key whose refusals reach its
// requests-per-minute limit is refused with 429 before any work.
func TestRefusalsLimitedAndAggregated(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	k, secret := h.mintWith(t, "sloppy", func(k *grokgate.Key) { k.Limits.RPM = 3 })
	codes := map[string]int{}
	for range 50 {
		resp, b := h.do(t, ctx, "POST", "/v1/chat/completions", secret, `{"model":"grok-4.3","messages":[]}`)
		var env struct {
			Error struct{ Code, Message string }
		}
		json.Unmarshal(b, &env)
		if resp == nil {
			t.Fatal("no answer")
		}
		if env.Error.Code == "rate_limit_requests" && (resp.StatusCode != 429 || !strings.Contains(env.Error.Message, "refused")) {
			t.Fatalf("refusal limit: %d %s", resp.StatusCode, b)
		}
		codes[env.Error.Code]++
	}
	if codes["invalid_request"] != 3 || codes["rate_limit_requests"] != 47 {
		t.Errorf("answers %v, want 3 invalid_request then 47 rate_limit_requests", codes)
	}
	// The good key is untouched by another key's refusals.
	if resp, b := h.do(t, ctx, "POST", "/v1/chat/completions", h.user, `{"model":"grok-4.3","messages":[]}`); resp == nil || resp.StatusCode != 400 {
		t.Errorf("another key: %s", b)
	}
	// Shutdown writes the minute's record at once.
	h.srv.FlushRefusals()
	h.recs.mu.Lock()
	defer h.recs.mu.Unlock()
	n, count := 0, int64(0)
	for _, rec := range h.recs.list {
		if rec.KeyID == k.ID {
			n++
			count += rec.Count
		}
	}
	// Two, not 50, when the test straddles a minute.
	if n < 1 || n > 2 {
		t.Errorf("%d ledger records for 50 refused requests, want one a minute", n)
	}
	if count != 50 {
		t.Errorf("the ledger records count %d refused requests, want 50", count)
	}
}

// TestRefusalsWrittenWhenMinuteEnds: a minute's refusals reach the ledger
// when the minute ends, as one record counting them, even if no request
// comes after them.
func TestRefusalsWrittenWhenMinuteEnds(t *testing.T) {
	var mu sync.Mutex
	// 200 ms before a minute ends, so the timer fires soon in real time.
	clock := time.Date(2026, 12, 6, 10, 0, 59, 800_000_000, time.UTC)
	now := func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	h := newHarnessConfig(t, func(c *Config) { c.Now = now })
	ctx := context.Background()
	k, secret := h.mintWith(t, "sloppy", func(k *grokgate.Key) {})
	for range 7 {
		if resp, b := h.do(t, ctx, "POST", "/v1/chat/completions", secret, `{"model":"grok-4.3","messages":[]}`); resp == nil || resp.StatusCode != 400 {
			t.Fatalf("want 400: %s", b)
		}
	}
	h.recs.mu.Lock()
	early := len(h.recs.list)
	h.recs.mu.Unlock()
	if early != 0 {
		t.Fatalf("%d records written before the minute ended", early)
	}
	mu.Lock()
	clock = clock.Add(time.Second)
	mu.Unlock()
	recs := h.recs.wait(t, 1)
	if r := recs[0]; r.KeyID != k.ID || r.Count != 7 || r.Outcome != grokgate.OutcomeRejected || r.Status != 400 {
		t.Errorf("record %+v, want key %s's 7 refusals", r, k.ID)
	}
}
