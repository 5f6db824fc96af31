package usage

import (
	"bytes"
	"encoding/json"
	"testing"
)

func TestStreamMeter(t *testing.T) {
	events := []string{
		`{"id":"abc","object":"chat.completion.chunk","created":1,"model":"grok-4.3","choices":[{"index":0,"delta":{"reasoning_content":"Think","role":"assistant"}}],"system_fingerprint":"fp"}`,
		`{"id":"abc","object":"chat.completion.chunk","created":1,"model":"grok-4.3","choices":[{"index":0,"delta":{"content":"Hé \"usage\": \\n"}}],"system_fingerprint":"fp"}`,
		`{"id":"abc","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"f","arguments":"{\"a\":1}"}}]}}]}`,
		`{"id":"abc","choices":[{"index":0,"delta":{"content":null}}]}`,
		`{"id":"abc","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}`,
		`{"id":"abc","object":"chat.completion.chunk","created":1,"model":"grok-4.3","choices":[],"usage":{"prompt_tokens":165,"completion_tokens":2,"total_tokens":296,"prompt_tokens_details":{"text_tokens":165,"audio_tokens":0,"image_tokens":0,"cached_tokens":164},"completion_tokens_details":{"reasoning_tokens":129,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0},"num_sources_used":0,"cost_in_usd_ticks":739000},"system_fingerprint":"fp"}`,
	}
	var m StreamMeter
	for i, ev := range events {
		got := m.Observe([]byte(ev))
		if want := i == len(events)-1; got != want {
			t.Errorf("event %d: usage chunk = %v, want %v", i, got, want)
		}
		if i < len(events)-1 && m.HaveUsage {
			t.Fatalf("event %d: usage seen early (the content mentions \"usage\")", i)
		}
	}
	if id, model := m.Head(); id != "abc" || model != "grok-4.3" {
		t.Errorf("id %q model %q", id, model)
	}
	want := Usage{Prompt: 165, Completion: 2, Reasoning: 129, Cached: 164, CostTicks: 739000}
	if !m.HaveUsage || m.Usage != want {
		t.Errorf("usage %+v (have %v), want %+v", m.Usage, m.HaveUsage, want)
	}
	// `Hé "usage": \n` decodes to 15 bytes (é is 2); the arguments {"a":1}
	// are 7; the reasoning "Think" 5.
	if m.ContentBytes != 15+7 || m.ReasoningBytes != 5 {
		t.Errorf("content %d reasoning %d bytes, want 22 and 5", m.ContentBytes, m.ReasoningBytes)
	}
}

// TestStreamMeterUsageOnChoiceChunk: usage riding on a chunk that also has
// choices is counted, but that chunk is not the usage-only chunk.
func TestStreamMeterUsageOnChoiceChunk(t *testing.T) {
	var m StreamMeter
	if m.Observe([]byte(`{"id":"x","choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":4}}`)) {
		t.Error("a chunk with choices was called the usage-only chunk")
	}
	if !m.HaveUsage || m.Usage.Prompt != 3 || m.Usage.Completion != 4 {
		t.Errorf("usage %+v", m.Usage)
	}
	var n StreamMeter
	if n.Observe([]byte(`{"id":"x","choices":[],"usage":null}`)) || n.HaveUsage {
		t.Error("usage:null was taken for usage")
	}
}

func TestStringBytesMatchesDecoding(t *testing.T) {
	for _, s := range []string{"", "plain", "tab\there", `quote " and \ slash`, "ünïcödé ✓", "\u0001ctl"} {
		b, _ := json.Marshal(map[string]string{"content": s})
		if got := stringBytes(b, `"content"`); got != int64(len(s)) {
			t.Errorf("%q: %d bytes, want %d", s, got, len(s))
		}
	}
}

func TestParseCompletion(t *testing.T) {
	body := []byte(`{"id":"c1","object":"chat.completion","model":"grok-4.3","choices":[{"index":0,"message":{"role":"assistant","content":"Hi there"},"finish_reason":"stop"}],"usage":{"prompt_tokens":10,"completion_tokens":2,"total_tokens":14,"prompt_tokens_details":{"cached_tokens":4},"completion_tokens_details":{"reasoning_tokens":2},"cost_in_usd_ticks":55}}`)
	id, model, u, ok := ParseCompletion(body)
	if !ok || id != "c1" || model != "grok-4.3" || u != (Usage{Prompt: 10, Completion: 2, Reasoning: 2, Cached: 4, CostTicks: 55}) {
		t.Errorf("got %q %q %+v %v", id, model, u, ok)
	}
	if _, _, _, ok := ParseCompletion([]byte(`{"id":"c1","choices":[]}`)); ok {
		t.Error("a body without usage reported usage")
	}
	if c, r := GeneratedBytes(body); c != 8 || r != 0 {
		t.Errorf("GeneratedBytes = %d, %d", c, r)
	}
}

func TestEstimates(t *testing.T) {
	for n, want := range map[int64]int64{0: 0, 1: 1, 4: 1, 5: 2, 400: 100} {
		if got := TokensForBytes(n); got != want {
			t.Errorf("TokensForBytes(%d) = %d, want %d", n, got, want)
		}
	}
	body := []byte(`{"model":"m","messages":[{"role":"system","content":"You are terse."},` +
		`{"role":"user","content":[{"type":"text","text":"abcdefgh"},{"type":"image_url","image_url":{"url":"https://x/y.png"}}]},` +
		`{"role":"assistant","content":null}]}`)
	// (3 + ceil(14/4)) + (3 + 2 + 256) + 3
	if got := EstimatePromptTokens(body); got != 7+261+3 {
		t.Errorf("EstimatePromptTokens = %d, want %d", got, 7+261+3)
	}
	if got := EstimatePromptTokens([]byte(`not json`)); got != 0 {
		t.Errorf("bad body: %d", got)
	}
}

func BenchmarkStreamMeterObserve(b *testing.B) {
	ev := []byte(`{"id":"53ae","object":"chat.completion.chunk","created":1773345550,"model":"grok-4.3","choices":[{"index":0,"delta":{"content":" harbor"}}],"system_fingerprint":"fp_3d7ed3b779"}`)
	var m StreamMeter
	m.Observe(ev)
	b.ReportAllocs()
	b.SetBytes(int64(len(ev)))
	for b.Loop() {
		m.Observe(ev)
	}
}

// TestParseCompletionFastMatchesFull: the shortcut reads what a full decode
// reads, for xAI's layout and for bodies built to mislead it.
func TestParseCompletionFastMatchesFull(t *testing.T) {
	full := func(body []byte) (string, string, Usage, bool) {
		var c struct {
			ID    string     `json:"id"`
			Model string     `json:"model"`
			Usage *wireUsage `json:"usage"`
		}
		if json.Unmarshal(body, &c) != nil || c.Usage == nil {
			return "", "", Usage{}, false
		}
		return c.ID, c.Model, c.Usage.usage(), true
	}
	bodies := []string{
		`{"id":"c1","object":"chat.completion","model":"grok-4.3","choices":[{"index":0,"message":{"role":"assistant","content":"say \"usage\": {\"prompt_tokens\": 99} and \"id\":\"x\""}}],"usage":{"prompt_tokens":5,"completion_tokens":2,"total_tokens":9,"prompt_tokens_details":{"cached_tokens":1},"completion_tokens_details":{"reasoning_tokens":2},"cost_in_usd_ticks":77}}`,
		`{"id":"c\u0032","model":"m","usage":{"prompt_tokens":1}}`,
		`{"model":"m","id":"late","choices":[{"message":{"tool_calls":[{"id":"call_1"}]}}],"usage":{"completion_tokens":3}}`,
	}
	for _, b := range bodies {
		id, model, u, ok := ParseCompletion([]byte(b))
		fid, fmodel, fu, fok := full([]byte(b))
		if id != fid || model != fmodel || u != fu || ok != fok {
			t.Errorf("%s:\nfast %q %q %+v %v\nfull %q %q %+v %v", b, id, model, u, ok, fid, fmodel, fu, fok)
		}
	}
}

// FuzzScanChunk: the one-pass scan of a chat chunk gives exactly what a
// search per key gives, on any bytes (escapes, keys run together, strings
// left open, keys inside other keys' values).
func FuzzScanChunk(f *testing.F) {
	for _, s := range []string{
		`{"id":"53ae","choices":[{"index":0,"delta":{"content":" harbor","reasoning_content":"hm \"content\": x"}}]}`,
		`{"choices":[{"delta":{"tool_calls":[{"function":{"arguments":"{\"a\":1}"}}]}}],"usage":{"prompt_tokens":1}}`,
		`"content"content":"x"`, `"content":"\\"reasoning_content":"yy"`, `"content" : "a\u00e9"`, `"content":"open`,
		`"usage"`, `"usag`, `"arguments":null,"arguments":"ab"`, `""""`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		want := chunkText{
			reasoning: stringBytes(data, `"reasoning_content"`),
			content:   stringBytes(data, `"content"`),
			arguments: stringBytes(data, `"arguments"`),
			usage:     bytes.Contains(data, []byte(`"usage"`)),
		}
		if got := scanChunk(data); got != want {
			t.Fatalf("%q: scanChunk %+v, per-key searches %+v", data, got, want)
		}
	})
}

// TestStreamHead: the first event is only kept, not decoded, until its id
// and model are asked for (the relay sends it meanwhile); it is read from
// the bytes it had, not the caller's reused buffer; and a later event
// fills in only what the first lacked.
func TestStreamHead(t *testing.T) {
	first := []byte(`{"id":"first","object":"chat.completion.chunk","model":"grok-4.3","choices":[{"index":0,"delta":{"role":"assistant"}}]}`)
	var m StreamMeter
	// One allocation, the copy: decoding would add its strings and more.
	if n := testing.AllocsPerRun(1, func() { m = StreamMeter{}; m.Observe(first) }); n != 1 {
		t.Errorf("the first event cost %v allocations, want 1 (kept, not decoded)", n)
	}
	copy(first, bytes.Repeat([]byte("x"), len(first))) // the relay's buffer, reused
	m.Observe([]byte(`{"id":"usage-id","model":"other","choices":[],"usage":{"prompt_tokens":1,"completion_tokens":1}}`))
	if id, model := m.Head(); id != "first" || model != "grok-4.3" {
		t.Errorf("head %q %q, want the first event's", id, model)
	}

	var n StreamMeter
	n.Observe([]byte(`{"object":"chat.completion.chunk","choices":[{"index":0,"delta":{"role":"assistant"}}]}`))
	n.Observe([]byte(`{"id":"usage-id","model":"grok-4.3","choices":[],"usage":{"prompt_tokens":1,"completion_tokens":1}}`))
	if id, model := n.Head(); id != "usage-id" || model != "grok-4.3" {
		t.Errorf("head %q %q, want the usage chunk's for what the first lacked", id, model)
	}
}
