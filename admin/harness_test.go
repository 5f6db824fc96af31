package admin

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/grokgate/grokgate"
	"github.com/grokgate/grokgate/gateway"
	"github.com/grokgate/grokgate/keys"
	"github.com/grokgate/grokgate/simulator"
	"github.com/grokgate/grokgate/sqlite"
	"github.com/grokgate/grokgate/xai"
)

// harness is a gateway over the simulator with the admin API registered,
// as cmd/grokgate composes them, on a SQLite store with a user and an
// admin key.
type harness struct {
	gw    *httptest.Server
	store *sqlite.DB
	user  string // secret of a user key
	admin string // secret of an admin key
	api   *API
}

func newHarness(t *testing.T) *harness { return newHarnessConfig(t, gateway.Config{}) }

func newHarnessConfig(t *testing.T, cfg gateway.Config) *harness {
	t.Helper()
	ctx := context.Background()
	up := httptest.NewServer(simulator.New(simulator.Options{}))
	t.Cleanup(up.Close)
	store, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "admin.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	h := &harness{store: store}
	h.user = h.mint(t, "user", grokgate.RoleUser)
	h.admin = h.mint(t, "admin", grokgate.RoleAdmin)
	log := slog.New(slog.DiscardHandler)
	cache := keys.NewCache(store, time.Now, log)
	if err := cache.Load(ctx); err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithCancel(ctx)
	t.Cleanup(cancel)
	go cache.Run(cctx, 50*time.Millisecond)
	srv := gateway.NewServer(log, cfg,
		cache, xai.NewClient(up.URL+"/v1", "sim-key", up.Client().Transport, xai.Retry{MaxAttempts: 1}, log, time.Now))
	h.api = Register(srv, store, time.Now)
	h.gw = httptest.NewServer(srv)
	t.Cleanup(h.gw.Close)
	return h
}

func (h *harness) mint(t *testing.T, name string, role grokgate.Role) string {
	t.Helper()
	k, secret, err := keys.Mint(keys.Random(), name, role, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := h.store.CreateKey(context.Background(), k); err != nil {
		t.Fatal(err)
	}
	return secret
}

// do sends a request with key (none if "") and returns the response with
// its whole body read.
func (h *harness) do(t *testing.T, ctx context.Context, method, path, key, body string) (*http.Response, []byte) {
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
	resp, err := h.gw.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

// chat is a chat request body, to check what a minted key may do.
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
