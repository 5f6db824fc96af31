package admin

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"context"
	"github.com/grokgate/grokgate/gateway"
	"strings"
	"testing"
)

// TestAdminRefusesDuplicateNames: the admin API decodes as the API does: a
// repeated member is refused (a parser that keeps the first "role" and one
// that keeps the last would otherwise disagree on whether a key is admin),
// and no key is created.
func TestAdminRefusesDuplicateNames(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	for _, body := range []string{
		`{"name":"sneaky","role":"user","role":"admin"}`,
		`{"name":"sneaky","ro\u006ce":"user","role":"admin"}`,
		`{"name":"sneaky","allowed_models":["grok-4.3"],"allowed_models":[]}`,
		`{"name":"sneaky","Role":"admin"}`,
		"{\"name\":\"bad \xff\"}",
	} {
		resp, b := h.do(t, ctx, "POST", "/admin/v1/keys", h.admin, body)
		if resp == nil || resp.StatusCode != 400 {
			t.Errorf("%s: %s, want 400", body, b)
		}
	}
	resp, b := h.do(t, ctx, "PATCH", "/admin/v1/keys/nope", h.admin, `{"name":"a","name":"b"}`)
	if resp == nil || resp.StatusCode != 400 || !strings.Contains(string(b), "more than once") {
		t.Errorf("PATCH with a repeated name: %s", b)
	}
	keys, err := h.store.ListKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if k.Name == "sneaky" {
			t.Errorf("a refused body created key %s with role %s", k.ID, k.Role)
		}
	}
}

// TestAdminStalledBody: an admin body that never arrives gets a 408 within
// the gateway's body deadline, and the connection is closed.
func TestAdminStalledBody(t *testing.T) {
	h := newHarnessConfig(t, gateway.Config{BodyReadTimeout: 300 * time.Millisecond})
	conn, err := net.Dial("tcp", strings.TrimPrefix(h.gw.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	fmt.Fprintf(conn, "POST /admin/v1/keys HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"name\":", h.admin)
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("no answer: %v", err)
	}
	io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusRequestTimeout {
		t.Errorf("status %d, want 408", resp.StatusCode)
	}
	if _, err := br.ReadByte(); err != io.EOF {
		t.Errorf("the connection stayed open: %v", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("took %s", d)
	}
}

// TestKeyNamesPrintable: a key name with a control character (which would
// forge a line in `grokgate keys list`) or over 200 characters is refused,
// on create and update; printable Unicode is fine.
func TestKeyNamesPrintable(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	for _, name := range []string{"a\nkey_fake  gg-xxx  admin", "tab\there", "bell\u0007", "rtl\u202eoverride", "nul\u0000", strings.Repeat("n", 201)} {
		b, _ := json.Marshal(map[string]string{"name": name})
		resp, body := h.do(t, ctx, "POST", "/admin/v1/keys", h.admin, string(b))
		if resp == nil || resp.StatusCode != 400 || !strings.Contains(string(body), "'name'") {
			t.Errorf("name %q: %s", name, body)
		}
	}
	resp, body := h.do(t, ctx, "POST", "/admin/v1/keys", h.admin, `{"name":"Café 東京 `+strings.Repeat("é", 90)+`"}`)
	if resp == nil || resp.StatusCode != 201 {
		t.Fatalf("printable name refused: %s", body)
	}
	var created struct{ ID string }
	json.Unmarshal(body, &created)
	resp, body = h.do(t, ctx, "PATCH", "/admin/v1/keys/"+created.ID, h.admin, `{"name":"two\nlines"}`)
	if resp == nil || resp.StatusCode != 400 {
		t.Errorf("update to a control character: %s", body)
	}
}

// TestMetricsRole: a metrics-role key scrapes /metrics and may do nothing
// else (no API call, no admin route, no key of its own to read); a user
// key may not scrape.
func TestMetricsRole(t *testing.T) {
	scrape := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "grokgate_up 1\n") })
	h := newHarnessConfig(t, gateway.Config{Metrics: scrape})
	ctx := context.Background()
	resp, body := h.do(t, ctx, "POST", "/admin/v1/keys", h.admin, `{"name":"prometheus","role":"metrics"}`)
	if resp == nil || resp.StatusCode != 201 {
		t.Fatalf("create a metrics key: %s", body)
	}
	var created struct{ Key string }
	json.Unmarshal(body, &created)
	prom := created.Key
	deadline := time.Now().Add(5 * time.Second)
	for {
		resp, body = h.do(t, ctx, "GET", "/metrics", prom, "")
		if resp != nil && resp.StatusCode != 401 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if resp == nil || resp.StatusCode != 200 || !strings.Contains(string(body), "grokgate_up") {
		t.Fatalf("metrics key on /metrics: %s", body)
	}
	for _, c := range []struct{ method, path, body string }{
		{"POST", "/v1/chat/completions", `{"model":"grok-4.3","messages":[{"role":"user","content":"hi"}]}`},
		{"GET", "/v1/models", ""},
		{"POST", "/v1/images/generations", `{"prompt":"p"}`},
		{"GET", "/admin/v1/keys", ""},
		{"POST", "/admin/v1/keys", `{"name":"minted","role":"admin"}`},
		{"GET", "/api/v1/me", ""},
	} {
		resp, body := h.do(t, ctx, c.method, c.path, prom, c.body)
		if resp == nil || resp.StatusCode != 403 {
			t.Errorf("metrics key on %s %s: %s", c.method, c.path, body)
		}
	}
	if resp, body := h.do(t, ctx, "GET", "/metrics", h.user, ""); resp == nil || resp.StatusCode != 403 {
		t.Errorf("user key on /metrics: %s", body)
	}
	if resp, _ := h.do(t, ctx, "GET", "/metrics", h.admin, ""); resp == nil || resp.StatusCode != 200 {
		t.Errorf("admin key on /metrics: %v", resp)
	}
}
