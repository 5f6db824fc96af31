package gateway

import (
	"bufio"
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/grokgate/grokgate"
	"github.com/grokgate/grokgate/pricing"
	"github.com/grokgate/grokgate/simulator"
	"github.com/grokgate/grokgate/usage"
)

// TestUsageRecordPerOutcome sends one request per kind of ending and checks
// its record field by field, and what the client saw of usage.
func TestUsageRecordPerOutcome(t *testing.T) {
	h := newHarness(t)
	limited := h.mint(t, "limited", grokgate.RoleUser, []string{"grok-3"})
	type want struct {
		status      int
		outcome     grokgate.Outcome
		exact       bool // tokens equal simulator.ExpectedUsage
		estimated   bool
		usageChunks int // usage-bearing events the client saw (streams)
	}
	cases := []struct {
		name   string
		key    string
		body   string
		cancel bool // the client leaves after the first event (or after 100ms)
		want   want
	}{
		{"non-stream", h.user, chat("grok-4-1-fast-reasoning", "hello there", false, false), false,
			want{200, grokgate.OutcomeCompleted, true, false, 0}},
		{"stream without usage", h.user, chat("grok-4.3", "stream me", true, false), false,
			want{200, grokgate.OutcomeCompleted, true, false, 0}},
		{"stream with usage", h.user, chat("grok-4.3", "stream me too", true, true), false,
			want{200, grokgate.OutcomeCompleted, true, false, 1}},
		{"stream include_usage false", h.user, `{"model":"grok-3","stream":true,"stream_options":{"include_usage":false},"messages":[{"role":"user","content":"x"}]}`, false,
			want{200, grokgate.OutcomeCompleted, true, false, 0}},
		{"reasoning stream", h.user, chat("grok-4.20-0309-reasoning", `think #sim{"reasoning_chunks":5,"cached_tokens":3}`, true, false), false,
			want{200, grokgate.OutcomeCompleted, true, false, 0}},
		{"upstream 503", h.user, chat("grok-4.3", `#sim{"status":503}`, false, false), false,
			want{503, grokgate.OutcomeUpstreamError, false, false, 0}},
		{"stream error event", h.user, chat("grok-4.3", `#sim{"error_after":3}`, true, false), false,
			want{200, grokgate.OutcomeUpstreamError, false, true, 0}},
		{"stream cut", h.user, chat("grok-4.3", `#sim{"cut_after":3}`, true, false), false,
			want{200, grokgate.OutcomeUpstreamError, false, true, 0}},
		{"json error on stream", h.user, chat("grok-4.3", `#sim{"json_error":true}`, true, false), false,
			want{503, grokgate.OutcomeUpstreamError, false, false, 0}},
		{"client leaves stream", h.user, chat("grok-4.3", `#sim{"chunks":40,"delay_ms":30}`, true, false), true,
			want{499, grokgate.OutcomeClientCanceled, false, true, 0}},
		{"client leaves non-stream", h.user, chat("grok-4.3", `#sim{"hang":true}`, false, false), true,
			want{499, grokgate.OutcomeClientCanceled, false, true, 0}},
		{"invalid body", h.user, `{"model":"grok-4.3"}`, false,
			want{400, grokgate.OutcomeRejected, false, false, 0}},
		{"model not allowed", limited, chat("grok-4.3", "hi", false, false), false,
			want{403, grokgate.OutcomeRejected, false, false, 0}},
	}
	ids := map[string]int{}
	noResponse := -1 // the case whose client left before any response
	bodies := map[string][]byte{}
	for i, c := range cases {
		ctx, cancel := context.WithCancel(context.Background())
		t.Cleanup(cancel)
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, h.gw.URL+"/v1/chat/completions", strings.NewReader(c.body))
		req.Header.Set("Authorization", "Bearer "+c.key)
		stream := strings.Contains(c.body, `"stream":true`)
		if c.cancel && !stream {
			// The answer never comes: the client gives up while waiting.
			time.AfterFunc(100*time.Millisecond, cancel)
		}
		resp, err := h.gw.Client().Do(req)
		if err != nil {
			if !c.cancel || noResponse >= 0 {
				t.Fatalf("%s: %v", c.name, err)
			}
			noResponse = i
			continue
		}
		ids[resp.Header.Get("X-Request-Id")] = i
		var body strings.Builder
		if c.cancel {
			line, _ := bufio.NewReader(resp.Body).ReadString('\n')
			body.WriteString(line)
			cancel()
		} else {
			b := make([]byte, 32<<10)
			for {
				n, err := resp.Body.Read(b)
				body.Write(b[:n])
				if err != nil {
					break
				}
			}
		}
		resp.Body.Close()
		bodies[resp.Header.Get("X-Request-Id")] = []byte(body.String())
		if !c.cancel && resp.StatusCode != c.want.status {
			t.Errorf("%s: client got status %d, want %d: %s", c.name, resp.StatusCode, c.want.status, body.String())
		}
		if got := usageChunks([]byte(body.String())); strings.Contains(c.body, `"stream":true`) && got != c.want.usageChunks {
			t.Errorf("%s: client saw %d usage chunks, want %d", c.name, got, c.want.usageChunks)
		}
	}
	// One more request without a key: refused and not recorded.
	if resp, _ := h.do(t, context.Background(), http.MethodPost, "/v1/chat/completions", "", chat("grok-4.3", "x", false, false)); resp.StatusCode != 401 {
		t.Errorf("no key: status %d", resp.StatusCode)
	}

	h.srv.FlushRefusals() // the refusals' records, which otherwise wait for the minute's end
	recs := h.recs.wait(t, len(cases))
	time.Sleep(50 * time.Millisecond)
	if extra := h.recs.wait(t, len(cases)); len(extra) != len(cases) {
		t.Fatal("records kept coming")
	}
	for _, rec := range recs {
		i, ok := ids[rec.RequestID]
		switch {
		case ok:
			delete(ids, rec.RequestID)
		case noResponse >= 0:
			i, noResponse = noResponse, -1
		default:
			t.Errorf("record for unknown request %s", rec.RequestID)
			continue
		}
		c := cases[i]
		if rec.Status != c.want.status || rec.Outcome != c.want.outcome || rec.Estimated != c.want.estimated {
			t.Errorf("%s: status %d outcome %s estimated %v; want %d %s %v", c.name, rec.Status, rec.Outcome, rec.Estimated,
				c.want.status, c.want.outcome, c.want.estimated)
		}
		if rec.Route != "/chat/completions" || rec.KeyID == "" || rec.Time.IsZero() || rec.Latency <= 0 {
			t.Errorf("%s: route %q key %q time %v latency %v", c.name, rec.Route, rec.KeyID, rec.Time, rec.Latency)
		}
		exp, _ := simulator.ExpectedUsage([]byte(c.body))
		got := simulator.Usage{PromptTokens: int(rec.PromptTokens), CompletionTokens: int(rec.CompletionTokens)}
		switch {
		case c.want.exact:
			if rec.PromptTokens != int64(exp.PromptTokens) || rec.CompletionTokens != int64(exp.CompletionTokens) ||
				rec.ReasoningTokens != int64(exp.CompletionTokensDetails.ReasoningTokens) ||
				rec.CachedTokens != int64(exp.PromptTokensDetails.CachedTokens) || rec.CostTicks != exp.CostInUSDTicks {
				t.Errorf("%s: tokens %+v, want %+v", c.name, rec, exp)
			}
			if rec.UpstreamID == "" || rec.Model == "" {
				t.Errorf("%s: upstream id %q model %q", c.name, rec.UpstreamID, rec.Model)
			}
		case c.want.estimated:
			// Prompt: the documented estimate; completion: the text that was
			// streamed before the end, at four bytes a token.
			// Cost: those tokens at the model's prices, never 0.
			want := pricing.EstimateCost(pricing.Fallback(), "grok-4.3", pricing.Tokens{Prompt: rec.PromptTokens,
				Completion: rec.CompletionTokens, Reasoning: rec.ReasoningTokens})
			if rec.PromptTokens != usage.EstimatePromptTokens([]byte(c.body)) || rec.CostTicks != want || rec.CostTicks <= 0 {
				t.Errorf("%s: estimated prompt %d cost %d, want cost %d", c.name, rec.PromptTokens, rec.CostTicks, want)
			}
		default:
			if got != (simulator.Usage{}) || rec.ReasoningTokens != 0 || rec.CostTicks != 0 {
				t.Errorf("%s: tokens recorded for a request xAI did not bill: %+v", c.name, rec)
			}
		}
		if rec.Stream != strings.Contains(c.body, `"stream":true`) {
			t.Errorf("%s: stream flag %v", c.name, rec.Stream)
		}
		if rec.Stream && rec.Outcome == grokgate.OutcomeCompleted && (rec.TTFB <= 0 || rec.TTFB > rec.Latency) {
			t.Errorf("%s: ttfb %v latency %v", c.name, rec.TTFB, rec.Latency)
		}
		switch c.name {
		case "non-stream":
			if rec.RequestedModel != "grok-4-1-fast-reasoning" || rec.Model != "grok-4.3" {
				t.Errorf("models: requested %q resolved %q", rec.RequestedModel, rec.Model)
			}
		case "stream error event", "stream cut":
			// Three content chunks arrived: their words, at four bytes a token.
			words := simulator.Reply("", 8)[:3]
			if want := usage.TokensForBytes(int64(len(strings.Join(words, "")))); rec.CompletionTokens != want {
				t.Errorf("%s: estimated completion %d, want %d", c.name, rec.CompletionTokens, want)
			}
		case "model not allowed":
			if !strings.Contains(string(bodies[rec.RequestID]), `may not use the model \"grok-4.3\"`) {
				t.Errorf("403 body: %s", bodies[rec.RequestID])
			}
		}
	}
	for id, i := range ids {
		t.Errorf("%s (%s): no record", cases[i].name, id)
	}
}
