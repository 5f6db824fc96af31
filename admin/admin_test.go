package admin

import (
	"context"
	"encoding/json"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/grokgate/grokgate"
)

func TestAdminRefusesNonAdmins(t *testing.T) {
	h := newHarness(t)
	routes := []struct{ method, path, body string }{
		{"GET", "/admin/v1/keys", ""},
		{"POST", "/admin/v1/keys", `{"name":"x"}`},
		{"GET", "/admin/v1/keys/key_1", ""},
		{"PATCH", "/admin/v1/keys/key_1", `{"name":"y"}`},
		{"POST", "/admin/v1/keys/key_1/revoke", ""},
		{"GET", "/admin/v1/usage", ""},
	}
	for _, rt := range routes {
		resp, body := h.do(t, context.Background(), rt.method, rt.path, "", rt.body)
		if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(string(body), "missing_api_key") {
			t.Errorf("%s %s without a key: %d %s", rt.method, rt.path, resp.StatusCode, body)
		}
		resp, body = h.do(t, context.Background(), rt.method, rt.path, h.user, rt.body)
		if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(body), "admin role") {
			t.Errorf("%s %s with a user key: %d %s", rt.method, rt.path, resp.StatusCode, body)
		}
	}
	if list, _ := h.store.ListKeys(context.Background()); len(list) != 2 {
		t.Errorf("refused requests changed the keys: %d keys", len(list))
	}
	resp, _ := h.do(t, context.Background(), "DELETE", "/admin/v1/keys", h.admin, "")
	if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "GET, POST" {
		t.Errorf("DELETE /admin/v1/keys: %d Allow %q", resp.StatusCode, resp.Header.Get("Allow"))
	}
}

func decode[T any](t *testing.T, b []byte) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("decoding %s: %v", b, err)
	}
	return v
}

func TestAdminKeysLifecycle(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	admin := func(method, path, body string) (*http.Response, []byte) {
		return h.do(t, ctx, method, path, h.admin, body)
	}
	resp, body := admin("POST", "/admin/v1/keys", `{"name":" ci bot ","allowed_models":["grok-3","grok-3"," grok-4.3"]}`)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("create: %d %s", resp.StatusCode, body)
	}
	created := decode[KeyView](t, body)
	if !strings.HasPrefix(created.Key, "gg-") || created.Name != "ci bot" || created.Role != "user" || created.Status != "active" ||
		strings.Join(created.AllowedModels, ",") != "grok-3,grok-4.3" || !strings.HasPrefix(created.Key, created.Prefix) {
		t.Errorf("created %+v", created)
	}
	// The new key works at once (on this replica, before any poll).
	if resp, body := h.do(t, ctx, "POST", "/v1/chat/completions", created.Key, chat("grok-3", "hi", false, false)); resp.StatusCode != 200 {
		t.Errorf("chat with the new key: %d %s", resp.StatusCode, body)
	}
	if resp, _ := h.do(t, ctx, "POST", "/v1/chat/completions", created.Key, chat("grok-4.5", "hi", false, false)); resp.StatusCode != 403 {
		t.Errorf("a model outside the list: %d", resp.StatusCode)
	}
	// The secret is shown once: never by list or get.
	_, body = admin("GET", "/admin/v1/keys", "")
	if strings.Contains(string(body), created.Key) || !strings.Contains(string(body), created.ID) {
		t.Errorf("list: %s", body)
	}
	if len(decode[struct{ Data []KeyView }](t, body).Data) != 3 {
		t.Errorf("list: %s", body)
	}
	resp, body = admin("GET", "/admin/v1/keys/"+created.ID, "")
	if resp.StatusCode != 200 || strings.Contains(string(body), created.Key) || decode[KeyView](t, body).ID != created.ID {
		t.Errorf("get: %d %s", resp.StatusCode, body)
	}
	if resp, body := admin("GET", "/admin/v1/keys/key_nope", ""); resp.StatusCode != 404 || !strings.Contains(string(body), "key_not_found") {
		t.Errorf("get missing: %d %s", resp.StatusCode, body)
	}

	exp := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
	resp, body = admin("PATCH", "/admin/v1/keys/"+created.ID, `{"name":"renamed","allowed_models":[],"expires_at":"`+exp.Format(time.RFC3339)+`"}`)
	upd := decode[KeyView](t, body)
	if resp.StatusCode != 200 || upd.Name != "renamed" || len(upd.AllowedModels) != 0 || upd.ExpiresAt == nil || !upd.ExpiresAt.Equal(exp) {
		t.Errorf("update: %d %s", resp.StatusCode, body)
	}
	resp, body = admin("PATCH", "/admin/v1/keys/"+created.ID, `{"expires_at":null}`)
	if upd := decode[KeyView](t, body); resp.StatusCode != 200 || upd.ExpiresAt != nil || upd.Name != "renamed" {
		t.Errorf("clearing the expiry: %d %s", resp.StatusCode, body)
	}
	for _, bad := range []struct{ method, path, body, want string }{
		{"POST", "/admin/v1/keys", `{}`, "'name'"},
		{"POST", "/admin/v1/keys", `{"name":"x","role":"root"}`, "'role'"},
		{"POST", "/admin/v1/keys", `{"name":"x","scopes":[]}`, `Unknown field \"scopes\"`},
		{"POST", "/admin/v1/keys", `{"name":"x","expires_at":"2001-01-01T00:00:00Z"}`, "in the future"},
		{"POST", "/admin/v1/keys", `{"name":"x","expires_at":"tomorrow"}`, "RFC 3339"},
		{"POST", "/admin/v1/keys", `[1]`, "JSON object"},
		{"PATCH", "/admin/v1/keys/" + created.ID, `{"role":"admin"}`, `Unknown field \"role\"`},
		{"PATCH", "/admin/v1/keys/" + created.ID, `{"allowed_models":["",1]}`, "allowed_models"},
		{"PATCH", "/admin/v1/keys/key_nope", `{"name":"x"}`, "key_not_found"},
	} {
		resp, body := admin(bad.method, bad.path, bad.body)
		if resp.StatusCode/100 != 4 || !strings.Contains(string(body), bad.want) {
			t.Errorf("%s %s %s: %d %s (want a 4xx mentioning %s)", bad.method, bad.path, bad.body, resp.StatusCode, body, bad.want)
		}
	}

	resp, body = admin("POST", "/admin/v1/keys/"+created.ID+"/revoke", "")
	if rv := decode[KeyView](t, body); resp.StatusCode != 200 || rv.Status != "revoked" || rv.RevokedAt == nil {
		t.Errorf("revoke: %d %s", resp.StatusCode, body)
	}
	deadline := time.Now().Add(2 * time.Second)
	for {
		resp, body := h.do(t, ctx, "POST", "/v1/chat/completions", created.Key, chat("grok-3", "hi", false, false))
		if resp.StatusCode == 401 && strings.Contains(string(body), "revoked") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the revoked key still works after 2s: %d", resp.StatusCode)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if resp, _ := admin("POST", "/admin/v1/keys/key_nope/revoke", ""); resp.StatusCode != 404 {
		t.Errorf("revoke missing: %d", resp.StatusCode)
	}
}

func TestAdminKeyExpires(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	exp := time.Now().Add(1500 * time.Millisecond).UTC()
	resp, body := h.do(t, ctx, "POST", "/admin/v1/keys", h.admin, `{"name":"short","expires_at":"`+exp.Format(time.RFC3339Nano)+`"}`)
	if resp.StatusCode != 201 {
		t.Fatalf("create: %d %s", resp.StatusCode, body)
	}
	secret := decode[KeyView](t, body).Key
	if resp, _ := h.do(t, ctx, "GET", "/v1/models", secret, ""); resp.StatusCode != 200 {
		t.Errorf("before expiry: %d", resp.StatusCode)
	}
	time.Sleep(time.Until(exp) + 10*time.Millisecond)
	resp, body = h.do(t, ctx, "GET", "/v1/models", secret, "")
	if resp.StatusCode != 401 || !strings.Contains(string(body), "expired_api_key") {
		t.Errorf("after expiry: %d %s", resp.StatusCode, body)
	}
}

func TestAdminUsage(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	keys, _ := h.store.ListKeys(ctx)
	day := time.Date(2026, 11, 2, 10, 0, 0, 0, time.UTC)
	recs := []grokgate.Record{
		{RequestID: "r1", Time: day, KeyID: keys[0].ID, Model: "grok-4.3", RequestedModel: "grok-4.3", Outcome: grokgate.OutcomeCompleted, PromptTokens: 10, CompletionTokens: 2, ReasoningTokens: 5, CachedTokens: 4, CostTicks: 100},
		{RequestID: "r2", Time: day.Add(time.Hour), KeyID: keys[0].ID, Model: "grok-3", RequestedModel: "grok-3", Outcome: grokgate.OutcomeCompleted, PromptTokens: 1, CompletionTokens: 1, CostTicks: 7,
			ToolCalls: grokgate.ToolCalls{WebSearch: 2, XSearch: 3, CodeInterpreter: 4, FileSearch: 5, MCP: 6, DocumentSearch: 7}},
		{RequestID: "r3", Time: day.Add(24 * time.Hour), KeyID: keys[1].ID, RequestedModel: "grok-4.5", Outcome: grokgate.OutcomeClientCanceled, Estimated: true, PromptTokens: 3},
	}
	if err := h.store.InsertUsage(ctx, recs); err != nil {
		t.Fatal(err)
	}
	get := func(query string) (int, map[string]any) {
		resp, body := h.do(t, ctx, "GET", "/admin/v1/usage"+query, h.admin, "")
		return resp.StatusCode, decode[map[string]any](t, body)
	}
	status, v := get("?group_by=key")
	data, _ := v["data"].([]any)
	if status != 200 || len(data) != 2 || v["group_by"] != "key" {
		t.Fatalf("by key: %d %v", status, v)
	}
	row := data[0].(map[string]any)
	if keys[0].ID > keys[1].ID {
		row = data[1].(map[string]any)
	}
	want := map[string]any{"key_id": keys[0].ID, "key_name": keys[0].Name, "requests": 2.0, "completed_requests": 2.0,
		"estimated_requests": 0.0, "prompt_tokens": 11.0, "completion_tokens": 3.0, "reasoning_tokens": 5.0,
		"cached_tokens": 4.0, "total_tokens": 19.0, "cost_in_usd_ticks": 107.0, "tool_calls": 27.0}
	for k, w := range want {
		if row[k] != w {
			t.Errorf("by key: %s = %v, want %v (row %v)", k, row[k], w, row)
		}
	}
	wantDetails := map[string]any{"web_search_calls": 2.0, "x_search_calls": 3.0, "code_interpreter_calls": 4.0,
		"file_search_calls": 5.0, "mcp_calls": 6.0, "document_search_calls": 7.0}
	if details, _ := row["tool_call_details"].(map[string]any); !reflect.DeepEqual(details, wantDetails) {
		t.Errorf("by key: tool_call_details = %v, want %v", row["tool_call_details"], wantDetails)
	}
	status, v = get("?group_by=model&from=2026-11-03")
	if data, _ := v["data"].([]any); status != 200 || len(data) != 1 || data[0].(map[string]any)["model"] != "grok-4.5" ||
		data[0].(map[string]any)["estimated_requests"] != 1.0 || v["from"] != "2026-11-03T00:00:00Z" ||
		data[0].(map[string]any)["tool_calls"] != 0.0 ||
		!reflect.DeepEqual(data[0].(map[string]any)["tool_call_details"], map[string]any{"web_search_calls": 0.0, "x_search_calls": 0.0,
			"code_interpreter_calls": 0.0, "file_search_calls": 0.0, "mcp_calls": 0.0, "document_search_calls": 0.0}) {
		t.Errorf("by model from a date: %d %v", status, v)
	}
	status, v = get("?group_by=day&to=2026-11-02")
	if data, _ := v["data"].([]any); status != 200 || len(data) != 1 || data[0].(map[string]any)["day"] != "2026-11-02" ||
		data[0].(map[string]any)["requests"] != 2.0 {
		t.Errorf("by day to a date (inclusive): %d %v", status, v)
	}
	// model keeps one model's records, named as the by-model view names
	// them: r3 was never resolved and counts under the model it asked for.
	for _, m := range []struct {
		model, day string
		requests   float64
		cost       float64
	}{{"grok-3", "2026-11-02", 1, 7}, {"grok-4.3", "2026-11-02", 1, 100}, {"grok-4.5", "2026-11-03", 1, 0}} {
		status, v = get("?group_by=day&model=" + m.model)
		data, _ := v["data"].([]any)
		if status != 200 || len(data) != 1 || data[0].(map[string]any)["day"] != m.day ||
			data[0].(map[string]any)["requests"] != m.requests || data[0].(map[string]any)["cost_in_usd_ticks"] != m.cost {
			t.Errorf("%s by day: %d %v", m.model, status, v)
		}
	}
	status, v = get("?group_by=key&model=grok-3&from=2026-11-03")
	if data, _ := v["data"].([]any); status != 200 || len(data) != 0 {
		t.Errorf("grok-3 by key after its only day: %d %v", status, v)
	}
	status, v = get("?group_by=day&model=")
	if data, _ := v["data"].([]any); status != 200 || len(data) != 2 {
		t.Errorf("an empty model filters nothing: %d %v", status, v)
	}
	status, v = get("")
	if status != 200 || v["group_by"] != "key" {
		t.Errorf("default grouping: %d %v", status, v)
	}
	for _, bad := range []struct{ query, want string }{
		{"?group_by=week", "'group_by'"},
		{"?from=yesterday", "'from'"},
		{"?to=2026-13-01", "'to'"},
		{"?from=2026-11-03&to=2026-11-02T00:00:00Z", "later than"},
		{"?groupby=key", `\"groupby\"`},
	} {
		resp, body := h.do(t, ctx, "GET", "/admin/v1/usage"+bad.query, h.admin, "")
		if resp.StatusCode != 400 || !strings.Contains(string(body), bad.want) {
			t.Errorf("%s: %d %s", bad.query, resp.StatusCode, body)
		}
	}
}

// TestAdminKeyAllowedTools: allowed_tools is set on create, changed and
// cleared by PATCH, always shown as an array, and only known server-side
// tool types are accepted.
func TestAdminKeyAllowedTools(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	admin := func(method, path, body string) (*http.Response, []byte) {
		return h.do(t, ctx, method, path, h.admin, body)
	}
	resp, body := admin("POST", "/admin/v1/keys", `{"name":"searcher","allowed_tools":["web_search"," x_search","web_search"]}`)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("create: %d %s", resp.StatusCode, body)
	}
	created := decode[KeyView](t, body)
	if !reflect.DeepEqual(created.AllowedTools, []string{"web_search", "x_search"}) {
		t.Errorf("created with tools %q, want web_search,x_search", created.AllowedTools)
	}
	stored, err := h.store.KeyByID(ctx, created.ID)
	if err != nil || !reflect.DeepEqual(stored.AllowedTools, []string{"web_search", "x_search"}) || stored.AllowsTool("mcp") {
		t.Errorf("stored %+v, %v", stored.AllowedTools, err)
	}
	resp, body = admin("GET", "/admin/v1/keys/"+created.ID, "")
	if v := decode[KeyView](t, body); resp.StatusCode != 200 || !reflect.DeepEqual(v.AllowedTools, []string{"web_search", "x_search"}) {
		t.Errorf("get: %d %s", resp.StatusCode, body)
	}

	resp, body = admin("PATCH", "/admin/v1/keys/"+created.ID, `{"allowed_tools":["mcp","code_interpreter"]}`)
	if v := decode[KeyView](t, body); resp.StatusCode != 200 || !reflect.DeepEqual(v.AllowedTools, []string{"mcp", "code_interpreter"}) || v.Name != "searcher" {
		t.Errorf("update: %d %s", resp.StatusCode, body)
	}
	resp, body = admin("PATCH", "/admin/v1/keys/"+created.ID, `{"name":"renamed"}`)
	if v := decode[KeyView](t, body); resp.StatusCode != 200 || !reflect.DeepEqual(v.AllowedTools, []string{"mcp", "code_interpreter"}) {
		t.Errorf("a rename changed the tools: %d %s", resp.StatusCode, body)
	}
	for _, clear := range []string{`{"allowed_tools":[]}`, `{"allowed_tools":null}`} {
		if _, err := h.store.UpdateKey(ctx, created.ID, grokgate.KeyUpdate{AllowedTools: &[]string{"mcp"}}); err != nil {
			t.Fatal(err)
		}
		resp, body = admin("PATCH", "/admin/v1/keys/"+created.ID, clear)
		if resp.StatusCode != 200 || !strings.Contains(string(body), `"allowed_tools":[]`) {
			t.Errorf("%s: %d %s; want allowed_tools shown as []", clear, resp.StatusCode, body)
		}
		if k, _ := h.store.KeyByID(ctx, created.ID); k.AllowedTools != nil {
			t.Errorf("%s: stored tools %q, want none (every tool)", clear, k.AllowedTools)
		}
	}
	// A key made without the field allows every tool and shows [].
	resp, body = admin("POST", "/admin/v1/keys", `{"name":"plain"}`)
	if resp.StatusCode != 201 || !strings.Contains(string(body), `"allowed_tools":[]`) {
		t.Errorf("create without tools: %d %s", resp.StatusCode, body)
	}
	_, body = admin("GET", "/admin/v1/keys", "")
	if n := strings.Count(string(body), `"allowed_tools":`); n != 4 {
		t.Errorf("list shows allowed_tools on %d of 4 keys: %s", n, body)
	}

	before, _ := h.store.KeyByID(ctx, created.ID)
	for _, bad := range []struct{ method, path, body, want string }{
		{"POST", "/admin/v1/keys", `{"name":"x","allowed_tools":["web_search","browser"]}`, `\"browser\"`},
		{"POST", "/admin/v1/keys", `{"name":"x","allowed_tools":["function"]}`, "web_search, x_search, code_interpreter"},
		{"POST", "/admin/v1/keys", `{"name":"x","allowed_tools":"web_search"}`, "must be an array"},
		{"POST", "/admin/v1/keys", `{"name":"x","allowed_tools":[1]}`, "must be an array"},
		{"PATCH", "/admin/v1/keys/" + created.ID, `{"allowed_tools":[""]}`, "must not contain empty"},
		{"PATCH", "/admin/v1/keys/" + created.ID, `{"allowed_tools":["WEB_SEARCH"]}`, "not a server-side tool"},
		{"PATCH", "/admin/v1/keys/" + created.ID, `{"allowed_tools":{}}`, "must be an array"},
	} {
		resp, body := admin(bad.method, bad.path, bad.body)
		e := decode[struct {
			Error struct{ Message, Type, Param string }
		}](t, body)
		if resp.StatusCode != 400 || e.Error.Type != "invalid_request_error" || e.Error.Param != "allowed_tools" || !strings.Contains(string(body), bad.want) {
			t.Errorf("%s %s %s: %d %s (want 400 invalid_request_error on allowed_tools mentioning %s)", bad.method, bad.path, bad.body, resp.StatusCode, body, bad.want)
		}
	}
	if list, _ := h.store.ListKeys(ctx); len(list) != 4 {
		t.Errorf("refused creates stored keys: %d keys", len(list))
	}
	if after, _ := h.store.KeyByID(ctx, created.ID); !reflect.DeepEqual(after.AllowedTools, before.AllowedTools) {
		t.Errorf("refused updates changed the tools: %q, want %q", after.AllowedTools, before.AllowedTools)
	}
}

// TestUsageShowsSpool: /admin/v1/usage says how many records wait in the
// spool and how many are dead letters; a key's own usage does not.
func TestUsageShowsSpool(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	resp, body := h.do(t, ctx, "GET", "/admin/v1/usage", h.admin, "")
	if resp.StatusCode != 200 || strings.Contains(string(body), `"spool"`) {
		t.Fatalf("without a spool: %d %s", resp.StatusCode, body)
	}
	h.api.ShowSpool(func() (int64, int64) { return 3, 1 })
	resp, body = h.do(t, ctx, "GET", "/admin/v1/usage", h.admin, "")
	v := decode[map[string]any](t, body)
	if sp, _ := v["spool"].(map[string]any); resp.StatusCode != 200 || sp["pending_records"] != 3.0 || sp["dead_letters"] != 1.0 {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	resp, body = h.do(t, ctx, "GET", "/api/v1/me/usage", h.user, "")
	if resp.StatusCode != 200 || strings.Contains(string(body), `"spool"`) {
		t.Fatalf("a user key's usage: %d %s", resp.StatusCode, body)
	}
}
