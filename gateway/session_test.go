package gateway

import (
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/grokgate/grokgate"
	"github.com/grokgate/grokgate/keys"
)

// cookieSessions is a SessionAuthenticator over a map: cookie "s" names a
// session, which holds a key id looked up in the key cache on every
// request, as the console's does.
type cookieSessions struct {
	cache *keys.Cache
	mu    sync.Mutex
	keyOf map[string]string // session token -> key id
}

func (c *cookieSessions) Session(r *http.Request) (*grokgate.Key, string, error) {
	ck, err := r.Cookie("s")
	if err != nil {
		return nil, "", nil
	}
	c.mu.Lock()
	id, ok := c.keyOf[ck.Value]
	c.mu.Unlock()
	if !ok {
		return nil, "", ErrSessionEnded
	}
	k, err := c.cache.KeyByID(id)
	return k, "csrf-" + ck.Value, err
}

// sessionHarness is a harness whose server accepts cookieSessions.
func sessionHarness(t *testing.T) (*harness, *cookieSessions) {
	sess := &cookieSessions{keyOf: map[string]string{}}
	h := newHarnessConfig(t, func(c *Config) {
		c.Sessions = sess
		// An admin-only route to try the roles on.
		c.Metrics = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "metrics") })
	})
	sess.cache = h.cache
	return h, sess
}

// doCookie sends a request carrying session cookie s and, if not "", the
// CSRF header.
func (h *harness) doCookie(t *testing.T, method, path, s, csrf, bearer, body string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, h.gw.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.AddCookie(&http.Cookie{Name: "s", Value: s})
	if csrf != "" {
		req.Header.Set(CSRFHeader, csrf)
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := h.gw.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func TestSessionCookieAuthenticates(t *testing.T) {
	h, sess := sessionHarness(t)
	admin, adminSecret := h.mintKey(t, "console admin", grokgate.RoleAdmin)
	user, _ := h.mintKey(t, "console user", grokgate.RoleUser)
	h.waitKeys(t, adminSecret, func(*grokgate.Key) bool { return true })
	sess.keyOf["A"], sess.keyOf["U"] = admin.ID, user.ID
	time.Sleep(100 * time.Millisecond) // the cache reloads and learns the user key

	if resp, body := h.doCookie(t, "GET", "/metrics", "A", "", "", ""); resp.StatusCode != 200 || body != "metrics" {
		t.Errorf("GET /metrics with an admin session, no CSRF header (a read): %d %s", resp.StatusCode, body)
	}
	if resp, body := h.doCookie(t, "GET", "/metrics", "U", "", "", ""); resp.StatusCode != 403 || !strings.Contains(body, "admin_required") {
		t.Errorf("GET /metrics with a user session: %d %s", resp.StatusCode, body)
	}
	// State changes need the session's CSRF token: nothing reaches xAI
	// without it.
	before := h.sim.Stats().Requests
	for _, tc := range []struct{ csrf string }{{""}, {"csrf-U"}, {"csrf-Ax"}} {
		resp, body := h.doCookie(t, "POST", "/v1/chat/completions", "A", tc.csrf, "", chat("grok-3", "hi", false, false))
		if resp.StatusCode != 403 || !strings.Contains(body, "csrf_token_invalid") || !strings.Contains(body, CSRFHeader) {
			t.Errorf("POST /v1/chat/completions with CSRF header %q: %d %s", tc.csrf, resp.StatusCode, body)
		}
	}
	if after := h.sim.Stats().Requests; after != before {
		t.Fatalf("refused requests reached xAI: %d, then %d", before, after)
	}
	if resp, body := h.doCookie(t, "POST", "/v1/chat/completions", "U", "csrf-U", "", chat("grok-3", "hi", false, false)); resp.StatusCode != 200 {
		t.Errorf("chat with a user session and its token: %d %s", resp.StatusCode, body)
	}
	if resp, body := h.doCookie(t, "POST", "/v1/chat/completions", "U", "", "", chat("grok-3", "hi", false, false)); resp.StatusCode != 403 {
		t.Errorf("chat with a user session, no token: %d %s", resp.StatusCode, body)
	}
	// A Bearer key wins over the cookie and needs no token.
	if resp, body := h.doCookie(t, "POST", "/v1/chat/completions", "nobody", "", h.user, chat("grok-3", "hi", false, false)); resp.StatusCode != 200 {
		t.Errorf("chat with a Bearer key and a stale cookie: %d %s", resp.StatusCode, body)
	}
	if resp, body := h.doCookie(t, "GET", "/v1/models", "nobody", "", "", ""); resp.StatusCode != 401 || !strings.Contains(body, "session_ended") {
		t.Errorf("an unknown session: %d %s", resp.StatusCode, body)
	}

	// Revoking the key ends its session as soon as the cache learns it.
	if err := h.store.RevokeKey(context.Background(), user.ID, time.Now()); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Second)
	for {
		resp, body := h.doCookie(t, "GET", "/v1/models", "U", "", "", "")
		if resp.StatusCode == 401 && strings.Contains(body, "revoked_api_key") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a revoked key's session still answers after 2s: %d %s", resp.StatusCode, body)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestSessionCookieIgnoredWhenOff(t *testing.T) {
	h := newHarness(t)
	req, _ := http.NewRequest("GET", h.gw.URL+"/v1/models", nil)
	req.AddCookie(&http.Cookie{Name: "s", Value: "A"})
	resp, err := h.gw.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Errorf("a cookie without Config.Sessions: %d, want 401", resp.StatusCode)
	}
}
