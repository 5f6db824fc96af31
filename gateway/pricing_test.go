package gateway

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/grokgate/grokgate"
	"github.com/grokgate/grokgate/pricing"
	"github.com/grokgate/grokgate/ratelimit"
)

// TestOutputCapOverContextWindow: an output cap larger than the model's
// context window is a 400 naming the field and the limit, on chat and the
// Responses API alike, and the largest int64 never reaches the limiter.
func TestOutputCapOverContextWindow(t *testing.T) {
	h := newHarnessConfig(t, func(c *Config) { c.Limiter = ratelimit.New(time.Now, time.Minute) })
	_, limited := h.mintWith(t, "tpm", func(k *grokgate.Key) { k.Limits.TPM = 1000 })
	cases := []struct {
		path, body, param string
		context           int64
	}{
		{"/v1/chat/completions", `{"model":"grok-4.3","max_tokens":9223372036854775807,"messages":[{"role":"user","content":"hi"}]}`, "max_tokens", 2_000_000},
		{"/v1/chat/completions", `{"model":"grok-3","max_tokens":5,"max_completion_tokens":131073,"messages":[{"role":"user","content":"hi"}]}`, "max_completion_tokens", 131_072},
		{"/v1/chat/completions", `{"model":"grok-unknown","max_tokens":2000001,"messages":[{"role":"user","content":"hi"}]}`, "max_tokens", 2_000_000},
		{"/v1/responses", `{"model":"grok-4.3","input":"hi","max_output_tokens":9223372036854775807}`, "max_output_tokens", 2_000_000},
		{"/v1/responses/compact", `{"model":"grok-code-fast-1","input":"hi","max_output_tokens":256001}`, "max_output_tokens", 256_000},
	}
	for _, c := range cases {
		for _, key := range []string{h.user, limited} {
			resp, b := h.do(t, context.Background(), http.MethodPost, c.path, key, c.body)
			var env struct {
				Error struct{ Message, Param, Code, Type string }
			}
			json.Unmarshal(b, &env)
			limit := fmt.Sprint(c.context)
			if resp == nil || resp.StatusCode != http.StatusBadRequest || env.Error.Param != c.param ||
				!strings.Contains(env.Error.Message, "at most "+limit) || env.Error.Type != "invalid_request_error" {
				t.Errorf("%s %s: %v %s; want 400 naming %s and %s", c.path, c.body, resp, b, c.param, limit)
			}
		}
	}
	// Values no int64 holds are refused by the decoder, naming the field.
	for _, v := range []string{"9223372036854775808", "1e300", "-9223372036854775808", "0"} {
		body := `{"model":"grok-4.3","max_tokens":` + v + `,"messages":[{"role":"user","content":"hi"}]}`
		resp, b := h.do(t, context.Background(), http.MethodPost, "/v1/chat/completions", limited, body)
		if resp == nil || resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(b), "max_tokens") {
			t.Errorf("max_tokens %s: %v %s", v, resp, b)
		}
	}
	// At the window itself the request is valid (and reserves the whole
	// TPM limit, so it runs alone).
	resp, b := h.do(t, context.Background(), http.MethodPost, "/v1/chat/completions", limited,
		`{"model":"grok-3","max_tokens":131072,"messages":[{"role":"user","content":"hi"}]}`)
	if resp == nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("max_tokens at the context window: %v %s", resp, b)
	}
}

// TestHugeMaxTokensDoesNotWrapTheReservation: 20 concurrent requests each
// with the largest max_tokens the window allows on a 1,000-token TPM limit:
// the reservation is the whole limit, never a wrapped 0, so at most one runs.
func TestHugeMaxTokensDoesNotWrapTheReservation(t *testing.T) {
	h := newHarnessConfig(t, func(c *Config) { c.Limiter = ratelimit.New(time.Now, time.Minute) })
	_, key := h.mintWith(t, "tpm", func(k *grokgate.Key) { k.Limits.TPM = 1000 })
	body := `{"model":"grok-4.3","n":128,"max_tokens":2000000,"stream":true,"messages":[{"role":"user","content":"x #sim{\"chunks\":5,\"delay_ms\":40}"}]}`
	statuses := concurrently(t, h, 20, "/v1/chat/completions", key, func(int) string { return body })
	if ok := statuses[http.StatusOK]; ok != 1 || statuses[http.StatusTooManyRequests] != 19 {
		t.Fatalf("statuses %v; want one admitted and 19 refused", statuses)
	}
}

// concurrently sends n requests at once and counts their statuses.
func concurrently(t *testing.T, h *harness, n int, path, key string, body func(i int) string) map[int]int {
	t.Helper()
	var (
		mu       sync.Mutex
		wg       sync.WaitGroup
		statuses = map[int]int{}
	)
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			resp, _ := h.do(t, context.Background(), http.MethodPost, path, key, body(i))
			mu.Lock()
			defer mu.Unlock()
			if resp == nil {
				statuses[0]++
				return
			}
			statuses[resp.StatusCode]++
		})
	}
	close(start)
	wg.Wait()
	return statuses
}

// TestReasoningReservedAgainstTPM: max_tokens does not cap a reasoning
// model's thinking, so each request reserves a reasoning allowance too:
// 20 concurrent max_tokens:1 requests to a reasoning model on TPM 500 use,
// together, no more than the limit (without the allowance each reserved
// about 15 tokens, all 20 ran and used over 6,000).
func TestReasoningReservedAgainstTPM(t *testing.T) {
	h := newHarnessConfig(t, func(c *Config) { c.Limiter = ratelimit.New(time.Now, time.Minute) })
	for _, model := range []string{"grok-4.20-0309-reasoning", "grok-4-fast-reasoning"} {
		k, key := h.mintWith(t, "tpm", func(k *grokgate.Key) { k.Limits.TPM = 500 })
		body := func(i int) string {
			return fmt.Sprintf(`{"model":%q,"max_tokens":1,"stream":true,"messages":[{"role":"user","content":"think %d #sim{\"reasoning_chunks\":300,\"delay_ms\":2}"}]}`, model, i)
		}
		statuses := concurrently(t, h, 20, "/v1/chat/completions", key, body)
		var used int64
		for _, r := range h.recs.served(t, k.ID, statuses[http.StatusOK]) {
			used += r.PromptTokens + r.CompletionTokens + r.ReasoningTokens
		}
		if statuses[http.StatusOK] == 0 || used > 500 {
			t.Errorf("%s: statuses %v, admitted requests used %d tokens; want at least one admitted and at most 500", model, statuses, used)
		}
	}
	// A non-reasoning model is reserved only its max_tokens: many run at once.
	_, key := h.mintWith(t, "tpm", func(k *grokgate.Key) { k.Limits.TPM = 500 })
	statuses := concurrently(t, h, 10, "/v1/chat/completions", key, func(i int) string {
		return fmt.Sprintf(`{"model":"grok-4.20-0309-non-reasoning","max_tokens":1,"messages":[{"role":"user","content":"hi %d"}]}`, i)
	})
	if statuses[http.StatusOK] < 2 {
		t.Errorf("non-reasoning model: statuses %v; want several admitted", statuses)
	}
}

// served waits for n records of key id's requests that were not refused
// (refusals reach the ledger a minute at a time) and returns them.
func (r *records) served(t *testing.T, id string, n int) []grokgate.Record {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var got []grokgate.Record
		r.mu.Lock()
		for _, rec := range r.list {
			if rec.KeyID == id && rec.Outcome != grokgate.OutcomeRejected {
				got = append(got, rec)
			}
		}
		r.mu.Unlock()
		if len(got) >= n || time.Now().After(deadline) {
			if len(got) != n {
				t.Fatalf("%d usage records of served requests, want %d", len(got), n)
			}
			return got
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestClientLeavesBeforeUsageIsCharged: streams whose client leaves just
// before the usage chunk are recorded with an estimated cost, never 0, and
// that cost counts against the budget: ten of them on a 100,000-tick daily
// budget spend no more than the budget and one request.
func TestClientLeavesBeforeUsageIsCharged(t *testing.T) {
	h := newHarnessConfig(t, func(c *Config) { c.Limiter = ratelimit.New(time.Now, time.Minute) })
	const budget = 100_000
	k, key := h.mintWith(t, "budget", func(k *grokgate.Key) { k.Limits.BudgetTicksPerDay = budget })
	body := chat("grok-4.3", `leave early #sim{"chunks":10,"delay_ms":60}`, true, true)
	admitted := 0
	for i := range 10 {
		ctx, cancel := context.WithCancel(context.Background())
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, h.gw.URL+"/v1/chat/completions", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := h.gw.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode == http.StatusTooManyRequests {
			resp.Body.Close()
			cancel()
			continue
		}
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("stream %d: status %d", i, resp.StatusCode)
		}
		admitted++
		// Read 9 of the 10 content chunks, then leave: the 10th, the finish
		// chunk and the usage chunk are 60 ms away.
		sc := bufio.NewScanner(resp.Body)
		for chunks := 0; chunks < 9 && sc.Scan(); {
			if strings.Contains(sc.Text(), `"content"`) {
				chunks++
			}
		}
		cancel()
		resp.Body.Close()
		// The record (and the budget's charge) is settled before the next.
		h.recs.served(t, k.ID, admitted)
	}
	var spent, largest int64
	for _, r := range h.recs.served(t, k.ID, admitted) {
		if r.CostTicks <= 0 || !r.Estimated || r.Outcome != grokgate.OutcomeClientCanceled {
			t.Errorf("record %+v: want an estimated cost above 0 for a canceled stream", r)
		}
		spent += r.CostTicks
		largest = max(largest, r.CostTicks)
	}
	if admitted == 0 || spent > budget+largest {
		t.Fatalf("%d streams admitted, %d ticks spent; want at most %d", admitted, spent, budget+largest)
	}
}

// TestReservationArithmetic: the worst case of every request is positive,
// grows with its output cap, and saturates instead of wrapping.
func TestReservationArithmetic(t *testing.T) {
	book := pricing.Fallback()
	m, _ := book.Lookup("grok-4.20-0309-reasoning")
	tok, cost := chatNeed(m, parsedChat{promptTokens: 10, maxTokens: 1}, DefaultReasoningTokens)
	if tok != 10+1+DefaultReasoningTokens || cost != m.Bound(10, 1+DefaultReasoningTokens) {
		t.Errorf("reasoning chat: %d tokens, %d ticks", tok, cost)
	}
	nr, _ := book.Lookup("grok-4-fast-non-reasoning")
	if tok, _ := chatNeed(nr, parsedChat{promptTokens: 10, maxTokens: 1, n: 3}, DefaultReasoningTokens); tok != 13 {
		t.Errorf("non-reasoning chat with n=3: %d tokens", tok)
	}
	if tok, _ := chatNeed(nr, parsedChat{promptTokens: 10}, DefaultReasoningTokens); tok != 10+DefaultMaxTokens {
		t.Errorf("no max_tokens: %d tokens", tok)
	}
	tools := pricing.DefaultToolPrices()
	req := &parsedResponses{promptTokens: 10, maxOutput: 100, serverTools: []string{"web_search", "x_search"}, maxTurns: 2}
	tok, cost = responsesNeed(m, tools, req, DefaultReasoningTokens)
	if tok != 110 || cost != m.Bound(10, 100)+2*50_000_000+2*50_000_000 {
		t.Errorf("responses: %d tokens, %d ticks", tok, cost)
	}
	req.maxTurns = 0
	if _, c := responsesNeed(m, tools, req, DefaultReasoningTokens); c != m.Bound(10, 100)+2*DefaultToolCalls*50_000_000 {
		t.Errorf("responses without max_turns: %d ticks", c)
	}
	if tok, _ := responsesNeed(m, tools, &parsedResponses{promptTokens: 10}, DefaultReasoningTokens); tok != 10+DefaultMaxTokens+DefaultReasoningTokens {
		t.Errorf("responses without max_output_tokens on a reasoning model: %d tokens", tok)
	}
	s := &Server{cfg: Config{ImagePrices: pricing.DefaultImagePrices()}}
	if c := s.imagesCost(parsedImages{model: "grok-imagine-image", n: 3, hd: true}); c != 3*2*200_000_000 {
		t.Errorf("images: %d ticks", c)
	}
}

// FuzzReservation: whatever the output cap, n and prompt, the reservation
// is positive and at least the prompt, never wrapped.
func FuzzReservation(f *testing.F) {
	f.Add(int64(10), int64(1), int64(1), int64(1), false)
	f.Add(int64(math.MaxInt64), int64(math.MaxInt64), int64(128), int64(math.MaxInt64), true)
	f.Add(int64(0), int64(0), int64(0), int64(0), true)
	book := pricing.Fallback()
	f.Fuzz(func(t *testing.T, prompt, maxTokens, n, turns int64, reasoning bool) {
		prompt, n, turns = max(prompt, 0), min(max(n, 1), 128), max(turns, 0)
		m, _ := book.Lookup("grok-4.6")
		m.Reasoning = reasoning
		tok, cost := chatNeed(m, parsedChat{promptTokens: prompt, maxTokens: maxTokens, n: n}, math.MaxInt64)
		if tok <= 0 || cost <= 0 || tok < prompt {
			t.Fatalf("chat: %d tokens, %d ticks", tok, cost)
		}
		tok, cost = responsesNeed(m, pricing.DefaultToolPrices(), &parsedResponses{promptTokens: prompt, maxOutput: maxTokens,
			maxTurns: turns, serverTools: []string{"web_search", "mcp", "unknown"}}, math.MaxInt64)
		if tok <= 0 || cost <= 0 || tok < prompt {
			t.Fatalf("responses: %d tokens, %d ticks", tok, cost)
		}
	})
}
