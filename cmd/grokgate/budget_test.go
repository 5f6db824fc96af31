package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"testing"

	"github.com/grokgate/grokgate/gateway"
	"github.com/grokgate/grokgate/pricing"
	usagemeter "github.com/grokgate/grokgate/usage"
)

// TestBudgetHoldsUnderConcurrency: 50 requests at once on a key with a
// 50,000-tick daily budget. Each reserves its worst-case cost when
// admitted, so together they spend no more than the budget and one
// request's reservation (before, all 50 were admitted and spent about 58
// times the budget). The ledger, read after the stop, is the judge.
func TestBudgetHoldsUnderConcurrency(t *testing.T) {
	g := startGW(t, nil)
	const budget = 50_000
	key := newKey(t, g.DB, "--budget-ticks-per-day", fmt.Sprint(budget))
	body := func(i int) string {
		b, _ := json.Marshal(map[string]any{"model": "grok-4.3", "max_tokens": 8,
			"messages": []map[string]string{{"role": "user", "content": fmt.Sprintf(`spend %d #sim{"chunks":8,"delay_ms":20}`, i)}}})
		return string(b)
	}
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		statuses = map[int]int{}
	)
	start := make(chan struct{})
	for i := range 50 {
		wg.Go(func() {
			<-start
			resp := g.post(t, "/api/v1/chat/completions", key, body(i))
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			mu.Lock()
			statuses[resp.StatusCode]++
			mu.Unlock()
		})
	}
	close(start)
	wg.Wait()
	if err := g.stop(t); err != nil {
		t.Fatal(err)
	}
	var spent int64
	for _, r := range storedRecords(t, g.DB) {
		spent += r.CostTicks
	}
	// One request's reservation: its prompt estimate and max_tokens plus the
	// reasoning allowance (grok-4.3 reasons), at grok-4.3's prices.
	m, _ := pricing.Fallback().Lookup("grok-4.3")
	reservation := m.Bound(usagemeter.EstimatePromptTokens([]byte(body(10))), 8+gateway.DefaultReasoningTokens)
	t.Logf("statuses %v, %d ticks spent on a %d budget (one reservation: %d)", statuses, spent, budget, reservation)
	if statuses[http.StatusOK] == 0 || statuses[http.StatusOK]+statuses[http.StatusTooManyRequests] != 50 {
		t.Fatalf("statuses %v", statuses)
	}
	if spent <= 0 || spent > budget+reservation {
		t.Fatalf("%d ticks spent, want at most the budget and one reservation, %d", spent, budget+reservation)
	}
	// Each request costs about 66,000 ticks, more than the budget: reserved
	// per request, it lets one or two through, not 50.
	if statuses[http.StatusOK] > 2 {
		t.Fatalf("%d requests admitted on a budget two can spend", statuses[http.StatusOK])
	}
}
