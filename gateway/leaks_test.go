package gateway

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/grokgate/grokgate"
)

// TestUpstreamErrorsCarryNoAccount: xAI's 404 for an unknown model names
// the operator's team id; relayed, it would tell every caller. grokgate
// passes the message on without it, on every route that relays one.
func TestUpstreamErrorsCarryNoAccount(t *testing.T) {
	h := newHarness(t)
	for _, c := range []struct{ path, body string }{
		{"/v1/chat/completions", `{"model":"grok-9","messages":[{"role":"user","content":"hi"}]}`},
		{"/v1/images/generations", `{"model":"grok-9","prompt":"a cat"}`},
		{"/v1/models/grok-9", ""},
	} {
		method := "POST"
		if c.body == "" {
			method = "GET"
		}
		resp, b := h.do(t, context.Background(), method, c.path, h.user, c.body)
		if resp == nil || resp.StatusCode != 404 {
			t.Fatalf("%s: %s, want 404", c.path, b)
		}
		var env struct{ Error struct{ Message string } }
		json.Unmarshal(b, &env)
		if !strings.Contains(env.Error.Message, "does not exist") {
			t.Errorf("%s: message %q lost upstream's meaning", c.path, env.Error.Message)
		}
		for _, f := range strings.Fields(env.Error.Message) {
			if len(f) == 36 && strings.Count(f, "-") == 4 {
				t.Errorf("%s: message %q carries a team id", c.path, env.Error.Message)
			}
		}
	}
}

// TestVisionRefusalNamesOnlyUsableModels: the answer to a text-only model
// on /vision/analyze suggests only vision models the key may use.
func TestVisionRefusalNamesOnlyUsableModels(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	narrow := h.mint(t, "narrow", grokgate.RoleUser, []string{"grok-3", "grok-4.3"})
	textOnly := h.mint(t, "text-only", grokgate.RoleUser, []string{"grok-3"})
	h.waitKeys(t, textOnly, func(*grokgate.Key) bool { return true })
	body := `{"model":"grok-3","image_url":"https://example.com/a.png"}`
	resp, b := h.do(t, ctx, "POST", "/v1/vision/analyze", narrow, body)
	var env struct {
		Error struct{ Code, Message string }
	}
	json.Unmarshal(b, &env)
	if resp == nil || resp.StatusCode != 400 || env.Error.Code != "model_not_vision_capable" {
		t.Fatalf("%s", b)
	}
	if !strings.HasSuffix(env.Error.Message, "use one that does: grok-4.3.") {
		t.Errorf("message %q names models the key may not use", env.Error.Message)
	}
	resp, b = h.do(t, ctx, "POST", "/v1/vision/analyze", textOnly, body)
	if resp == nil || resp.StatusCode != 400 || strings.Contains(string(b), "grok-4") || !strings.Contains(string(b), "ask the grokgate operator") {
		t.Errorf("a key with no vision model: %s", b)
	}
	// A model the key may not use is refused as such, before its kind is judged.
	resp, b = h.do(t, ctx, "POST", "/v1/vision/analyze", textOnly, `{"model":"grok-code-fast-1","image_url":"https://example.com/a.png"}`)
	if resp == nil || resp.StatusCode != 403 || strings.Contains(string(b), "grok-4") {
		t.Errorf("a model the key may not use: %s", b)
	}
}
