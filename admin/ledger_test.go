package admin

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/grokgate/grokgate"
)

// ledgerHarness is a harness with records of two keys in its store: even
// ones the user's, odd ones another user's, a second apart.
func ledgerHarness(t *testing.T) (h *harness, user, other grokgate.Key, userSecret string) {
	h = newHarness(t)
	userSecret = h.mint(t, "me <b>", grokgate.RoleUser)
	h.mint(t, "other", grokgate.RoleUser)
	list, err := h.store.ListKeys(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range list {
		switch k.Name {
		case "me <b>":
			user = k
		case "other":
			other = k
		}
	}
	at := time.Date(2026, 11, 3, 12, 0, 0, 0, time.UTC)
	var recs []grokgate.Record
	for i := range 7 {
		k := user
		if i%2 == 1 {
			k = other
		}
		recs = append(recs, grokgate.Record{Time: at.Add(time.Duration(i) * time.Second), RequestID: fmt.Sprintf("req_%02d", i),
			KeyID: k.ID, Route: "/chat/completions", RequestedModel: "grok-3", Model: "grok-3", Status: 200,
			Outcome: grokgate.OutcomeCompleted, PromptTokens: 10, CompletionTokens: 5, CostTicks: 1000,
			Latency: 1500 * time.Microsecond})
	}
	recs[6].Status, recs[6].Outcome = 502, grokgate.OutcomeUpstreamError
	if err := h.store.InsertUsage(context.Background(), recs); err != nil {
		t.Fatal(err)
	}
	return h, user, other, userSecret
}

type recordsPage struct {
	Data       []RecordView
	NextBefore *string `json:"next_before"`
}

func pageIDs(p recordsPage) string {
	var ids []string
	for _, r := range p.Data {
		ids = append(ids, r.RequestID)
	}
	return strings.Join(ids, ",")
}

func TestAdminRequests(t *testing.T) {
	h, user, other, _ := ledgerHarness(t)
	ctx := context.Background()
	resp, body := h.do(t, ctx, "GET", "/admin/v1/requests?limit=3", h.admin, "")
	p := decode[recordsPage](t, body)
	if resp.StatusCode != 200 || pageIDs(p) != "req_06,req_05,req_04" || p.NextBefore == nil {
		t.Fatalf("first page: %d %s", resp.StatusCode, body)
	}
	if r := p.Data[0]; r.KeyName != user.Name || r.Status != 502 || r.Outcome != "upstream_error" || r.TotalTokens != 15 ||
		r.CostTicks != 1000 || r.LatencyMS != 1.5 || r.Route != "/chat/completions" {
		t.Errorf("record view: %+v", r)
	}
	_, body = h.do(t, ctx, "GET", "/admin/v1/requests?limit=3&before="+url.QueryEscape(*p.NextBefore), h.admin, "")
	if p = decode[recordsPage](t, body); pageIDs(p) != "req_03,req_02,req_01" || p.NextBefore == nil {
		t.Errorf("second page: %s", body)
	}
	_, body = h.do(t, ctx, "GET", "/admin/v1/requests?limit=3&before="+url.QueryEscape(*p.NextBefore), h.admin, "")
	if p = decode[recordsPage](t, body); pageIDs(p) != "req_00" || p.NextBefore != nil {
		t.Errorf("last page: %s", body)
	}
	_, body = h.do(t, ctx, "GET", "/admin/v1/requests?key_id="+other.ID+"&model=grok-3", h.admin, "")
	if p = decode[recordsPage](t, body); pageIDs(p) != "req_05,req_03,req_01" {
		t.Errorf("by key: %s", body)
	}
	_, body = h.do(t, ctx, "GET", "/admin/v1/requests?status=502&outcome=upstream_error", h.admin, "")
	if p = decode[recordsPage](t, body); pageIDs(p) != "req_06" {
		t.Errorf("by status and outcome: %s", body)
	}
	for _, bad := range []struct{ query, want string }{
		{"limit=0", "'limit'"}, {"limit=501", "'limit'"}, {"status=abc", "'status'"},
		{"before=nope", "'before'"}, {"sort=time", `Unknown query parameter \"sort\"`},
	} {
		resp, body := h.do(t, ctx, "GET", "/admin/v1/requests?"+bad.query, h.admin, "")
		if resp.StatusCode != 400 || !strings.Contains(string(body), bad.want) {
			t.Errorf("?%s: %d %s", bad.query, resp.StatusCode, body)
		}
	}
	if resp, body := h.do(t, ctx, "GET", "/admin/v1/requests", h.user, ""); resp.StatusCode != 403 {
		t.Errorf("a user key on /admin/v1/requests: %d %s", resp.StatusCode, body)
	}
}

func TestMeSeesOwnDataOnly(t *testing.T) {
	h, user, other, secret := ledgerHarness(t)
	ctx := context.Background()
	resp, body := h.do(t, ctx, "GET", "/api/v1/me", secret, "")
	if me := decode[KeyView](t, body); resp.StatusCode != 200 || me.ID != user.ID || me.Key != "" || me.Name != user.Name {
		t.Errorf("GET /api/v1/me: %d %s", resp.StatusCode, body)
	}
	_, body = h.do(t, ctx, "GET", "/api/v1/me/requests", secret, "")
	if p := decode[recordsPage](t, body); pageIDs(p) != "req_06,req_04,req_02,req_00" || strings.Contains(string(body), other.ID) {
		t.Errorf("own requests: %s", body)
	}
	resp, body = h.do(t, ctx, "GET", "/api/v1/me/requests?key_id="+other.ID, secret, "")
	if resp.StatusCode != http.StatusForbidden || strings.Contains(string(body), "req_05") {
		t.Errorf("another key's requests through /me: %d %s", resp.StatusCode, body)
	}
	for _, groupBy := range []string{"key", "model", "day"} {
		resp, body := h.do(t, ctx, "GET", "/api/v1/me/usage?group_by="+groupBy, secret, "")
		if resp.StatusCode != 200 || !strings.Contains(string(body), `"requests":4`) || strings.Contains(string(body), other.ID) ||
			strings.Contains(string(body), `"other"`) {
			t.Errorf("own usage by %s: %d %s", groupBy, resp.StatusCode, body)
		}
	}
	resp, body = h.do(t, ctx, "GET", "/api/v1/me/usage?group_by=day&model=grok-3", secret, "")
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"requests":4,`) {
		t.Errorf("own usage of one model by day (the other key's 3 records are not counted): %d %s", resp.StatusCode, body)
	}
	resp, body = h.do(t, ctx, "GET", "/api/v1/me/usage?group_by=day&model=grok-4", secret, "")
	if resp.StatusCode != 200 || strings.Contains(string(body), `"requests"`) {
		t.Errorf("own usage of a model never used: %d %s", resp.StatusCode, body)
	}
	if resp, body := h.do(t, ctx, "GET", "/admin/v1/usage", secret, ""); resp.StatusCode != 403 {
		t.Errorf("a user key on /admin/v1/usage: %d %s", resp.StatusCode, body)
	}
	if resp, body := h.do(t, ctx, "GET", "/admin/v1/keys/"+other.ID, secret, ""); resp.StatusCode != 403 {
		t.Errorf("a user key reading another key: %d %s", resp.StatusCode, body)
	}
	if resp, _ := h.do(t, ctx, "GET", "/api/v1/me", "", ""); resp.StatusCode != 401 {
		t.Errorf("GET /api/v1/me without a key: %d", resp.StatusCode)
	}
}
