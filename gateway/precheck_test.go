package gateway

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/grokgate/grokgate"
	"github.com/grokgate/grokgate/internal/redistest"
	"github.com/grokgate/grokgate/ratelimit"
	"github.com/grokgate/grokgate/redis"
)

// TestOverRPMRefusedBeforeBody: a key over its requests-per-minute limit is
// refused on the routes that admit after parsing (chat, vision, Responses)
// before its body is read: the 429 comes at once, for a body announced
// and never sent. With either limiter.
func TestOverRPMRefusedBeforeBody(t *testing.T) {
	t.Run("in-process", func(t *testing.T) {
		testOverRPMRefusedBeforeBody(t, ratelimit.New(time.Now, time.Minute))
	})
	t.Run("redis", func(t *testing.T) {
		l, err := redis.New(redistest.URL(t), redis.Options{Prefix: redistest.Prefix(), Timeout: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
		testOverRPMRefusedBeforeBody(t, l)
	})
}

func testOverRPMRefusedBeforeBody(t *testing.T, l Limiter) {
	h := newHarnessConfig(t, func(c *Config) {
		c.Limiter = l
		c.BodyReadTimeout = 10 * time.Second
	})
	ctx := context.Background()
	_, secret := h.mintWith(t, "busy", func(k *grokgate.Key) { k.Limits.RPM = 1 })
	if resp, b := h.do(t, ctx, "POST", "/v1/chat/completions", secret, chat("grok-4.3", "hi", false, false)); resp == nil || resp.StatusCode != 200 {
		t.Fatalf("first request: %s", b)
	}
	for _, c := range []struct{ path, ctype string }{
		{"/v1/chat/completions", "application/json"},
		{"/v1/responses", "application/json"},
		{"/v1/vision/analyze", "multipart/form-data; boundary=b"},
	} {
		conn, err := net.Dial("tcp", strings.TrimPrefix(h.gw.URL, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: %s\r\nContent-Length: 20000000\r\n\r\n{", c.path, secret, c.ctype)
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatalf("%s: no answer before the body: %v", c.path, err)
		}
		b, _ := io.ReadAll(resp.Body)
		conn.Close()
		var env struct{ Error struct{ Code string } }
		json.Unmarshal(b, &env)
		if resp.StatusCode != 429 || env.Error.Code != "rate_limit_requests" || time.Since(start) > 2*time.Second {
			t.Errorf("%s: %d %s after %s", c.path, resp.StatusCode, b, time.Since(start))
		}
	}
}
