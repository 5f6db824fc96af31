package gateway

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestLargeBodiesInFlightBounded: the large bodies held at once are
// bounded in total bytes; past the bound a request waits briefly, then gets
// 503 without its body being read, and once room is made the next one is
// served.
func TestLargeBodiesInFlightBounded(t *testing.T) {
	h := newHarnessConfig(t, func(c *Config) {
		c.MaxBodyBytes = 1 << 20
		c.MaxBodyBytesInFlight = 1 << 20
		c.BodyReadTimeout = 10 * time.Second
	})
	addr := strings.TrimPrefix(h.gw.URL, "http://")
	prompt := strings.Repeat("a", 700<<10)
	body := `{"model":"grok-4.3","messages":[{"role":"user","content":"` + prompt + `"}]}`
	// The first holds 700 KiB of the budget while it sends slowly.
	slow, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	fmt.Fprintf(slow, "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", h.user, len(body), body[:1000])
	time.Sleep(200 * time.Millisecond)
	start := time.Now()
	req, _ := http.NewRequest("POST", h.gw.URL+"/v1/chat/completions", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+h.user)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var env struct{ Error struct{ Code string } }
	json.Unmarshal(b, &env)
	if resp.StatusCode != 503 || env.Error.Code != "server_busy" || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("second large body: %d %s", resp.StatusCode, b)
	}
	if d := time.Since(start); d < bodyWait || d > bodyWait+3*time.Second {
		t.Errorf("refused after %s, want a wait of about %s", d, bodyWait)
	}
	// Small bodies are not held back.
	if resp, b := h.do(t, t.Context(), "POST", "/v1/chat/completions", h.user, chat("grok-4.3", "hi", false, false)); resp == nil || resp.StatusCode != 200 {
		t.Errorf("small body: %s", b)
	}
	// The first completes; then a large body is served again.
	io.WriteString(slow, body[1000:])
	slow.SetReadDeadline(time.Now().Add(10 * time.Second))
	first, err := http.ReadResponse(bufio.NewReader(slow), nil)
	if err != nil || first.StatusCode != 200 {
		t.Fatalf("first: %v %v", first, err)
	}
	io.Copy(io.Discard, first.Body)
	req, _ = http.NewRequest("POST", h.gw.URL+"/v1/chat/completions", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+h.user)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("after the first ended: %d", resp.StatusCode)
	}
}
