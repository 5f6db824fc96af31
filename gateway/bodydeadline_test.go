package gateway

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestStalledBodiesEnd: a request that announces a body and never sends it
// costs bounded time on every route, with a key or without: routes that
// read a body answer 408 and close the connection; the others (401, 404)
// answer and close rather than wait for a body no one reads.
func TestStalledBodiesEnd(t *testing.T) {
	const timeout = 300 * time.Millisecond
	h := newHarnessConfig(t, func(c *Config) { c.BodyReadTimeout = timeout })
	addr := strings.TrimPrefix(h.gw.URL, "http://")
	for _, c := range []struct {
		name, path, auth, ctype string
		status                  int
	}{
		{"no key", "/v1/chat/completions", "", "application/json", 401},
		{"bad key", "/v1/chat/completions", "gg-nope", "application/json", 401},
		{"unknown path", "/v1/nowhere", h.user, "application/json", 404},
		{"chat", "/v1/chat/completions", h.user, "application/json", 408},
		{"responses", "/v1/responses", h.user, "application/json", 408},
		{"images", "/v1/images/generations", h.user, "application/json", 408},
		{"vision multipart", "/v1/vision/analyze", h.user, "multipart/form-data; boundary=xx", 408},
	} {
		t.Run(c.name, func(t *testing.T) {
			conn, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			auth := ""
			if c.auth != "" {
				auth = "Authorization: Bearer " + c.auth + "\r\n"
			}
			partial := "{"
			if strings.HasPrefix(c.ctype, "multipart") {
				partial = "--xx\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a.png\"\r\n\r\n\x89PNG"
			}
			start := time.Now()
			fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: x\r\n%sContent-Type: %s\r\nContent-Length: 100000\r\n\r\n%s", c.path, auth, c.ctype, partial)
			conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			br := bufio.NewReader(conn)
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("no answer: %v", err)
			}
			io.Copy(io.Discard, resp.Body)
			if resp.StatusCode != c.status {
				t.Errorf("status %d, want %d", resp.StatusCode, c.status)
			}
			// The connection ends: nothing more is read from it.
			if _, err := br.ReadByte(); err == nil {
				t.Errorf("the connection stayed open")
			} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
				t.Errorf("the connection was still open after %s", time.Since(start))
			}
			if d := time.Since(start); d > timeout+2*time.Second {
				t.Errorf("took %s", d)
			}
		})
	}
}
