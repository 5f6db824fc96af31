package gateway

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/grokgate/grokgate"
	"github.com/grokgate/grokgate/keys"
	"github.com/grokgate/grokgate/sqlite"
	"github.com/grokgate/grokgate/xai"
)

// TestNoRetryAfterUpstreamRetries: once grokgate has retried a failing
// upstream call as often as it may, its answer says so (x-should-retry:
// false, and the attempts made); an answer it did not retry says nothing.
func TestNoRetryAfterUpstreamRetries(t *testing.T) {
	var calls atomic.Int64
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.Header().Set("Content-Type", "application/json")
		if strings.Contains(r.URL.Path, "images") {
			w.WriteHeader(http.StatusBadRequest) // final: not retried
			io.WriteString(w, `{"code":"Client specified an invalid argument","error":"bad prompt"}`)
			return
		}
		w.WriteHeader(http.StatusInternalServerError)
		io.WriteString(w, `{"code":"Internal error","error":"boom"}`)
	}))
	defer up.Close()
	client := xai.NewClient(up.URL+"/v1", "k1", up.Client().Transport, xai.Retry{MaxAttempts: 3, BaseBackoff: time.Millisecond}, slog.New(slog.NewTextHandler(io.Discard, nil)), time.Now)
	gw := newClientHarness(t, client, nil)
	secret := gw.secret
	post := func(path, body string) *http.Response {
		req, _ := http.NewRequest("POST", gw.url+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+secret)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	resp := post("/v1/chat/completions", `{"model":"grok-4.3","messages":[{"role":"user","content":"hi"}]}`)
	if resp.StatusCode != 502 || resp.Header.Get("X-Should-Retry") != "false" || resp.Header.Get("X-Upstream-Attempts") != "3" || calls.Load() != 3 {
		t.Errorf("after retries: %d, x-should-retry %q, attempts %q, %d upstream calls", resp.StatusCode,
			resp.Header.Get("X-Should-Retry"), resp.Header.Get("X-Upstream-Attempts"), calls.Load())
	}
	calls.Store(0)
	resp = post("/v1/images/generations", `{"prompt":"p"}`)
	if resp.StatusCode != 400 || resp.Header.Get("X-Should-Retry") != "" || calls.Load() != 1 {
		t.Errorf("a final answer: %d, x-should-retry %q, %d calls", resp.StatusCode, resp.Header.Get("X-Should-Retry"), calls.Load())
	}
	up.Close() // unreachable: retried, then given up
	resp = post("/v1/chat/completions", `{"model":"grok-4.3","messages":[{"role":"user","content":"hi"}]}`)
	if resp.StatusCode != 502 || resp.Header.Get("X-Should-Retry") != "false" || resp.Header.Get("X-Upstream-Attempts") != "3" {
		t.Errorf("unreachable upstream: %d, x-should-retry %q, attempts %q", resp.StatusCode, resp.Header.Get("X-Should-Retry"), resp.Header.Get("X-Upstream-Attempts"))
	}
}

// upHarness is a gateway with one user key over an upstream of the test's
// own.
type upHarness struct {
	url    string
	secret string
}

// newUpstreamHarness serves a gateway over the upstream at upURL, without
// retries.
func newUpstreamHarness(t *testing.T, upURL string, configure func(*Config)) *upHarness {
	client := xai.NewClient(upURL+"/v1", "k1", http.DefaultTransport, xai.Retry{MaxAttempts: 1}, slog.New(slog.NewTextHandler(io.Discard, nil)), time.Now)
	return newClientHarness(t, client, configure)
}

func newClientHarness(t *testing.T, client *xai.Client, configure func(*Config)) *upHarness {
	t.Helper()
	ctx := context.Background()
	store, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "gw.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	k, secret, _ := keys.Mint(keys.Random(), "u", grokgate.RoleUser, time.Now())
	if err := store.CreateKey(ctx, k); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	cache := keys.NewCache(store, time.Now, log)
	if err := cache.Load(ctx); err != nil {
		t.Fatal(err)
	}
	var cfg Config
	if configure != nil {
		configure(&cfg)
	}
	gw := httptest.NewServer(NewServer(log, cfg, cache, client))
	t.Cleanup(gw.Close)
	return &upHarness{url: gw.URL, secret: secret}
}
