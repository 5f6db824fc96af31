package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"github.com/grokgate/grokgate"
	"github.com/grokgate/grokgate/simulator"
)

// TestCaseVariantNamesRefused: a member whose name differs only in case from
// a field grokgate reads is refused with a 400 naming it, on every JSON
// route, so a key restricted to one model cannot slip another past the
// check in "MODEL", nor a stream past the stream limit in "STREAM".
func TestCaseVariantNamesRefused(t *testing.T) {
	h := newHarness(t)
	limited := h.mint(t, "limited", grokgate.RoleUser, []string{"grok-4.3"})
	h.waitKeys(t, limited, func(*grokgate.Key) bool { return true })
	before := h.sim.Stats().Requests
	for _, c := range []struct{ path, body, name string }{
		{"/v1/chat/completions", `{"model":"grok-4.3","MODEL":"grok-3","messages":[{"role":"user","content":"hi"}]}`, "MODEL"},
		{"/v1/chat/completions", `{"model":"grok-4.3","STREAM":true,"messages":[{"role":"user","content":"hi"}]}`, "STREAM"},
		{"/v1/chat/completions", `{"model":"grok-4.3","Messages":[],"messages":[{"role":"user","content":"hi"}]}`, "Messages"},
		{"/v1/vision/analyze", `{"model":"grok-4.3","Model":"grok-3","image_url":"https://example.com/a.png"}`, "Model"},
		{"/v1/vision/analyze", `{"model":"grok-4.3","image_url":{"url":"https://example.com/a.png","URL":"https://example.com/b.png"}}`, "image_url.URL"},
		{"/v1/images/generations", `{"model":"grok-imagine-image","Model":"grok-imagine-image-quality","prompt":"p"}`, "Model"},
		{"/v1/responses", `{"model":"grok-4.3","Model":"grok-3","input":"hi"}`, "Model"},
		{"/v1/responses", `{"model":"grok-4.3","input":[{"role":"user","Content":"x","content":"hi"}]}`, "input[0].Content"},
	} {
		resp, b := h.do(t, context.Background(), "POST", c.path, limited, c.body)
		var env struct {
			Error struct{ Message, Param string }
		}
		json.Unmarshal(b, &env)
		if resp == nil || resp.StatusCode != 400 || env.Error.Param != c.name || !strings.Contains(env.Error.Message, "differs only in case") {
			t.Errorf("%s %s: %s, want 400 naming %q", c.path, c.body, b, c.name)
		}
	}
	if n := h.sim.Stats().Requests - before; n != 0 {
		t.Errorf("%d refused requests reached upstream", n)
	}
}

// TestSimulatorNamesCaseSensitive: the simulator reads names as xAI does,
// exactly: "MODEL" is not "model", so a body with only "MODEL" has no model.
func TestSimulatorNamesCaseSensitive(t *testing.T) {
	sim := httptest.NewServer(simulator.New(simulator.Options{}))
	defer sim.Close()
	for body, want := range map[string]int{
		`{"MODEL":"grok-4.3","messages":[{"role":"user","content":"hi"}]}`:                    400,
		`{"model":"grok-4.3","Messages":[{"role":"user","content":"hi"}]}`:                    400,
		`{"model":"grok-4.3","messages":[{"role":"user","content":"hi"}],"model":"grok-4.3"}`: 422,
		`{"model":"grok-4.3","messages":[{"role":"user","content":"hi"}]}`:                    200,
	} {
		req, _ := http.NewRequest("POST", sim.URL+"/v1/chat/completions", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer sim")
		req.Header.Set("Content-Type", "application/json")
		resp, err := sim.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("%s: %d, want %d", body, resp.StatusCode, want)
		}
	}
}

// TestPlainNames: only a body whose every member name is lower-case ASCII
// without escapes is spared the name-case walk; quotes and backslashes in
// strings never make text look like a name.
func TestPlainNames(t *testing.T) {
	for _, c := range []struct {
		body  string
		plain bool
	}{
		{`{"model":"grok-4.3","messages":[{"role":"user","content":"Say \"MODEL\": 1"}]}`, true},
		{`{"model":"Grok","messages":[{"role":"user","content":"x"}],"stream":true}`, true},
		{`{"MODEL":"grok-4.3"}`, false},
		{`{"model":"x","messages":[{"Role":"user"}]}`, false},
		{`{"mod\u0065l":"x"}`, false},
		{`{"x":"\\","STREAM":true}`, false},
		{`{"x":"a\\\"b","y":1}`, true},
		{`{"mode\u212a":"x"}`, false},
		{"{\"mode\u212al\":1}", false},
		{`{"tools":[{"parameters":{"properties":{"Location":{}}}}]}`, false},
		{`["MODEL", "A": 1]`, false},
		{`{"a" : 1, "b"` + "\t" + `:"C"}`, true},
		{`{"a":"unterminated`, false},
	} {
		if got := plainNames([]byte(c.body)); got != c.plain {
			t.Errorf("plainNames(%s) = %v, want %v", c.body, got, c.plain)
		}
	}
	if !requestSchemas[reflect.TypeFor[*chatRequest]()].lower || !requestSchemas[reflect.TypeFor[*responsesRequest]()].lower {
		t.Error("the request schemas' names are lower-case, but are not marked so")
	}
	if s := newCaseSchema(reflect.TypeFor[*struct {
		A struct {
			MaxTokens int `json:"maxTokens"`
		} `json:"a"`
	}]()); s.lower {
		t.Error("a schema with the name maxTokens is marked lower-case")
	}
}

// noVariantSkipped fails if plainNames spares b, valid JSON, a walk that
// would have found a case variant in it: the fuzzers of the request
// parsers call it on every input.
func noVariantSkipped(t *testing.T, b []byte, typ reflect.Type) {
	t.Helper()
	if !json.Valid(b) || !plainNames(b) {
		return
	}
	var cv *caseVariantError
	if err := walkCase(b, requestSchemas[typ]); errors.As(err, &cv) {
		t.Fatalf("%q: plainNames passed a body with the case variant %s", b, cv.param)
	}
}
