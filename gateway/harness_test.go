package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/grokgate/grokgate"
	"github.com/grokgate/grokgate/keys"
	"github.com/grokgate/grokgate/simulator"
	"github.com/grokgate/grokgate/sqlite"
	"github.com/grokgate/grokgate/xai"
)

// records is a UsageRecorder that keeps what it is given.
type records struct {
	mu   sync.Mutex
	list []grokgate.Record
}

func (r *records) Record(rec grokgate.Record) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.list = append(r.list, rec)
}

// wait returns the records once there are n, failing after a deadline.
func (r *records) wait(t *testing.T, n int) []grokgate.Record {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		r.mu.Lock()
		got := append([]grokgate.Record(nil), r.list...)
		r.mu.Unlock()
		if len(got) >= n || time.Now().After(deadline) {
			if len(got) != n {
				t.Fatalf("%d usage records, want %d", len(got), n)
			}
			return got
		}
		time.Sleep(5 * time.Millisecond)
	}
}

type harness struct {
	sim   *simulator.Simulator
	gw    *httptest.Server
	srv   *Server
	store *sqlite.DB
	recs  *records
	cache *keys.Cache
	user  string // secret of a user key
	admin string // secret of an admin key
}

func newHarness(t *testing.T) *harness { return newHarnessConfig(t, nil) }

// newHarnessConfig is newHarness with configure applied to the server's
// Config.
func newHarnessConfig(t *testing.T, configure func(*Config)) *harness {
	t.Helper()
	sim := simulator.New(simulator.Options{})
	up := httptest.NewServer(sim)
	t.Cleanup(up.Close)
	h := newHarnessUpstream(t, up.URL+"/v1", up.Client().Transport, configure)
	h.sim = sim
	return h
}

// newHarnessUpstream is newHarnessConfig in front of the upstream at
// baseURL, reached through rt; h.sim is nil.
func newHarnessUpstream(t *testing.T, baseURL string, rt http.RoundTripper, configure func(*Config)) *harness {
	t.Helper()
	ctx := context.Background()
	store, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "gw.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	h := &harness{store: store, recs: &records{}}
	h.user = h.mint(t, "user", grokgate.RoleUser, nil)
	h.admin = h.mint(t, "admin", grokgate.RoleAdmin, nil)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	cache := keys.NewCache(store, time.Now, log)
	if err := cache.Load(ctx); err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithCancel(ctx)
	t.Cleanup(cancel)
	go cache.Run(cctx, 50*time.Millisecond)
	cfg := Config{Usage: h.recs, Responses: store}
	if configure != nil {
		configure(&cfg)
	}
	h.cache = cache
	h.srv = NewServer(log, cfg,
		cache, xai.NewClient(baseURL, "sim-key", rt, xai.Retry{MaxAttempts: 1}, log, time.Now))
	h.gw = httptest.NewServer(h.srv)
	t.Cleanup(h.srv.FlushRefusals) // as serve does at shutdown: no timer outlives the test
	t.Cleanup(h.gw.Close)
	return h
}

func (h *harness) now() time.Time { return time.Now() }

// mintKey stores a new key and returns it with its secret.
func (h *harness) mintKey(t *testing.T, name string, role grokgate.Role) (grokgate.Key, string) {
	t.Helper()
	k, secret, err := keys.Mint(keys.Random(), name, role, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := h.store.CreateKey(context.Background(), k); err != nil {
		t.Fatal(err)
	}
	return k, secret
}

// waitKeys waits until the gateway's key cache holds secret's key in a
// state that ok accepts.
func (h *harness) waitKeys(t *testing.T, secret string, ok func(*grokgate.Key) bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		k, err := h.cache.Authenticate(context.Background(), secret)
		if err == nil && ok(k) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the key cache did not take the change (err %v)", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// mintWith stores a new user key that set shapes (limits, allow-lists),
// waits until the gateway knows it, and returns it with its secret.
func (h *harness) mintWith(t *testing.T, name string, set func(*grokgate.Key)) (grokgate.Key, string) {
	t.Helper()
	k, secret, err := keys.Mint(keys.Random(), name, grokgate.RoleUser, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	set(&k)
	if err := h.store.CreateKey(context.Background(), k); err != nil {
		t.Fatal(err)
	}
	h.waitKeys(t, secret, func(*grokgate.Key) bool { return true })
	return k, secret
}

func (h *harness) mint(t *testing.T, name string, role grokgate.Role, models []string) string {
	t.Helper()
	k, secret, err := keys.Mint(keys.Random(), name, role, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	k.AllowedModels = models
	if err := h.store.CreateKey(context.Background(), k); err != nil {
		t.Fatal(err)
	}
	return secret
}

// do sends a request with key (none if "") and returns the response with
// its whole body read.
func (h *harness) do(t *testing.T, ctx context.Context, method, path, key, body string) (*http.Response, []byte) {
	t.Helper()
	resp, err := h.gw.Client().Do(h.request(t, ctx, method, path, key, body))
	if err != nil {
		return nil, nil
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

// request is a JSON request to the gateway with key (none if "").
func (h *harness) request(t *testing.T, ctx context.Context, method, path, key, body string) *http.Request {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, h.gw.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	req.Header.Set("Content-Type", "application/json")
	return req
}

func chat(model, prompt string, stream, includeUsage bool) string {
	req := map[string]any{
		"model":         model,
		"messages":      []map[string]any{{"role": "system", "content": "Be brief."}, {"role": "user", "content": prompt}},
		"unknown_field": []any{1, "x"},
	}
	if stream {
		req["stream"] = true
	}
	if includeUsage {
		req["stream_options"] = map[string]any{"include_usage": true}
	}
	b, _ := json.Marshal(req)
	return string(b)
}

// usageChunks counts the events of an SSE body that carry a usage key.
func usageChunks(body []byte) int {
	n := 0
	for _, ev := range bytes.Split(body, []byte("\n\n")) {
		if bytes.Contains(ev, []byte(`"usage"`)) {
			n++
		}
	}
	return n
}
