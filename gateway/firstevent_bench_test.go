package gateway

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"log/slog"
	"path/filepath"

	"github.com/grokgate/grokgate"
	"github.com/grokgate/grokgate/keys"
	"github.com/grokgate/grokgate/simulator"
	"github.com/grokgate/grokgate/sqlite"
	"github.com/grokgate/grokgate/xai"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"testing"
	"time"
)

// BenchmarkFirstEvent measures, over loopback sockets in one process, the
// time from sending a streaming request to reading its first event: the
// simulator alone, a bare httputil.ReverseProxy in front of it, and
// grokgate, for chat completions and Responses. The gateway's figure over
// the proxy's is the latency its request path adds before the first byte.
// Owners are written behind, as with SQLite (Config.ResponseOwnersLocal).
func BenchmarkFirstEvent(b *testing.B) {
	ctx := context.Background()
	sim := httptest.NewServer(simulator.New(simulator.Options{}))
	defer sim.Close()
	store, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "gw.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	k, secret, _ := keys.Mint(keys.Random(), "bench", grokgate.RoleUser, time.Now())
	if err := store.CreateKey(ctx, k); err != nil {
		b.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	cache := keys.NewCache(store, time.Now, log)
	if err := cache.Load(ctx); err != nil {
		b.Fatal(err)
	}
	tr := &http.Transport{MaxIdleConnsPerHost: 64}
	srv := NewServer(log, Config{Usage: &records{}, Responses: store, ResponseOwnersLocal: true}, cache,
		xai.NewClient(sim.URL+"/v1", "sim-key", tr, xai.Retry{MaxAttempts: 1}, log, time.Now))
	gw := httptest.NewServer(srv)
	defer gw.Close()
	proxy := httptest.NewServer(newBareProxy(sim.URL))
	defer proxy.Close()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}

	chat := `{"model":"grok-4.3","stream":true,"messages":[{"role":"system","content":"You are a concise assistant."},{"role":"user","content":"What does a gateway do? #sim{\"chunks\":2,\"delay_ms\":0}"}]}`
	resp := `{"model":"grok-4.3","stream":true,"input":[{"role":"system","content":"You are a concise assistant."},{"role":"user","content":"What does a gateway do? #sim{\"chunks\":2,\"delay_ms\":0}"}]}`
	for _, c := range []struct{ name, base, key, path, body string }{
		{"chat/floor", sim.URL, "sim-key", "/v1/chat/completions", chat},
		{"chat/proxy", proxy.URL, "sim-key", "/v1/chat/completions", chat},
		{"chat/grokgate", gw.URL, secret, "/v1/chat/completions", chat},
		{"responses/floor", sim.URL, "sim-key", "/v1/responses", resp},
		{"responses/proxy", proxy.URL, "sim-key", "/v1/responses", resp},
		{"responses/grokgate", gw.URL, secret, "/v1/responses", resp},
	} {
		b.Run(c.name, func(b *testing.B) { firstEvent(b, client, c.base+c.path, c.key, c.body) })
	}
}

func firstEvent(b *testing.B, client *http.Client, url, key, body string) {
	var total time.Duration
	for b.Loop() {
		req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if key != "" {
			req.Header.Set("Authorization", "Bearer "+key)
		}
		start := time.Now()
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		br := bufio.NewReader(resp.Body)
		line, err := br.ReadSlice('\n')
		for err == nil && !bytes.HasPrefix(line, []byte("data:")) {
			line, err = br.ReadSlice('\n')
		}
		total += time.Since(start)
		if err != nil || resp.StatusCode != 200 {
			b.Fatalf("status %d, %v", resp.StatusCode, err)
		}
		io.Copy(io.Discard, br)
		resp.Body.Close()
	}
	b.ReportMetric(float64(total.Nanoseconds())/float64(b.N), "ns/first-event")
}

func newBareProxy(target string) http.Handler {
	u, _ := url.Parse(target)
	p := httputil.NewSingleHostReverseProxy(u)
	p.Transport = &http.Transport{MaxIdleConnsPerHost: 64}
	// Read the body first, as grokgate does: streamed through, it races
	// net/http's close of it once the response starts (golang/go#40747).
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		p.ServeHTTP(w, r)
	})
}
