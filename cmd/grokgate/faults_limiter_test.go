package main

import (
	"bufio"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/grokgate/grokgate/internal/faultproxy"
	"github.com/grokgate/grokgate/internal/redistest"
)

// post sends a chat request to a grokgate process with key.
func (p *proc) post(t *testing.T, key, body string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest("POST", p.url+"/api/v1/chat/completions", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// drain reads and closes a response, returning its status and body.
func drain(resp *http.Response) (int, string) {
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp.StatusCode, string(b)
}

// TestFaultKilledReplicaSlotsFreed: a replica killed (SIGKILL) with open
// streams cannot release their slots; another replica on the same Redis
// admits streams again within 10 s, as the slots expire.
func TestFaultKilledReplicaSlotsFreed(t *testing.T) {
	env := []string{"GROKGATE_REDIS_URL=" + redistest.URL(t)}
	db := filepath.Join(t.TempDir(), "g.db")
	a := startProcWith(t, procOpts{DB: db, Env: env})
	key := newKey(t, db, "--max-streams", "2")
	b := startProcWith(t, procOpts{DB: db, Env: env})
	for range 2 {
		resp := a.post(t, key, chatBody(`long #sim{"chunks":10000,"delay_ms":50}`, true))
		if resp.StatusCode != 200 {
			_, body := drain(resp)
			t.Fatalf("stream on replica a: %d %s", resp.StatusCode, body)
		}
		bufio.NewReader(resp.Body).ReadString('\n') // admitted and streaming
		defer resp.Body.Close()
	}
	stream := func() (int, string) { return drain(b.post(t, key, chatBody(`short #sim{"chunks":1}`, true))) }
	if status, body := stream(); status != 429 || !strings.Contains(body, "rate_limit_concurrency") {
		t.Fatalf("a third stream beside a's two: %d %s", status, body)
	}
	if err := a.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	for {
		status, body := stream()
		if status == 200 {
			break
		}
		if status != 429 || !strings.Contains(body, "rate_limit_concurrency") {
			t.Fatalf("stream on replica b: %d %s", status, body)
		}
		if time.Since(killed) > 10*time.Second {
			t.Fatal("the killed replica's slots still held 10 s after it died")
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("slots freed %v after the kill", time.Since(killed).Round(time.Millisecond))
}

// flushAll sends FLUSHALL to the Redis at a redis://host:port/0 URL.
func flushAll(t *testing.T, url string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", strings.TrimSuffix(strings.TrimPrefix(url, "redis://"), "/0"), 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte("FLUSHALL\r\n")); err != nil {
		t.Fatal(err)
	}
	if line, err := bufio.NewReader(c).ReadString('\n'); err != nil || line != "+OK\r\n" {
		t.Fatalf("FLUSHALL: %q %v", line, err)
	}
}

// TestFaultBudgetAfterRedisFlush: a key spends its daily budget; Redis
// then loses everything (FLUSHALL, as a restart without persistence would);
// the next request is still refused, its budget rebuilt from the ledger.
func TestFaultBudgetAfterRedisFlush(t *testing.T) {
	url := redistest.Private(t)
	db := filepath.Join(t.TempDir(), "g.db")
	p := startProcWith(t, procOpts{DB: db, Env: []string{"GROKGATE_REDIS_URL=" + url}})
	key := newKey(t, db, "--budget-ticks-per-day", "1")
	if status, body := drain(p.post(t, key, chatBody("spend", false))); status != 200 {
		t.Fatalf("first request: %d %s", status, body)
	}
	refused := func(what string) {
		t.Helper()
		status, body := drain(p.post(t, key, chatBody("more", false)))
		if status != 429 || !strings.Contains(body, "budget_exceeded") {
			t.Fatalf("%s: %d %s; want 429 budget_exceeded", what, status, body)
		}
	}
	refused("budget spent")
	// The ledger has the spending request's record.
	eventually(t, 10*time.Second, "the request's record in the ledger", func() bool {
		out, err := cli(t, nil, "usage", "--json", "--db", db)
		if err != nil {
			return false
		}
		var u struct {
			Data []struct {
				CompletedRequests int64 `json:"completed_requests"`
			} `json:"data"`
		}
		json.Unmarshal([]byte(out), &u)
		return len(u.Data) > 0 && u.Data[0].CompletedRequests >= 1
	})
	flushAll(t, url)
	refused("after FLUSHALL")
	if !strings.Contains(p.log.String(), "budget state rebuilt from the usage ledger") {
		t.Fatalf("no rebuild in the log:\n%s", p.log.String())
	}
}

// TestFaultRedisHangBreaker: while Redis hangs, the first limited request
// waits for the Redis timeout a few times, until the circuit breaker opens;
// every later request is answered without waiting on Redis (allow: served;
// deny: 503), and once Redis answers again the limits apply again.
func TestFaultRedisHangBreaker(t *testing.T) {
	target := strings.TrimSuffix(strings.TrimPrefix(redistest.URL(t), "redis://"), "/0")
	fp := faultproxy.Start(t, target)
	env := []string{"GROKGATE_REDIS_URL=redis://" + fp.Addr() + "/0", "GROKGATE_REDIS_TIMEOUT=1s"}
	db := filepath.Join(t.TempDir(), "g.db")
	allow := startProcWith(t, procOpts{DB: db, Env: env})
	deny := startProcWith(t, procOpts{DB: db, Env: env, Args: []string{"--ratelimit-on-error", "deny"}})
	key := newKey(t, db, "--rpm", "1000")
	for _, p := range []*proc{allow, deny} {
		if status, body := drain(p.post(t, key, chatBody("hi", false))); status != 200 {
			t.Fatalf("before the hang: %d %s", status, body)
		}
	}
	if err := fp.Set(faultproxy.Hang); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		p      *proc
		status int
	}{{allow, 200}, {deny, 503}} {
		var slow int
		for i := range 25 {
			start := time.Now()
			status, body := drain(c.p.post(t, key, chatBody("hi", false)))
			if status != c.status {
				t.Fatalf("request %d while Redis hangs: %d %s, want %d", i, status, body, c.status)
			}
			// A request that waited on Redis took its 1 s timeout at least.
			if time.Since(start) >= 900*time.Millisecond {
				slow++
			}
		}
		// The breaker opens after 3 failed calls: one or two requests
		// wait (a request makes up to 3 limiter calls), never more.
		if slow > 3 {
			t.Fatalf("%d of 25 requests waited on the hanging Redis", slow)
		}
		// The log is written in batches.
		eventually(t, 5*time.Second, "the breaker's opening in the log", func() bool {
			return strings.Contains(c.p.log.String(), "Redis is failing")
		})
		resp := c.p.get(t, "/metrics", allow.key) // the first start minted the admin key
		_, metrics := drain(resp)
		if !strings.Contains(metrics, `grokgate_ratelimit_breaker_state{state="open"} 1`) &&
			!strings.Contains(metrics, `grokgate_ratelimit_breaker_state{state="half_open"} 1`) {
			t.Fatalf("breaker state in /metrics (%d):\n%s", resp.StatusCode, grepLines(metrics, "breaker"))
		}
	}
	if err := fp.Set(faultproxy.Pass); err != nil {
		t.Fatal(err)
	}
	tight := newKey(t, db, "--rpm", "1")
	eventually(t, 20*time.Second, "limits applied again after Redis came back", func() bool {
		drain(deny.post(t, tight, chatBody("hi", false)))
		status, _ := drain(deny.post(t, tight, chatBody("hi", false)))
		return status == 429
	})
	eventually(t, 5*time.Second, "the breaker's closing in the log", func() bool {
		return strings.Contains(deny.log.String(), "Redis answers again")
	})
}

func (p *proc) get(t *testing.T, path, key string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest("GET", p.url+path, nil)
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func grepLines(s, word string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, word) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestFaultBudgetAfterRestart: with the in-memory limiter, a key that spent
// its budget is still refused after grokgate restarts: the new process
// reads the key's spending from the ledger.
func TestFaultBudgetAfterRestart(t *testing.T) {
	db := filepath.Join(t.TempDir(), "g.db")
	p := startProcWith(t, procOpts{DB: db})
	key := newKey(t, db, "--budget-ticks-per-day", "1")
	if status, body := drain(p.post(t, key, chatBody("spend", false))); status != 200 {
		t.Fatalf("first request: %d %s", status, body)
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := <-p.done; err != nil {
		t.Fatalf("exit: %v", err)
	}
	p = startProcWith(t, procOpts{DB: db})
	status, body := drain(p.post(t, key, chatBody("more", false)))
	if status != 429 || !strings.Contains(body, "budget_exceeded") {
		t.Fatalf("after the restart: %d %s; want 429 budget_exceeded", status, body)
	}
}
