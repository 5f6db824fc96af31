package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/grokgate/grokgate"
)

// respEvent is one decoded Responses stream event.
type respEvent struct {
	Type     string          `json:"type"`
	Seq      int64           `json:"sequence_number"`
	Delta    string          `json:"delta"`
	Message  string          `json:"message"`
	Code     string          `json:"code"`
	Response json.RawMessage `json:"response"`
}

// respEvents decodes an SSE body of Responses events, checking that every
// event is a data line holding an object and that sequence numbers run
// from 0 without a gap.
func respEvents(t *testing.T, body []byte) []respEvent {
	t.Helper()
	var out []respEvent
	for _, block := range bytes.Split(bytes.TrimSpace(body), []byte("\n\n")) {
		var data []byte
		for _, line := range bytes.Split(block, []byte("\n")) {
			if d, ok := bytes.CutPrefix(line, []byte("data: ")); ok {
				data = d
			}
		}
		if data == nil {
			continue // a comment (heartbeat)
		}
		var ev respEvent
		if err := json.Unmarshal(data, &ev); err != nil {
			t.Fatalf("event %q: %v", data, err)
		}
		if ev.Seq != int64(len(out)) {
			t.Fatalf("event %d has sequence_number %d:\n%s", len(out), ev.Seq, body)
		}
		out = append(out, ev)
	}
	return out
}

func respText(evs []respEvent) string {
	var b strings.Builder
	for _, ev := range evs {
		if ev.Type == "response.output_text.delta" {
			b.WriteString(ev.Delta)
		}
	}
	return b.String()
}

func responsesBody(model, input string, extra map[string]any) string {
	req := map[string]any{"model": model, "input": input, "unknown_field": map[string]any{"kept": true}}
	for k, v := range extra {
		req[k] = v
	}
	b, _ := json.Marshal(req)
	return string(b)
}

// responseUsage is the usage of a response object.
type responseUsage struct {
	InputTokens         int64 `json:"input_tokens"`
	OutputTokens        int64 `json:"output_tokens"`
	OutputTokensDetails struct {
		ReasoningTokens int64 `json:"reasoning_tokens"`
	} `json:"output_tokens_details"`
	TotalTokens int64 `json:"total_tokens"`
	Cost        int64 `json:"cost_in_usd_ticks"`
	Tools       struct {
		WebSearch int64 `json:"web_search_calls"`
	} `json:"server_side_tool_usage_details"`
}

type responseObject struct {
	ID     string          `json:"id"`
	Object string          `json:"object"`
	Status string          `json:"status"`
	Model  string          `json:"model"`
	Output json.RawMessage `json:"output"`
	Usage  responseUsage   `json:"usage"`
}

// checkLedger compares a record with the usage xAI reported.
func checkLedger(t *testing.T, rec grokgate.Record, u responseUsage) {
	t.Helper()
	if rec.Route != "/responses" || rec.Estimated || rec.PromptTokens != u.InputTokens || rec.CostTicks != u.Cost ||
		rec.CompletionTokens+rec.ReasoningTokens+rec.PromptTokens != u.TotalTokens || rec.ReasoningTokens != u.OutputTokensDetails.ReasoningTokens {
		t.Fatalf("record %+v does not match xAI's usage %+v", rec, u)
	}
}

func TestResponsesCreate(t *testing.T) {
	h := newHarness(t)
	resp, body := h.do(t, context.Background(), http.MethodPost, "/api/v1/responses", h.user, responsesBody("grok-4.3", "Say hi.", nil))
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	var r responseObject
	if err := json.Unmarshal(body, &r); err != nil || r.Object != "response" || r.Status != "completed" || r.ID == "" {
		t.Fatalf("answer %s (%v)", body, err)
	}
	recs := h.recs.wait(t, 1)
	checkLedger(t, recs[0], r.Usage)
	if recs[0].Outcome != grokgate.OutcomeCompleted || recs[0].UpstreamID != r.ID || recs[0].Stream {
		t.Fatalf("record %+v", recs[0])
	}
}

func TestResponsesStream(t *testing.T) {
	for _, eventLines := range []bool{false, true} {
		h := newHarness(t)
		input := "Say hi."
		if eventLines {
			input += ` #sim{"event_lines":true}`
		}
		resp, body := h.do(t, context.Background(), http.MethodPost, "/v1/responses", h.user,
			responsesBody("grok-4.20-0309-reasoning", input, map[string]any{"stream": true}))
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
			t.Fatalf("status %d %q: %s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
		}
		if bytes.Contains(body, []byte("[DONE]")) {
			t.Fatal("a Responses stream got a [DONE]")
		}
		if got := bytes.Count(body, []byte("\nevent: ")) + boolInt(bytes.HasPrefix(body, []byte("event: "))); eventLines != (got > 0) {
			t.Fatalf("event lines relayed: %d, want some: %v", got, eventLines)
		}
		evs := respEvents(t, body)
		last := evs[len(evs)-1]
		if evs[0].Type != "response.created" || last.Type != "response.completed" || respText(evs) == "" {
			t.Fatalf("events %+v", evs)
		}
		var final responseObject
		json.Unmarshal(last.Response, &final)
		rec := h.recs.wait(t, 1)[0]
		checkLedger(t, rec, final.Usage)
		if !rec.Stream || rec.Outcome != grokgate.OutcomeCompleted || rec.ReasoningTokens == 0 || rec.TTFB <= 0 {
			t.Fatalf("record %+v", rec)
		}
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// TestResponsesStreamErrors: an error after the first byte reaches the
// client as a Responses error event with the next sequence number, whether
// xAI sent its own error event or the stream broke off.
func TestResponsesStreamErrors(t *testing.T) {
	for _, tc := range []struct{ directive, message string }{
		{`{"error_after":2}`, "API error: Simulated error after 2 chunks"},
		{`{"cut_after":2}`, "API error: the upstream stream ended unexpectedly before it was complete"},
	} {
		h := newHarness(t)
		resp, body := h.do(t, context.Background(), http.MethodPost, "/v1/responses", h.user,
			responsesBody("grok-4.3", "Hi #sim"+tc.directive, map[string]any{"stream": true}))
		if resp.StatusCode != 200 {
			t.Fatalf("%s: status %d", tc.directive, resp.StatusCode)
		}
		evs := respEvents(t, body)
		last := evs[len(evs)-1]
		if last.Type != "error" || last.Message != tc.message || last.Code == "" {
			t.Fatalf("%s: last event %+v of\n%s", tc.directive, last, body)
		}
		rec := h.recs.wait(t, 1)[0]
		if rec.Outcome != grokgate.OutcomeUpstreamError {
			t.Fatalf("%s: record %+v", tc.directive, rec)
		}
		if tc.directive == `{"cut_after":2}` && (!rec.Estimated || rec.CompletionTokens == 0) {
			t.Fatalf("a cut stream's record is not estimated: %+v", rec)
		}
	}
}

// TestResponsesErrorBeforeFirstByte: an error status from xAI is the OpenAI
// envelope with its status, as for chat.
func TestResponsesErrorBeforeFirstByte(t *testing.T) {
	h := newHarness(t)
	resp, body := h.do(t, context.Background(), http.MethodPost, "/v1/responses", h.user,
		responsesBody("grok-4.3", `Hi #sim{"status":429}`, map[string]any{"stream": true}))
	var env struct {
		Error struct{ Message, Type string } `json:"error"`
	}
	if resp.StatusCode != 429 || json.Unmarshal(body, &env) != nil || env.Error.Message == "" {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
}

// TestResponsesOwnership: a stored response is its creator key's alone;
// to another key, reading, continuing or deleting it looks exactly like an
// id that never existed.
func TestResponsesOwnership(t *testing.T) {
	h := newHarness(t)
	other := h.mint(t, "other", grokgate.RoleUser, nil)
	ctx := context.Background()
	_, body := h.do(t, ctx, http.MethodPost, "/v1/responses", h.user, responsesBody("grok-4.3", "Remember 7.", nil))
	var first responseObject
	if err := json.Unmarshal(body, &first); err != nil || first.ID == "" {
		t.Fatalf("create: %s", body)
	}
	const unknown = "00000000-0000-4000-8000-000000000000"
	same := func(what string, a *http.Response, ab []byte, b *http.Response, bb []byte) {
		t.Helper()
		if a.StatusCode != 404 || b.StatusCode != 404 {
			t.Fatalf("%s: statuses %d and %d, want 404", what, a.StatusCode, b.StatusCode)
		}
		if x, y := strings.ReplaceAll(string(ab), first.ID, "ID"), strings.ReplaceAll(string(bb), unknown, "ID"); x != y {
			t.Fatalf("%s: another key's id answers\n%s\nbut an unknown id\n%s", what, x, y)
		}
	}
	for _, method := range []string{http.MethodGet, http.MethodDelete} {
		a, ab := h.do(t, ctx, method, "/v1/responses/"+first.ID, other, "")
		b, bb := h.do(t, ctx, method, "/v1/responses/"+unknown, other, "")
		same(method, a, ab, b, bb)
	}
	a, ab := h.do(t, ctx, http.MethodPost, "/v1/responses", other, responsesBody("grok-4.3", "What number?", map[string]any{"previous_response_id": first.ID}))
	b, bb := h.do(t, ctx, http.MethodPost, "/v1/responses", other, responsesBody("grok-4.3", "What number?", map[string]any{"previous_response_id": unknown}))
	same("previous_response_id", a, ab, b, bb)
	// An output item's id embeds its response's id.
	item := map[string]any{"type": "message", "role": "assistant", "id": "msg_" + first.ID, "content": []map[string]any{{"type": "output_text", "text": "7"}}}
	a, ab = h.do(t, ctx, http.MethodPost, "/v1/responses", other, responsesBody("grok-4.3", "", map[string]any{"input": []any{item, map[string]any{"role": "user", "content": "And?"}}}))
	if a.StatusCode != 404 {
		t.Fatalf("another key's item id: status %d: %s", a.StatusCode, ab)
	}

	// The owner reads, continues and deletes it.
	resp, body := h.do(t, ctx, http.MethodGet, "/v1/responses/"+first.ID, h.user, "")
	if resp.StatusCode != 200 || !strings.Contains(string(body), first.ID) {
		t.Fatalf("owner's GET: %d %s", resp.StatusCode, body)
	}
	resp, body = h.do(t, ctx, http.MethodPost, "/v1/responses", h.user, responsesBody("grok-4.3", "What number?", map[string]any{"previous_response_id": first.ID}))
	if resp.StatusCode != 200 || !strings.Contains(string(body), "(turn 2)") {
		t.Fatalf("owner's continuation: %d %s", resp.StatusCode, body)
	}
	resp, body = h.do(t, ctx, http.MethodDelete, "/v1/responses/"+first.ID, h.user, "")
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"deleted":true`) {
		t.Fatalf("owner's DELETE: %d %s", resp.StatusCode, body)
	}
	if resp, _ := h.do(t, ctx, http.MethodGet, "/v1/responses/"+first.ID, h.user, ""); resp.StatusCode != 404 {
		t.Fatalf("GET after DELETE: %d", resp.StatusCode)
	}
	if _, err := h.store.ResponseOwner(ctx, first.ID, h.now()); err == nil {
		t.Fatal("the deleted response's owner is still recorded")
	}

	// Reads are metered, never billed. The other key's seven refusals
	// reach the ledger as one record counting them (once a minute, or at
	// shutdown, as here).
	h.srv.FlushRefusals()
	var refused int64
	for _, rec := range h.recs.wait(t, 6) {
		if rec.Outcome == grokgate.OutcomeRejected {
			refused += rec.Count
		}
		if rec.Route != "/responses" {
			t.Fatalf("record on route %q", rec.Route)
		}
		if rec.Status != 200 && (rec.CostTicks != 0 || rec.PromptTokens != 0) {
			t.Fatalf("a refused request was billed: %+v", rec)
		}
	}
	if refused != 8 {
		t.Errorf("the ledger counts %d refused requests, want 8: the other key's 7 and the owner's GET after DELETE", refused)
	}
}

// TestResponsesCompactOwnership: the compaction item /responses/compact
// answers is made to be sent back as input, and its id (cmp_<id>) embeds the
// compaction's id: the key that compacted may send it back, another key
// gets the 404 of an unknown id.
func TestResponsesCompactOwnership(t *testing.T) {
	h := newHarness(t)
	other := h.mint(t, "other", grokgate.RoleUser, nil)
	ctx := context.Background()
	resp, body := h.do(t, ctx, http.MethodPost, "/v1/responses/compact", h.user, responsesBody("grok-4.3", "My name is Ada.", nil))
	var compacted struct {
		Object string           `json:"object"`
		Output []map[string]any `json:"output"`
	}
	if err := json.Unmarshal(body, &compacted); err != nil || resp.StatusCode != 200 || compacted.Object != "response.compaction" ||
		len(compacted.Output) != 1 || compacted.Output[0]["type"] != "compaction" {
		t.Fatalf("compact: %d %s", resp.StatusCode, body)
	}
	input := map[string]any{"input": []any{compacted.Output[0], map[string]any{"role": "user", "content": "What is my name?"}}}
	resp, body = h.do(t, ctx, http.MethodPost, "/v1/responses", h.user, responsesBody("grok-4.3", "", input))
	if resp.StatusCode != 200 {
		t.Fatalf("the compacting key sending its compaction back: %d %s", resp.StatusCode, body)
	}
	resp, body = h.do(t, ctx, http.MethodPost, "/v1/responses", other, responsesBody("grok-4.3", "", input))
	if resp.StatusCode != 404 || !strings.Contains(string(body), "response_not_found") {
		t.Fatalf("another key sending the compaction: %d %s", resp.StatusCode, body)
	}
}

// TestResponsesToolPolicy: a key limited to some server-side tools is
// refused any other, named in the answer; function tools are always allowed.
func TestResponsesToolPolicy(t *testing.T) {
	h := newHarness(t)
	k, secret := h.mintKey(t, "tools", grokgate.RoleUser)
	k.AllowedTools = []string{"web_search"}
	if _, err := h.store.UpdateKey(context.Background(), k.ID, grokgate.KeyUpdate{AllowedTools: &k.AllowedTools}); err != nil {
		t.Fatal(err)
	}
	h.waitKeys(t, secret, func(k *grokgate.Key) bool { return len(k.AllowedTools) == 1 })
	ctx := context.Background()
	resp, body := h.do(t, ctx, http.MethodPost, "/v1/responses", secret,
		responsesBody("grok-4.3", "Search.", map[string]any{"tools": []map[string]any{{"type": "x_search"}}}))
	if resp.StatusCode != 403 || !strings.Contains(string(body), "tool_not_allowed") || !strings.Contains(string(body), "web_search") {
		t.Fatalf("x_search: %d %s", resp.StatusCode, body)
	}
	fn := map[string]any{"type": "function", "name": "get_weather", "parameters": map[string]any{"type": "object"}}
	h.srv.FlushRefusals() // the refusal's record first, as recs[0]
	resp, body = h.do(t, ctx, http.MethodPost, "/v1/responses", secret,
		responsesBody("grok-4.3", "Search.", map[string]any{"tools": []map[string]any{{"type": "web_search"}, fn}}))
	if resp.StatusCode != 200 {
		t.Fatalf("web_search: %d %s", resp.StatusCode, body)
	}
	var r responseObject
	json.Unmarshal(body, &r)
	recs := h.recs.wait(t, 2)
	rec := recs[1]
	if rec.ToolCalls.WebSearch == 0 || rec.ToolCalls.WebSearch != r.Usage.Tools.WebSearch || rec.CostTicks != r.Usage.Cost {
		t.Fatalf("record %+v, usage %+v", rec, r.Usage)
	}
}

// TestResponsesVisionStream: input_image with stream:true follows the
// vision stream mode as chat does.
func TestResponsesVisionStream(t *testing.T) {
	img := map[string]any{"role": "user", "content": []map[string]any{
		{"type": "input_text", "text": "What is this?"},
		{"type": "input_image", "image_url": "https://example.com/cat.png"}}}
	body := responsesBody("grok-4.3", "", map[string]any{"input": []any{img}, "stream": true})
	for _, mode := range []VisionStream{VisionStreamJSON, VisionStreamEmulate, VisionStreamNative} {
		h := newHarnessConfig(t, func(c *Config) { c.VisionStream = mode })
		resp, got := h.do(t, context.Background(), http.MethodPost, "/v1/responses", h.user, body)
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d %s", mode, resp.StatusCode, got)
		}
		fallback := resp.Header.Get("X-Stream-Fallback") == "true"
		switch mode {
		case VisionStreamJSON:
			var r responseObject
			if !fallback || json.Unmarshal(got, &r) != nil || r.Status != "completed" {
				t.Fatalf("fallback: %v %s", resp.Header, got)
			}
		case VisionStreamEmulate, VisionStreamNative:
			evs := respEvents(t, got)
			if fallback != (mode == VisionStreamEmulate) || evs[len(evs)-1].Type != "response.completed" || respText(evs) == "" {
				t.Fatalf("%s: %v %s", mode, resp.Header, got)
			}
		}
		rec := h.recs.wait(t, 1)[0]
		if rec.Outcome != grokgate.OutcomeCompleted || rec.Fallback != (mode != VisionStreamNative) || rec.Estimated {
			t.Fatalf("%s: record %+v", mode, rec)
		}
	}
}

func TestResponsesBadBodies(t *testing.T) {
	h := newHarness(t)
	for _, tc := range []struct{ body, param string }{
		{`{"input":"x"}`, "model"},
		{`{"model":"grok-4.3"}`, "input"},
		{`{"model":"grok-4.3","input":5}`, "input"},
		{`{"model":"grok-4.3","input":"x","stream":"yes"}`, "stream"},
		{`{"model":"grok-4.3","input":"x","max_output_tokens":0}`, "max_output_tokens"},
		{`{"model":"grok-4.3","input":"x","tools":[{"name":"f"}]}`, "tools[0].type"},
		{`{"model":"grok-4.3","input":"x","model":"grok-3"}`, "model"},
		{`{"model":"grok-4.3","input":[{"type":"message","role":"user","content":[{"type":"input_text","text":"a","text":"b"}]}]}`, "input[0].content[0].text"},
	} {
		resp, body := h.do(t, context.Background(), http.MethodPost, "/v1/responses", h.user, tc.body)
		var env struct {
			Error struct {
				Param   *string `json:"param"`
				Message string  `json:"message"`
			} `json:"error"`
		}
		if resp.StatusCode != 400 || json.Unmarshal(body, &env) != nil || env.Error.Param == nil || *env.Error.Param != tc.param {
			t.Errorf("%s: %d %s, want 400 naming %s", tc.body, resp.StatusCode, body, tc.param)
		}
	}
}

func TestModelRetrieve(t *testing.T) {
	h := newHarness(t)
	limited := h.mint(t, "limited", grokgate.RoleUser, []string{"grok-4.3"})
	ctx := context.Background()
	resp, body := h.do(t, ctx, http.MethodGet, "/api/v1/models/grok-4.3", limited, "")
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"id":"grok-4.3"`) {
		t.Fatalf("allowed model: %d %s", resp.StatusCode, body)
	}
	a, ab := h.do(t, ctx, http.MethodGet, "/api/v1/models/grok-3", limited, "")
	b, bb := h.do(t, ctx, http.MethodGet, "/api/v1/models/grok-nonexistent", h.user, "")
	if a.StatusCode != 404 || b.StatusCode != 404 ||
		strings.ReplaceAll(string(ab), "grok-3", "M") != strings.ReplaceAll(string(bb), "grok-nonexistent", "M") {
		t.Fatalf("a model the key may not use: %d %s; an unknown one: %d %s", a.StatusCode, ab, b.StatusCode, bb)
	}
}

// TestResponsesCompact: /responses/compact is billed like a response and
// refuses a previous_response_id the key does not own.
func TestResponsesCompact(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	resp, body := h.do(t, ctx, http.MethodPost, "/v1/responses/compact", h.user, responsesBody("grok-4.3", "A long talk.", nil))
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"compaction"`) {
		t.Fatalf("compact: %d %s", resp.StatusCode, body)
	}
	rec := h.recs.wait(t, 1)[0]
	if rec.Route != "/responses" || rec.Outcome != grokgate.OutcomeCompleted || rec.CostTicks == 0 || rec.Estimated {
		t.Fatalf("record %+v", rec)
	}
	resp, _ = h.do(t, ctx, http.MethodPost, "/v1/responses/compact", h.user,
		responsesBody("grok-4.3", "x", map[string]any{"previous_response_id": "00000000-0000-4000-8000-000000000000"}))
	if resp.StatusCode != 404 {
		t.Fatalf("compact of an unknown response: %d", resp.StatusCode)
	}
	if resp, _ := h.do(t, ctx, http.MethodGet, "/v1/responses/compact", h.user, ""); resp.StatusCode != 405 || resp.Header.Get("Allow") != "POST" {
		t.Fatalf("GET /responses/compact: %d %v", resp.StatusCode, resp.Header)
	}
}

// TestResponsesHeartbeat: while xAI is silent before its first event, a
// Responses stream gets SSE comments, as chat does.
func TestResponsesHeartbeat(t *testing.T) {
	h := newHarnessConfig(t, func(c *Config) { c.Heartbeat = 20 * time.Millisecond })
	resp, body := h.do(t, context.Background(), http.MethodPost, "/v1/responses", h.user,
		responsesBody("grok-4.3", `Hi #sim{"ttft_ms":150}`, map[string]any{"stream": true}))
	if resp.StatusCode != 200 || !bytes.HasPrefix(body, []byte(": keep-alive\n\n")) {
		t.Fatalf("status %d, body starts %q", resp.StatusCode, body[:min(len(body), 40)])
	}
	if evs := respEvents(t, body); evs[len(evs)-1].Type != "response.completed" {
		t.Fatalf("events %+v", evs)
	}
}
