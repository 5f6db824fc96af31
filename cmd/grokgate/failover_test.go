package main

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/grokgate/grokgate/simulator"
)

func simRequests(t *testing.T, sim string) int64 {
	t.Helper()
	resp, err := http.Get(sim + "/sim/stats")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var s simStats
	json.NewDecoder(resp.Body).Decode(&s)
	return s.Requests
}

// okBody reads a successful answer, streamed or not.
func okBody(t *testing.T, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, b)
	}
	return string(b)
}

// TestFailoverRejectedKey: a key xAI calls invalid is set aside and the
// request goes to the next key; later requests skip the bad key.
func TestFailoverRejectedKey(t *testing.T) {
	sim := startSimulatorForTest(t, "xai-good")
	g := startGW(t, map[string]string{"XAI_API_KEY": "xai-bad1, xai-good ,xai-bad2", "XAI_BASE_URL": sim + "/v1"})
	before := simRequests(t, sim)
	for i := 0; i < 6; i++ {
		body := okBody(t, g.post(t, "/api/v1/chat/completions", g.AdminKey, chatBody("hello "+string(rune('a'+i)), i%2 == 0)))
		if i%2 == 0 && !strings.HasSuffix(body, "data: [DONE]\n\n") {
			t.Fatalf("stream %d: %q", i, body)
		}
	}
	// At most the two bad keys were each tried once; then only the good one.
	if n := simRequests(t, sim) - before; n > 8 {
		t.Fatalf("%d upstream requests for 6 client requests: bad keys stayed in rotation", n)
	}
	// With only bad keys, the client hears it is the operator's problem.
	g2 := startGW(t, map[string]string{"XAI_API_KEY": "xai-bad1,xai-bad2", "XAI_BASE_URL": sim + "/v1"})
	_, code := readError(t, g2.post(t, "/api/v1/chat/completions", g2.AdminKey, chatBody("x", false)), 502)
	if code != "upstream_auth_failed" {
		t.Fatalf("code %q", code)
	}
}

// TestRetryBeforeFirstByte: transient upstream failures are retried, and
// the client sees only the success.
func TestRetryBeforeFirstByte(t *testing.T) {
	sim := startSimulatorForTest(t, "")
	g := startGW(t, map[string]string{"XAI_API_KEY": "xai-1,xai-2", "XAI_BASE_URL": sim + "/v1"})
	for _, tc := range []struct {
		directive string
		stream    bool
	}{
		{`{"status":503,"fail_times":2}`, false},
		{`{"status":500,"fail_times":1}`, true},
		{`{"status":429,"fail_times":1}`, true},
		{`{"status":502,"fail_times":1}`, false},
		{`{"json_error":true,"fail_times":1}`, true},
	} {
		before := simRequests(t, sim)
		okBody(t, g.post(t, "/api/v1/chat/completions", g.AdminKey, chatBody("retry me #sim"+tc.directive, tc.stream)))
		var want int64 = 2
		if strings.Contains(tc.directive, `"fail_times":2`) {
			want = 3
		}
		if n := simRequests(t, sim) - before; n != want {
			t.Fatalf("%s: %d upstream attempts, want %d", tc.directive, n, want)
		}
	}

	t.Run("gives up after the attempt limit", func(t *testing.T) {
		before := simRequests(t, sim)
		readError(t, g.post(t, "/api/v1/chat/completions", g.AdminKey, chatBody(`x #sim{"status":503}`, true)), 503)
		if n := simRequests(t, sim) - before; n != 3 {
			t.Fatalf("%d attempts, want 3", n)
		}
	})
	t.Run("client errors are not retried", func(t *testing.T) {
		before := simRequests(t, sim)
		readError(t, g.post(t, "/api/v1/chat/completions", g.AdminKey, `{"model":"grok-9","messages":[{"role":"user","content":"x"}]}`), 404)
		if n := simRequests(t, sim) - before; n != 1 {
			t.Fatalf("%d attempts, want 1", n)
		}
	})
	t.Run("nothing is retried after the first byte", func(t *testing.T) {
		before := simRequests(t, sim)
		body := okBody(t, g.post(t, "/api/v1/chat/completions", g.AdminKey, chatBody(`x #sim{"error_after":2}`, true)))
		if !strings.Contains(body, `data: {"error":"API error: `) {
			t.Fatalf("no error event: %q", body)
		}
		if n := simRequests(t, sim) - before; n != 1 {
			t.Fatalf("%d attempts, want 1", n)
		}
	})
}

// TestRetryAfterHonoured: with a single key, a short Retry-After is waited
// out; a long one is passed to the client instead of holding it.
func TestRetryAfterHonoured(t *testing.T) {
	sim := startSimulatorForTest(t, "")
	g := startGW(t, map[string]string{"XAI_API_KEY": "xai-only", "XAI_BASE_URL": sim + "/v1"})
	start := time.Now()
	okBody(t, g.post(t, "/api/v1/chat/completions", g.AdminKey, chatBody(`x #sim{"status":429,"retry_after":1,"fail_times":1}`, false)))
	if d := time.Since(start); d < time.Second {
		t.Fatalf("retried after %s, before the 1s Retry-After", d)
	}
	resp := g.post(t, "/api/v1/chat/completions", g.AdminKey, chatBody(`y #sim{"status":429,"retry_after":30}`, false))
	if ra := resp.Header.Get("Retry-After"); ra != "30" {
		t.Fatalf("Retry-After %q passed to the client, want 30", ra)
	}
	readError(t, resp, 429)
}

// TestRetryAfterConnectFailure: a connection xAI never accepted is retried
// (it cannot have started any work); here xAI comes up while grokgate backs
// off.
func TestRetryAfterConnectFailure(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens yet: the first attempt is refused
	g := startGW(t, map[string]string{"XAI_API_KEY": "xai-a", "XAI_BASE_URL": "http://" + addr + "/v1"})

	up := &http.Server{Handler: simulator.New(simulator.Options{})}
	defer up.Close()
	go func() {
		time.Sleep(200 * time.Millisecond) // backoff is 250ms ±50%, then 500ms ±50%
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return // the port was taken meanwhile; the request then fails and says so
		}
		up.Serve(ln)
	}()
	okBody(t, g.post(t, "/api/v1/chat/completions", g.AdminKey, chatBody("hello", true)))
	eventually(t, 5*time.Second, "a retry after the failed connection, in the log", func() bool {
		return strings.Contains(g.Log.String(), `reason="connect failed"`)
	})
}
