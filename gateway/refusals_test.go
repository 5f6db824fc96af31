package gateway

import (
	"context"
	"encoding/json"
	"strings"
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
	time.Sleep(100 * time.Millisecond)
	h.recs.mu.Lock()
	defer h.recs.mu.Unlock()
	n := 0
	for _, rec := range h.recs.list {
		if rec.KeyID == k.ID {
			n++
		}
	}
	// Two, not 50, when the test straddles a minute.
	if n < 1 || n > 2 {
		t.Errorf("%d ledger records for 50 refused requests, want one a minute", n)
	}
}
