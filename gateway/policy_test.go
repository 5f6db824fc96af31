package gateway

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/grokgate/grokgate"
	"github.com/grokgate/grokgate/ratelimit"
)

// meteredRoute is a route that names a model or costs money, with a body
// that succeeds for a key without restrictions.
type meteredRoute struct {
	path  string
	body  string // uses the route's model
	model string
	tools bool // the body can name server-side tools
}

func meteredRoutes() []meteredRoute {
	return []meteredRoute{
		{"/v1/chat/completions", `{"model":"grok-4.3","messages":[{"role":"user","content":"hi"}]}`, "grok-4.3", false},
		{"/v1/vision/analyze", `{"model":"grok-4.3","image_url":"https://example.com/cat.png","prompt":"what?"}`, "grok-4.3", false},
		{"/v1/images/generations", `{"model":"grok-imagine-image","prompt":"a cat"}`, "grok-imagine-image", false},
		{"/v1/images/generate", `{"model":"grok-imagine-image","prompt":"a cat"}`, "grok-imagine-image", false},
		{"/v1/responses", `{"model":"grok-4.3","input":"hi","tools":[{"type":"web_search"}]}`, "grok-4.3", true},
		{"/v1/responses/compact", `{"model":"grok-4.3","input":"hi","tools":[{"type":"web_search"}]}`, "grok-4.3", true},
	}
}

// TestEveryPolicyOnEveryRoute: each key policy (allowed models, allowed
// tools, requests per minute, budget) refuses on every route that uses a
// model or costs money, with the policy's own status and code, and the
// unrestricted key gets through on each.
func TestEveryPolicyOnEveryRoute(t *testing.T) {
	h := newHarnessConfig(t, func(c *Config) { c.Limiter = ratelimit.New(time.Now, time.Minute) })
	type policy struct {
		name   string
		set    func(k *grokgate.Key, rt meteredRoute)
		warm   int // requests that pass before the refusal
		status int
		code   string
		tools  bool // applies only to routes whose body names tools
	}
	policies := []policy{
		{"allowed_models", func(k *grokgate.Key, _ meteredRoute) { k.AllowedModels = []string{"grok-3-mini"} }, 0, 403, "model_not_allowed", false},
		{"allowed_tools", func(k *grokgate.Key, _ meteredRoute) { k.AllowedTools = []string{"x_search"} }, 0, 403, "tool_not_allowed", true},
		{"rpm", func(k *grokgate.Key, _ meteredRoute) { k.Limits.RPM = 1 }, 1, 429, "rate_limit_requests", false},
		{"budget", func(k *grokgate.Key, _ meteredRoute) { k.Limits.BudgetTicksPerDay = 1 }, 1, 429, "budget_exceeded", false},
	}
	for _, rt := range meteredRoutes() {
		for _, p := range policies {
			if p.tools && !rt.tools {
				continue
			}
			t.Run(rt.path+"/"+p.name, func(t *testing.T) {
				_, secret := h.mintWith(t, p.name, func(k *grokgate.Key) { p.set(k, rt) })
				for i := range p.warm {
					if resp, b := h.do(t, context.Background(), "POST", rt.path, secret, rt.body); resp == nil || resp.StatusCode != 200 {
						t.Fatalf("request %d before the refusal: %v %s", i+1, resp, b)
					}
				}
				resp, b := h.do(t, context.Background(), "POST", rt.path, secret, rt.body)
				var env struct {
					Error struct{ Code, Message string }
				}
				json.Unmarshal(b, &env)
				if resp == nil || resp.StatusCode != p.status || env.Error.Code != p.code {
					t.Fatalf("got %s, want %d %s", b, p.status, p.code)
				}
			})
		}
		t.Run(rt.path+"/unrestricted", func(t *testing.T) {
			if resp, b := h.do(t, context.Background(), "POST", rt.path, h.user, rt.body); resp == nil || resp.StatusCode != http.StatusOK {
				t.Fatalf("unrestricted key: %v %s", resp, b)
			}
		})
	}
}
