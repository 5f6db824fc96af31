package usage

import (
	"bytes"
	"testing"
)

const respStream = `{"type":"response.created","sequence_number":0,"response":{"id":"r1","model":"grok-4.3","status":"in_progress","usage":null,"error":null}}
{"type":"response.reasoning_summary_text.delta","sequence_number":1,"delta":"thinking"}
{"type":"response.output_text.delta","sequence_number":2,"delta":"He said \"response.completed\""}
{"type":"response.output_text.delta","sequence_number":3,"delta":"!"}
{"type":"response.completed","sequence_number":4,"response":{"id":"r1","model":"grok-4.3","status":"completed","error":null,"usage":{"input_tokens":10,"input_tokens_details":{"cached_tokens":4},"output_tokens":30,"output_tokens_details":{"reasoning_tokens":20},"total_tokens":40,"cost_in_usd_ticks":999,"server_side_tool_usage_details":{"web_search_calls":2,"mcp_calls":1}}}}`

func TestResponsesMeter(t *testing.T) {
	m := NewResponsesMeter()
	lines := bytes.Split([]byte(respStream), []byte("\n"))
	for i, l := range lines {
		end := m.Observe(l)
		if end != (i == len(lines)-1) {
			t.Fatalf("event %d: terminal %v", i, end)
		}
	}
	// total = input + output: reasoning is inside output_tokens.
	want := Usage{Prompt: 10, Completion: 10, Reasoning: 20, Cached: 4, CostTicks: 999}
	if !m.HaveUsage || m.Usage != want || m.ID != "r1" || m.Model != "grok-4.3" || m.Seq != 4 ||
		m.Tools.WebSearch != 2 || m.Tools.MCP != 1 || m.Terminal != ResponseCompleted {
		t.Fatalf("%+v", m)
	}
	if m.ReasoningBytes != int64(len("thinking")) || m.ContentBytes != int64(len(`He said "response.completed"!`)) {
		t.Fatalf("bytes %d %d", m.ContentBytes, m.ReasoningBytes)
	}
}

func TestResponsesMeterReasoningOnTop(t *testing.T) {
	m := NewResponsesMeter()
	m.Observe([]byte(`{"type":"response.completed","sequence_number":0,"response":{"usage":{"input_tokens":10,"output_tokens":30,"output_tokens_details":{"reasoning_tokens":20},"total_tokens":60}}}`))
	if m.Usage.Completion != 30 || m.Usage.Reasoning != 20 {
		t.Fatalf("%+v", m.Usage)
	}
}

func TestResponsesMeterErrorEvent(t *testing.T) {
	m := NewResponsesMeter()
	if !m.Observe([]byte(`{"type":"error","code":"Internal error","message":"boom","param":null,"sequence_number":7}`)) ||
		m.Terminal != ResponseError || m.ErrorMessage != "boom" || m.ErrorCode != "Internal error" || m.Seq != 7 {
		t.Fatalf("%+v", m)
	}
}

// FuzzResponsesMeter: any event data, however malformed, is metered
// without a panic, and counts never go negative.
func FuzzResponsesMeter(f *testing.F) {
	for _, l := range bytes.Split([]byte(respStream), []byte("\n")) {
		f.Add(l)
	}
	f.Add([]byte(`{"type":"error","code":5,"message":"x","sequence_number":99999999999999999999}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		m := NewResponsesMeter()
		m.Observe(data)
		m.Observe(data)
		if m.ContentBytes < 0 || m.ReasoningBytes < 0 || m.Seq < -1 {
			t.Fatalf("%+v", m)
		}
	})
}
