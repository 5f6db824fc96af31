package gateway

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/grokgate/grokgate"
)

// TestRevokedKeyEndsItsStreams: revoking a key ends its streams in flight
// within 2 s, with the error event "the key was revoked", not at [DONE].
func TestRevokedKeyEndsItsStreams(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	k, secret := h.mintKey(t, "doomed", grokgate.RoleUser)
	h.waitKeys(t, secret, func(*grokgate.Key) bool { return true })
	body := `{"model":"grok-4.3","stream":true,"messages":[{"role":"user","content":"long #sim{\"chunks\":200,\"delay_ms\":100}"}]}`
	req, _ := http.NewRequestWithContext(ctx, "POST", h.gw.URL+"/v1/chat/completions", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+secret)
	resp, err := h.gw.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	if _, err := br.ReadString('\n'); err != nil || resp.StatusCode != 200 {
		t.Fatalf("stream did not start: %d %v", resp.StatusCode, err)
	}
	if err := h.store.RevokeKey(ctx, k.ID, time.Now()); err != nil {
		t.Fatal(err)
	}
	revoked := time.Now()
	rest, _ := io.ReadAll(br)
	took := time.Since(revoked)
	if took > 2*time.Second {
		t.Errorf("the stream ran %s after the revocation", took)
	}
	if !strings.Contains(string(rest), "the key was revoked") || strings.Contains(string(rest), "[DONE]") {
		t.Errorf("stream did not end with the revocation: ...%s", tail(rest))
	}
	// Another key's stream is untouched.
	resp2, b := h.do(t, ctx, "POST", "/v1/chat/completions", h.user, `{"model":"grok-4.3","stream":true,"messages":[{"role":"user","content":"short"}]}`)
	if resp2 == nil || !strings.Contains(string(b), "[DONE]") {
		t.Errorf("another key's stream: %s", b)
	}
}

func tail(b []byte) string {
	if len(b) > 300 {
		b = b[len(b)-300:]
	}
	return string(b)
}

// TestStalledReaderIsCut: a client that stops reading a stream holds the
// relay in a write no context cancels; the idle timeout ends it anyway,
// upstream and the client's connection both.
func TestStalledReaderIsCut(t *testing.T) {
	upEnded := make(chan time.Time, 1)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() { upEnded <- time.Now() }()
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(200)
		chunk := `data: {"id":"x","object":"chat.completion.chunk","model":"grok-4.3","choices":[{"index":0,"delta":{"content":"` + strings.Repeat("a", 16<<10) + `"}}]}` + "\n\n"
		for r.Context().Err() == nil {
			if _, err := io.WriteString(w, chunk); err != nil {
				return
			}
			w.(http.Flusher).Flush()
		}
	}))
	defer up.Close()
	const idle = 500 * time.Millisecond
	gw := newUpstreamHarness(t, up.URL, func(c *Config) { c.StreamIdleTimeout = idle })
	conn, err := net.Dial("tcp", strings.TrimPrefix(gw.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	body := `{"model":"grok-4.3","stream":true,"messages":[{"role":"user","content":"hi"}]}`
	fmt.Fprintf(conn, "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", gw.secret, len(body), body)
	// Read nothing more: the gateway's writes soon block.
	start := time.Now()
	select {
	case at := <-upEnded:
		if d := at.Sub(start); d > idle+endGrace+3*time.Second {
			t.Errorf("upstream ended only after %s", d)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the upstream exchange was still open 15s after the client stopped reading")
	}
	// The connection is closed: reading it all ends in EOF, not a timeout.
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	all, err := io.ReadAll(conn)
	if err != nil {
		t.Errorf("the client's connection was not closed: %v; %d bytes, ending %q", err, len(all), tail(all))
	}
}
