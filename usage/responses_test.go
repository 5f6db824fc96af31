package usage

import "testing"

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
		if m.ID != c.id {
			t.Errorf("%s: id %q, want %q", c.name, m.ID, c.id)
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
}
