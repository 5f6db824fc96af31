package usage

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
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
	if id, model := m.Head(); !m.HaveUsage || m.Usage != want || id != "r1" || model != "grok-4.3" || m.Seq != 4 ||
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
	f.Add([]byte(`{"type":"response.completed","sequence_number":3,"response":{"output":[{"text":"x.delta\"\""}],"usage":{"input_tokens":1}}}`))
	f.Add([]byte(`{"type":"response.output_item.done","TYPE":"response.completed","sequence_number":3}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		m := NewResponsesMeter()
		terminal := m.Observe(data)
		m.Observe(data)
		if m.ContentBytes < 0 || m.ReasoningBytes < 0 || m.Seq < -1 {
			t.Fatalf("%+v", m)
		}
		// An event that decodes, and whose leading type is its type (as the
		// decoder reads it), ends the stream exactly when that type is
		// terminal.
		var ev terminalEvent
		typ, _, ok := leadingType(data)
		if !ok || decodeHead(data, &ev) != nil || ev.Type != string(typ) {
			return
		}
		switch want := ev.Type == ResponseCompleted || ev.Type == ResponseIncomplete || ev.Type == ResponseFailed || ev.Type == ResponseError; {
		case terminal != want:
			t.Fatalf("%q: terminal %v, its type %q says %v", data, terminal, ev.Type, want)
		case want && m.Terminal != ev.Type:
			t.Fatalf("%q: Terminal %q, want %q", data, m.Terminal, ev.Type)
		}
	})
}

// TestResponsesMeterLayouts: a stream metered from xAI's layout (type,
// then sequence_number, first) and from the same events with their members
// in another order ends in the same state: the leading-type reading is a
// shortcut, not a different meter.
func TestResponsesMeterLayouts(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "responses-stream.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	xai, sorted := NewResponsesMeter(), NewResponsesMeter()
	events := bytes.Split(bytes.TrimSpace(data), []byte("\n"))
	for i, ev := range events {
		var members map[string]json.RawMessage
		if err := json.Unmarshal(ev, &members); err != nil {
			t.Fatal(err)
		}
		other, _ := json.Marshal(members) // names sorted: "type" comes last
		if _, _, ok := leadingType(other); ok {
			t.Fatalf("event %d still leads with its type: %s", i, other)
		}
		end, otherEnd := xai.Observe(ev), sorted.Observe(other)
		if end != otherEnd || end != (i == len(events)-1) {
			t.Fatalf("event %d: terminal %v in xAI's layout, %v sorted", i, end, otherEnd)
		}
	}
	id, model := xai.Head()
	if sid, smodel := sorted.Head(); id == "" || model == "" || sid != id || smodel != model {
		t.Fatalf("head %q %q in xAI's layout, %q %q sorted", id, model, sid, smodel)
	}
	if !reflect.DeepEqual(xai, sorted) || !xai.HaveUsage || xai.Seq != int64(len(events)-1) || xai.ContentBytes == 0 {
		t.Fatalf("xAI's layout %+v\nsorted       %+v", xai, sorted)
	}
}

// TestResponsesMeterTerminal: only a terminal event ends a stream, "error"
// counts only as the event's type (every response object has an "error"
// member), and the first event names the response either way.
func TestResponsesMeterTerminal(t *testing.T) {
	for _, c := range []struct {
		name, data string
		terminal   bool
		kind, id   string
	}{
		{"created, with its error member", `{"type":"response.created","sequence_number":0,"response":{"id":"r1","model":"grok-4.3","status":"in_progress","error":null,"usage":null}}`, false, "", "r1"},
		{"a delta saying error", `{"type":"response.output_text.delta","sequence_number":4,"delta":"\"error\": no \"type\":\"error\""}`, false, "", ""},
		{"an item named error", `{"type":"response.output_item.added","sequence_number":2,"item":{"id":"fc_1","type":"function_call","name":"error","arguments":"{}","error" : "x"}}`, false, "", ""},
		{"error event", `{"type":"error","sequence_number":7,"code":"Internal error","message":"boom","param":null}`, true, ResponseError, ""},
		{"error event, spaced", `{"sequence_number": 7, "type" :	"error", "code": "Internal error", "message": "boom"}`, true, ResponseError, ""},
		{"completed", `{"type":"response.completed","sequence_number":9,"response":{"id":"r1","model":"grok-4.3","status":"completed","error":null,"usage":{"input_tokens":3,"output_tokens":2,"total_tokens":5}}}`, true, ResponseCompleted, "r1"},
	} {
		m := NewResponsesMeter()
		if got := m.Observe([]byte(c.data)); got != c.terminal || m.Terminal != c.kind {
			t.Errorf("%s: terminal %v (%q), want %v (%q)", c.name, got, m.Terminal, c.terminal, c.kind)
		}
		if c.kind == ResponseError && (m.ErrorMessage != "boom" || m.ErrorCode != "Internal error") {
			t.Errorf("%s: error %q %q", c.name, m.ErrorCode, m.ErrorMessage)
		}
		if id, _ := m.Head(); id != c.id {
			t.Errorf("%s: id %q, want %q", c.name, id, c.id)
		}
	}
}

// TestResponsesMeterDecodesOnlyFirstAndTerminal: an event that is neither
// the first nor terminal is not decoded, even when its response object has
// an "error" member (response.in_progress), so it costs no allocation.
func TestResponsesMeterDecodesOnlyFirstAndTerminal(t *testing.T) {
	m := NewResponsesMeter()
	m.Observe([]byte(`{"type":"response.created","sequence_number":0,"response":{"id":"r1","model":"grok-4.3","status":"in_progress","error":null}}`))
	inProgress := []byte(`{"type":"response.in_progress","sequence_number":1,"response":{"id":"r1","model":"grok-4.3","status":"in_progress","error":null,"usage":null}}`)
	if n := testing.AllocsPerRun(100, func() { m.Observe(inProgress) }); n != 0 {
		t.Errorf("response.in_progress cost %v allocations, want 0", n)
	}
	if m.Terminal != "" || m.Seq != 1 {
		t.Errorf("terminal %q, seq %d", m.Terminal, m.Seq)
	}
	// Nor do deltas and other events, whatever the length of their type.
	for _, ev := range []string{
		`{"type":"response.reasoning_summary_text.delta","sequence_number":2,"item_id":"rs_r1","output_index":0,"summary_index":0,"delta":"Thinking"}`,
		`{"type":"response.function_call_arguments.delta","sequence_number":3,"item_id":"fc_r1_0","output_index":1,"delta":"{\"q\":"}`,
		`{"type":"response.output_text.delta","sequence_number":4,"item_id":"msg_r1","output_index":2,"content_index":0,"delta":"Hi"}`,
		`{"type":"response.code_interpreter_call_code.done","sequence_number":5,"item_id":"ci_r1","output_index":3,"code":"print(1)"}`,
	} {
		data := []byte(ev)
		if n := testing.AllocsPerRun(100, func() { m.Observe(data) }); n != 0 {
			t.Errorf("%.40s... cost %v allocations, want 0", ev, n)
		}
	}
}

// TestResponseHead: the first event's response id and model are read
// wherever they sit in the response object, names matched without regard
// to case, and a malformed event yields what came before the fault.
func TestResponseHead(t *testing.T) {
	for _, c := range []struct{ data, id, model string }{
		{`{"type":"response.created","sequence_number":0,"response":{"id":"r1","object":"response","model":"grok-4.3","tools":[{"type":"web_search"}]}}`, "r1", "grok-4.3"},
		{`{"response":{"tools":[{"type":"function","name":"id","parameters":{"id":"x","model":"y"}}],"instructions":"model: none","model":"m","id":"r2"},"type":"response.created"}`, "r2", "m"},
		{`{"sequence_number":0,"type":"response.created","Response":{"ID":"r3","Model":"m3"}}`, "r3", "m3"},
		{`{"response":{"id":"r4","model":null}}`, "r4", ""},
		{`{"response":{"id":"r5","status":"in_progress"`, "r5", ""},
		{`{"response":"r6"}`, "", ""},
		{`[{"response":{"id":"r7"}}]`, "", ""},
		{`{"item":{"response":{"id":"nested"}},"response":{"id":"r8","model":"m8"}}`, "r8", "m8"},
		{``, "", ""},
	} {
		id, model := responseHead([]byte(c.data))
		if id != c.id || model != c.model {
			t.Errorf("%s: %q %q, want %q %q", c.data, id, model, c.id, c.model)
		}
	}
}

// BenchmarkResponseHead reads the head of a first event whose response
// object carries a request's instructions and tools, against decoding it
// whole (decodeHead), in the same run.
func BenchmarkResponseHead(b *testing.B) {
	tools := strings.Repeat(`{"type":"function","name":"lookup","description":"Looks a topic up in the team's notes and returns the passages that match.","parameters":{"type":"object","properties":{"topic":{"type":"string"}}}},`, 8)
	data := []byte(`{"type":"response.created","sequence_number":0,"response":{"id":"6f1c2f4e-8d3a-4a57-9c3b-1f2e3d4c5b6a","object":"response","created_at":1773345550,"status":"in_progress","model":"grok-4.3","instructions":"You are a concise assistant for an engineering team.","tools":[` + tools + `{"type":"web_search"}],"output":[],"usage":null,"error":null}}`)
	b.Run("head", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if id, _ := responseHead(data); id == "" {
				b.Fatal("no id")
			}
		}
	})
	b.Run("decode", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var head struct {
				Response struct {
					ID    string `json:"id"`
					Model string `json:"model"`
				} `json:"response"`
			}
			if decodeHead(data, &head) != nil || head.Response.ID == "" {
				b.Fatal("no id")
			}
		}
	})
}
