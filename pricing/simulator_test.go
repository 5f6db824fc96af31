package pricing_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/grokgate/grokgate/pricing"
	"github.com/grokgate/grokgate/simulator"
)

// TestSimulatorPricesMatchItsCharges: the prices the simulator lists at
// /v1/language-models, read as grokgate reads xAI's, reproduce the
// cost_in_usd_ticks it reports, for every model, with cached and reasoning
// tokens; and they agree with the fallback table, so an estimate made
// before the list is fetched matches too.
func TestSimulatorPricesMatchItsCharges(t *testing.T) {
	srv := httptest.NewServer(simulator.New(simulator.Options{}))
	defer srv.Close()
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/v1/language-models", nil)
	req.Header.Set("Authorization", "Bearer x")
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	book, err := pricing.Parse(body, pricing.Fallback())
	if err != nil {
		t.Fatal(err)
	}
	ids := []string{"grok-4.3", "grok-4-1-fast-reasoning", "grok-4.5", "grok-4.6", "grok-4.20-0309-reasoning",
		"grok-4.20-0309-non-reasoning", "grok-code-fast-1", "grok-3", "grok-3-mini"}
	for _, id := range ids {
		m, found := book.Lookup(id)
		if !found || m.ContextLength <= 0 {
			t.Errorf("%s: not listed with a context window (%+v)", id, m)
			continue
		}
		if fb, _ := pricing.Fallback().Lookup(id); fb.Prompt != m.Prompt || fb.Cached != m.Cached ||
			fb.Completion != m.Completion || fb.ContextLength != m.ContextLength {
			t.Errorf("%s: fallback %+v differs from the listed %+v", id, fb, m)
		}
		chat := fmt.Sprintf(`{"model":%q,"messages":[{"role":"user","content":"price me #sim{\"cached_tokens\":7,\"reasoning_chunks\":9,\"chunks\":12}"}]}`, id)
		u, err := simulator.ExpectedUsage([]byte(chat))
		if err != nil {
			t.Fatal(err)
		}
		got := m.Cost(pricing.Tokens{Prompt: int64(u.PromptTokens), Cached: int64(u.PromptTokensDetails.CachedTokens),
			Completion: int64(u.CompletionTokens), Reasoning: int64(u.CompletionTokensDetails.ReasoningTokens)})
		if got != u.CostInUSDTicks || got <= 0 {
			t.Errorf("%s: priced %d, the simulator charges %d", id, got, u.CostInUSDTicks)
		}
		// The reservation's bound is never below the charge.
		if b := m.Bound(int64(u.PromptTokens), int64(u.CompletionTokens+u.CompletionTokensDetails.ReasoningTokens)); b < got {
			t.Errorf("%s: bound %d below the charge %d", id, b, got)
		}
		if wantReasoning := !strings.Contains(id, "non-reasoning") && id != "grok-3"; m.Reasoning != wantReasoning {
			t.Errorf("%s: reasoning %v", id, m.Reasoning)
		}
	}
}
