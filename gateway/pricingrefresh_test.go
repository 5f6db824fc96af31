package gateway

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/grokgate/grokgate"
	"github.com/grokgate/grokgate/pricing"
	"github.com/grokgate/grokgate/simulator"
)

// TestPricesFromLanguageModels: the gateway reads xAI's prices from GET
// /language-models through its upstream client at start and again every
// ModelInfoTTL, prices an estimate with them, keeps the last known prices
// while the list cannot be had, and falls back to the built-in table
// before the first fetch.
func TestPricesFromLanguageModels(t *testing.T) {
	sim := simulator.New(simulator.Options{})
	var (
		fetches atomic.Int64
		failing atomic.Bool
	)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/language-models" {
			sim.ServeHTTP(w, r)
			return
		}
		fetches.Add(1)
		if r.Header.Get("Authorization") != "Bearer sim-key" {
			t.Errorf("the list was fetched without the xAI key")
		}
		if failing.Load() {
			http.Error(w, `{"code":"Internal error","error":"down"}`, http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"models":[{"id":"grok-4.3","aliases":["grok-4-1-fast-reasoning"],"object":"model","owned_by":"xai",
			"input_modalities":["text","image"],"output_modalities":["text"],
			"prompt_text_token_price":7,"cached_prompt_text_token_price":3,"completion_text_token_price":11,
			"prompt_image_token_price":7,"context_length":1000}]}`))
	}))
	t.Cleanup(up.Close)
	h := newHarnessUpstream(t, up.URL+"/v1", up.Client().Transport, func(c *Config) { c.ModelInfoTTL = 20 * time.Millisecond })

	if m, _ := h.srv.Prices().Lookup("grok-4.3"); m.Prompt != 2000 {
		t.Fatalf("before any fetch: %+v, want the built-in table", m)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { h.srv.RefreshModels(ctx); close(done) }()
	waitFor(t, "the listed prices", func() bool { m, _ := h.srv.Prices().Lookup("grok-4.3"); return m.Prompt == 7 })
	if m, found := h.srv.Prices().Lookup("grok-3"); !found || m.Prompt != 30000 {
		t.Errorf("a model the list lacks: %+v, want the built-in table's", m)
	}
	// The listed context window bounds max_tokens.
	if resp, b := h.do(t, context.Background(), http.MethodPost, "/v1/chat/completions", h.user,
		`{"model":"grok-4.3","max_tokens":1001,"messages":[{"role":"user","content":"hi"}]}`); resp == nil || resp.StatusCode != 400 {
		t.Errorf("max_tokens over the listed window: %v %s", resp, b)
	}
	// A stream cut before its usage is priced with the listed prices.
	h.do(t, context.Background(), http.MethodPost, "/v1/chat/completions", h.user, chat("grok-4.3", `#sim{"cut_after":3}`, true, false))
	var rec grokgate.Record
	waitFor(t, "the cut stream's record", func() bool {
		h.recs.mu.Lock()
		defer h.recs.mu.Unlock()
		for _, r := range h.recs.list {
			if r.Outcome != grokgate.OutcomeRejected {
				rec = r
				return true
			}
		}
		return false
	})
	want := pricing.EstimateCost(h.srv.Prices(), "grok-4.3", pricing.Tokens{Prompt: rec.PromptTokens, Completion: rec.CompletionTokens})
	if !rec.Estimated || rec.CostTicks != want || want != 7*rec.PromptTokens+11*rec.CompletionTokens {
		t.Errorf("estimated record %+v, want cost %d", rec, want)
	}
	// While the list fails, the last known prices stay.
	failing.Store(true)
	n := fetches.Load()
	waitFor(t, "a failed fetch", func() bool { return fetches.Load() > n })
	if m, _ := h.srv.Prices().Lookup("grok-4.3"); m.Prompt != 7 {
		t.Errorf("after a failed fetch: %+v, want the last listed prices", m)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("RefreshModels did not return when its context ended")
	}
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
