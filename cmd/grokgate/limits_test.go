package main

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/grokgate/grokgate/internal/redistest"
)

// newKey creates a key with the CLI and returns its secret.
func newKey(t *testing.T, db string, flags ...string) string {
	t.Helper()
	out, err := cli(t, nil, append([]string{"keys", "create", "--name", "limited", "--db", db}, flags...)...)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	return lines[len(lines)-1]
}

// checkRefusal checks a limiter's 429: the envelope, the code, Retry-After.
func checkRefusal(t *testing.T, resp *http.Response, code string) {
	t.Helper()
	ra, err := strconv.Atoi(resp.Header.Get("Retry-After"))
	if _, got := readError(t, resp, http.StatusTooManyRequests); got != code {
		t.Fatalf("code %q, want %q", got, code)
	}
	if err != nil || ra < 1 || ra > 60 {
		t.Fatalf("Retry-After %q, want whole seconds within the minute", resp.Header.Get("Retry-After"))
	}
}

// TestLimitsThreeReplicasShareRedis: three replicas on one store and one
// Redis; 300 requests at once for a 60 RPM key: exactly 60 go through.
func TestLimitsThreeReplicasShareRedis(t *testing.T) {
	// A generous timeout: the default would let a 2-core machine running
	// the whole suite under -race time out and allow, which is not the test.
	env := map[string]string{"GROKGATE_REDIS_URL": redistest.URL(t), "GROKGATE_REDIS_TIMEOUT": "20s"}
	g1 := startGW(t, env)
	g2 := startGW(t, env, "--db", g1.DB)
	g3 := startGW(t, env, "--db", g1.DB)
	// Key ids are random, so this test's Redis keys are its own.
	key := newKey(t, g1.DB, "--rpm", "60")
	gws := []*gw{g1, g2, g3}

	var wg sync.WaitGroup
	resps := make([]*http.Response, 300)
	start := make(chan struct{})
	for i := range resps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			resps[i] = gws[i%3].post(t, "/api/v1/chat/completions", key, chatBody("hi", false))
		}()
	}
	close(start)
	wg.Wait()
	ok, refused := 0, 0
	for _, resp := range resps {
		switch resp.StatusCode {
		case http.StatusOK:
			ok++
			if resp.Header.Get("X-Ratelimit-Limit-Requests") != "60" || resp.Header.Get("X-Ratelimit-Remaining-Requests") == "" ||
				!strings.HasSuffix(resp.Header.Get("X-Ratelimit-Reset-Requests"), "s") {
				t.Fatalf("success without the rate limit headers: %v", resp.Header)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		case http.StatusTooManyRequests:
			refused++
			checkRefusal(t, resp, "rate_limit_requests")
		default:
			body, _ := io.ReadAll(resp.Body)
			t.Fatalf("status %d: %s", resp.StatusCode, body)
		}
	}
	if ok != 60 || refused != 240 {
		t.Fatalf("%d succeeded and %d were refused; want exactly 60 and 240", ok, refused)
	}
}

// TestLimitsStreams: a stream counts once toward requests, and a key with
// two stream slots gets 429 on a third until one ends or its client leaves.
func TestLimitsStreams(t *testing.T) {
	g := startGW(t, nil)
	key := newKey(t, g.DB, "--rpm", "10", "--max-streams", "2")
	slow := chatBody(`#sim{"chunks":100,"delay_ms":15}`, true)
	open := func() *http.Response {
		resp := g.post(t, "/api/v1/chat/completions", key, slow)
		if resp.StatusCode != http.StatusOK {
			body, _ := io.ReadAll(resp.Body)
			t.Fatalf("stream refused: %d %s", resp.StatusCode, body)
		}
		return resp
	}
	s1, s2 := open(), open()
	if got := s2.Header.Get("X-Ratelimit-Remaining-Requests"); got != "8" {
		t.Fatalf("remaining after two streams: %q, want 8", got)
	}
	checkRefusal(t, g.post(t, "/api/v1/chat/completions", key, slow), "rate_limit_concurrency")

	// The first client goes away mid-stream: its slot is freed.
	s1.Body.Close()
	var s3 *http.Response
	eventually(t, 5*time.Second, "a stream slot freed by a client that left", func() bool {
		resp := g.post(t, "/api/v1/chat/completions", key, slow)
		if resp.StatusCode == http.StatusOK {
			s3 = resp
			return true
		}
		checkRefusal(t, resp, "rate_limit_concurrency")
		return false
	})
	// Streams count once each, refused ones not at all: s1, s2, s3.
	if got := s3.Header.Get("X-Ratelimit-Remaining-Requests"); got != "7" {
		t.Fatalf("remaining after three streams: %q, want 7", got)
	}
	// The second stream runs to its end: its slot is freed too.
	if b, err := io.ReadAll(s2.Body); err != nil || !strings.Contains(string(b), "[DONE]") {
		t.Fatalf("stream did not complete: %v", err)
	}
	s2.Body.Close()
	eventually(t, 5*time.Second, "a stream slot freed by a finished stream", func() bool {
		resp := g.post(t, "/api/v1/chat/completions", key, chatBody("short", true))
		defer resp.Body.Close()
		io.Copy(io.Discard, resp.Body)
		return resp.StatusCode == http.StatusOK
	})
	s3.Body.Close()
	resp := g.post(t, "/api/v1/chat/completions", key, chatBody("plain", false))
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if got := resp.Header.Get("X-Ratelimit-Remaining-Requests"); got != "5" {
		t.Fatalf("remaining after 4 streams and one request: %q, want 5", got)
	}
}

// proxy forwards TCP to Redis and can be stopped and started on the same
// port, so a test can take "Redis" away without touching the real server.
type proxy struct {
	t      *testing.T
	addr   string
	target string
	mu     sync.Mutex
	ln     net.Listener
	conns  []net.Conn
}

func (p *proxy) start() {
	p.t.Helper()
	addr := p.addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		p.t.Fatal(err)
	}
	p.mu.Lock()
	p.ln, p.addr = ln, ln.Addr().String()
	p.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", p.target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, up)
			p.mu.Unlock()
			go func() { io.Copy(up, c); up.Close() }()
			go func() { io.Copy(c, up); c.Close() }()
		}
	}()
}

// stop closes the listener and every connection: Redis is "down".
func (p *proxy) stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.ln.Close()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// TestLimitsRedisOutage: while Redis is unreachable, allow lets requests
// through and deny refuses them with 503; once it is back, limits hold
// again, with the windows Redis kept.
func TestLimitsRedisOutage(t *testing.T) {
	target := strings.TrimSuffix(strings.TrimPrefix(redistest.URL(t), "redis://"), "/0")
	p := &proxy{t: t, target: target}
	p.start()
	t.Cleanup(p.stop)
	env := map[string]string{"GROKGATE_REDIS_URL": "redis://" + p.addr + "/0"}
	allow := startGW(t, env)
	deny := startGW(t, env, "--db", allow.DB, "--ratelimit-on-error", "deny")
	key := newKey(t, allow.DB, "--rpm", "2")
	send := func(g *gw) *http.Response {
		return g.post(t, "/api/v1/chat/completions", key, chatBody("hi", false))
	}
	expect := func(resp *http.Response, status int, code string) {
		t.Helper()
		if status == http.StatusOK {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != status {
				t.Fatalf("status %d, want 200", resp.StatusCode)
			}
			return
		}
		if _, got := readError(t, resp, status); got != code {
			t.Fatalf("code %q, want %q", got, code)
		}
	}
	expect(send(allow), 200, "")
	expect(send(deny), 200, "")
	expect(send(allow), 429, "rate_limit_requests")

	p.stop()
	for range 3 {
		expect(send(allow), 200, "") // allow: unlimited while Redis is away
		resp := send(deny)
		if resp.Header.Get("Retry-After") == "" {
			t.Fatal("deny's 503 has no Retry-After")
		}
		expect(resp, 503, "limiter_unavailable")
	}

	p.start()
	// Back: the window Redis kept still holds, on both replicas.
	eventually(t, 5*time.Second, "limits enforced again after Redis came back", func() bool {
		a, d := send(allow), send(deny)
		defer a.Body.Close()
		defer d.Body.Close()
		return a.StatusCode == 429 && d.StatusCode == 429
	})
	fresh := newKey(t, allow.DB, "--rpm", "1")
	resp := deny.post(t, "/api/v1/chat/completions", fresh, chatBody("hi", false))
	expect(resp, 200, "")
	checkRefusal(t, allow.post(t, "/api/v1/chat/completions", fresh, chatBody("hi", false)), "rate_limit_requests")
}

// TestLimitsTokensThroughAdminAPI: a token limit set through the admin API
// reserves max_tokens while a request runs and settles to the real usage
// when it ends; a limit changed later applies within the key reload; and
// the refusals show in /metrics as the gateway's own.
func TestLimitsTokensThroughAdminAPI(t *testing.T) {
	g := startGW(t, nil)
	admin := func(method, path, body string) map[string]any {
		t.Helper()
		req, _ := http.NewRequest(method, g.URL+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+g.AdminKey)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		json.NewDecoder(resp.Body).Decode(&out)
		if resp.StatusCode >= 300 {
			t.Fatalf("%s %s: %d %v", method, path, resp.StatusCode, out)
		}
		return out
	}
	created := admin("POST", "/admin/v1/keys", `{"name":"tokens","tpm":1000}`)
	key, _ := created["key"].(string)
	id, _ := created["id"].(string)
	if lim, _ := created["limits"].(map[string]any); lim["tpm"] != float64(1000) || key == "" {
		t.Fatalf("created %v", created)
	}
	// A model that does not reason, so a request reserves its max_tokens
	// and no reasoning allowance.
	sized := func(prompt string, stream bool, maxTokens int) string {
		b, _ := json.Marshal(map[string]any{"model": "grok-4-1-fast-non-reasoning", "stream": stream, "max_tokens": maxTokens,
			"messages": []map[string]string{{"role": "user", "content": prompt}}})
		return string(b)
	}
	big := func(prompt string, stream bool) string { return sized(prompt, stream, 900) }

	// In flight, the first request holds its worst case: ~900 of 1000.
	first := g.post(t, "/api/v1/chat/completions", key, big(`first #sim{"chunks":20,"delay_ms":50}`, true))
	if first.StatusCode != 200 || first.Header.Get("X-Ratelimit-Limit-Tokens") != "1000" {
		t.Fatalf("first: %d, limit header %q", first.StatusCode, first.Header.Get("X-Ratelimit-Limit-Tokens"))
	}
	checkRefusal(t, g.post(t, "/api/v1/chat/completions", key, big("second", false)), "rate_limit_tokens")

	// Once it ends, only its real usage (a few dozen tokens) counts.
	if b, _ := io.ReadAll(first.Body); !strings.Contains(string(b), "[DONE]") {
		t.Fatalf("first stream: %q", b)
	}
	first.Body.Close()
	eventually(t, 5*time.Second, "the reservation settled to the real usage", func() bool {
		resp := g.post(t, "/api/v1/chat/completions", key, big("third", false))
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode == 200
	})

	admin("PATCH", "/admin/v1/keys/"+id, `{"rpm":1}`)
	eventually(t, 3*time.Second, "the new request limit applies", func() bool {
		resp := g.post(t, "/api/v1/chat/completions", key, sized("fourth", false, 10))
		if resp.StatusCode == 429 {
			_, code := readError(t, resp, 429)
			return code == "rate_limit_requests"
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return false
	})

	req, _ := http.NewRequest("GET", g.URL+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+g.AdminKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`grokgate_rate_limit_refusals_total{limit="tokens",source="gateway"} 1`,
		`grokgate_rate_limit_refusals_total{limit="requests",source="gateway"}`,
	} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}
