package gateway

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
)

var responsesBodies = []string{
	`{"model":"grok-4.3","input":"Hi"}`,
	`{"model":"grok-4.3","input":"Hi","stream":true,"max_output_tokens":64,"previous_response_id":"11111111-2222-4333-8444-555555555555"}`,
	`{"model":"grok-4.3","input":[{"role":"user","content":[{"type":"input_text","text":"What?"},{"type":"input_image","image_url":"https://x/y.png"}]}]}`,
	`{"model":"grok-4.3","input":[{"type":"message","role":"assistant","id":"msg_11111111-2222-4333-8444-555555555555","content":[{"type":"output_text","text":"7"}]},{"type":"function_call_output","call_id":"c","output":"{}"}]}`,
	`{"model":"grok-4.3","input":"x","tools":[{"type":"web_search"},{"type":"function","name":"f"},{"type":"mcp","server_url":"https://m","authorization":"secret"}]}`,
	`{"model":"grok-4.3","input":"x","instructions":"Be brief."}`,
	`{"model":"grok-4.3","input":"x","tools":[{"name":"f"}]}`,
	`{"model":"grok-4.3","input":"x","model":"grok-3"}`,
	`{"model":"grok-4.3","input":5}`,
	`{"model":"grok-4.3","input":"x","max_output_tokens":-1}`,
	`[]`, ``, `{"model":"grok-4.3","input":[{"type":"message","content":{"a":1}}]}`,
}

// FuzzParseResponses: whatever the body, the validator answers a 400 that
// says what to fix, or accepts valid JSON with a model; it never panics.
func FuzzParseResponses(f *testing.F) {
	for _, b := range responsesBodies {
		f.Add([]byte(b))
	}
	f.Add([]byte(`{"model":"grok-4.3","Input":"x","previous_response_ID":"y"}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		noVariantSkipped(t, body, reflect.TypeFor[*responsesRequest]())
		p, e := parseResponses(body)
		if e != nil {
			if e.Status != 400 || e.Message == "" {
				t.Fatalf("bad error %+v", e)
			}
			return
		}
		if p.model == "" || !json.Valid(body) || p.promptTokens < 0 {
			t.Fatalf("accepted %q as %+v", body, p)
		}
		for _, id := range p.referenced {
			if len(id) != 36 || !bytes.Contains(body, []byte(id)) {
				t.Fatalf("%q: referenced id %q", body, id)
			}
		}
	})
}

func TestParseResponses(t *testing.T) {
	p, e := parseResponses([]byte(responsesBodies[3]))
	if e != nil || len(p.referenced) != 1 || p.referenced[0] != "11111111-2222-4333-8444-555555555555" {
		t.Fatalf("%+v %v", p, e)
	}
	p, e = parseResponses([]byte(responsesBodies[4]))
	if e != nil || len(p.serverTools) != 2 || p.serverTools[0] != "web_search" || p.serverTools[1] != "mcp" {
		t.Fatalf("%+v %v", p, e)
	}
	p, e = parseResponses([]byte(responsesBodies[2]))
	if e != nil || !p.hasImage || p.promptTokens <= 0 {
		t.Fatalf("%+v %v", p, e)
	}
	for id, want := range map[string]bool{
		"msg_11111111-2222-4333-8444-555555555555":  true,
		"fc_11111111-2222-4333-8444-555555555555_0": true,
		"msg_11111111-2222-4333-8444-55555555555":   false,
		"msg_11111111-2222-4333-8444-555555555555x": false,
		"11111111-2222-4333-8444-555555555555":      false,
	} {
		if _, ok := embeddedResponseID(id); ok != want {
			t.Errorf("embeddedResponseID(%q) = %v", id, ok)
		}
	}
}
