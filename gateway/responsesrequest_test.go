package gateway

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"

	"github.com/go-json-experiment/json/jsontext"
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

// TestReadMessagesMatchesReadItems: an input of messages read in one pass
// notes what reading it item by item notes: the same estimate, images,
// referenced ids and error.
func TestReadMessagesMatchesReadItems(t *testing.T) {
	for _, input := range []string{
		`[{"role":"system","content":"Be brief."},{"role":"user","content":"What does a gateway do?"}]`,
		`[{"type":"message","role":"assistant","id":"msg_11111111-2222-4333-8444-555555555555","content":[{"type":"output_text","text":"It relays."}]},` +
			`{"role":"user","id":"rs_22222222-2222-4333-8444-555555555555","content":[{"type":"input_text","text":"And?"},{"type":"input_image","image_url":"https://x/y.png"}]}]`,
		`[{"role":"user","content":null},{"role":"user"}]`,
		`[{"role":"user","content":5}]`,
		`[{"role":"user","content":[{"type":"input_text","text":"a"},{"text":"no type"}]}]`,
	} {
		var fast, slow parsedResponses
		ok, fastErr := fast.readMessages(jsontext.Value(input))
		if !ok {
			t.Fatalf("%s: not read in one pass", input)
		}
		slowErr := slow.readItems(jsontext.Value(input))
		if !reflect.DeepEqual(fast, slow) || !reflect.DeepEqual(fastErr, slowErr) {
			t.Errorf("%s:\none pass     %+v %v\nitem by item %+v %v", input, fast, fastErr, slow, slowErr)
		}
	}
	// Any other item, or an item that is not an object, is left to readItems.
	for _, input := range []string{`[{"role":"user","content":"x"},{"type":"function_call_output","call_id":"c","output":"{}"}]`, `[{"role":"user","content":"x"},"x"]`} {
		var p parsedResponses
		if ok, _ := p.readMessages(jsontext.Value(input)); ok || !reflect.DeepEqual(p, parsedResponses{}) {
			t.Errorf("%s: read in one pass (%v) or noted %+v", input, ok, p)
		}
	}
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
