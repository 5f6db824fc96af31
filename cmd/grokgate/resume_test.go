package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/grokgate/grokgate/internal/pgtest"
	"github.com/grokgate/grokgate/internal/redistest"
)

// replicaEnv is the environment of replicas sharing one PostgreSQL schema,
// one Redis prefix and one xAI simulator.
func replicaEnv(t *testing.T) (dsn string, env []string) {
	t.Helper()
	dsn = pgtest.Schema(t)
	_, simURL := newSimulator(t)
	return dsn, []string{"XAI_API_KEY=xai-test", "XAI_BASE_URL=" + simURL,
		"GROKGATE_REDIS_URL=" + redistest.URL(t), "GROKGATE_REDIS_PREFIX=" + redistest.Prefix(),
		"GROKGATE_STREAM_LEASE=1s", "GROKGATE_HEARTBEAT=0"}
}

// wireEvent is one SSE event as received.
type wireEvent struct {
	id, data, raw string
}

// readEvents reads events from br until n were read (n < 0: to the end).
func readEvents(br *bufio.Reader, n int) []wireEvent {
	var evs []wireEvent
	var ev wireEvent
	for n < 0 || len(evs) < n {
		line, err := br.ReadString('\n')
		if err != nil {
			return evs
		}
		switch {
		case line == "\n":
			if ev.raw != "" {
				ev.raw += "\n"
				evs = append(evs, ev)
			}
			ev = wireEvent{}
		case strings.HasPrefix(line, ":"):
		case strings.HasPrefix(line, "id: "):
			ev.id = strings.TrimSpace(line[4:])
		default:
			if strings.HasPrefix(line, "data: ") {
				ev.data = strings.TrimSuffix(line[6:], "\n")
			}
			ev.raw += line
		}
	}
	return evs
}

func contentOf(t *testing.T, evs []wireEvent) string {
	t.Helper()
	var b strings.Builder
	for _, ev := range evs {
		if ev.data == "[DONE]" || ev.data == "" {
			continue
		}
		var c struct {
			Choices []struct {
				Delta struct{ Content string } `json:"delta"`
			} `json:"choices"`
		}
		if err := json.Unmarshal([]byte(ev.data), &c); err != nil {
			t.Fatalf("event %q: %v", ev.data, err)
		}
		for _, ch := range c.Choices {
			b.WriteString(ch.Delta.Content)
		}
	}
	return b.String()
}

// openStream sends a request and returns the response with its body unread.
func openStream(t *testing.T, ctx context.Context, method, url, key, body string, hdr ...string) *http.Response {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, _ := http.NewRequestWithContext(ctx, method, url, rd)
	req.Header.Set("Authorization", "Bearer "+key)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := (&http.Client{Transport: &http.Transport{}}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// startNginx runs Debian's nginx, as this user, round-robin in front of
// backends, on a free port; each answer names its backend in X-Upstream.
func startNginx(t *testing.T, backends []string) string {
	t.Helper()
	bin, err := exec.LookPath("nginx")
	if err != nil {
		for _, p := range []string{"/usr/sbin/nginx", "/usr/local/sbin/nginx"} {
			if _, e := os.Stat(p); e == nil {
				bin, err = p, nil
			}
		}
	}
	if err != nil {
		msg := "nginx is not installed (apt-get install nginx; .ci/run does)"
		if os.Getenv("GROKGATE_REQUIRE_SERVICES") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	dir := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	var servers strings.Builder
	for _, b := range backends {
		fmt.Fprintf(&servers, "    server %s;\n", strings.TrimPrefix(b, "http://"))
	}
	// One process, no workers: nothing outlives the test's kill.
	conf := fmt.Sprintf(`master_process off;
daemon off;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log warn;
events { worker_connections 256; }
http {
  access_log off;
  client_body_temp_path %[1]s/body;
  proxy_temp_path %[1]s/proxy;
  fastcgi_temp_path %[1]s/fastcgi;
  uwsgi_temp_path %[1]s/uwsgi;
  scgi_temp_path %[1]s/scgi;
  upstream grokgate {
%[2]s  }
  server {
    listen %[3]s;
    location / {
      proxy_pass http://grokgate;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
      proxy_read_timeout 120s;
      add_header X-Upstream $upstream_addr always;
    }
  }
}
`, dir, servers.String(), addr)
	path := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-p", dir, "-e", filepath.Join(dir, "error.log"), "-c", path)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			return "http://" + addr
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			t.Fatalf("nginx did not start: %s", b)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestResumeThroughNginx: three replicas on one PostgreSQL and Redis behind
// nginx. A resumable stream dropped at a random event and resumed through
// nginx on another replica gives, with what came before the drop, each
// event once and in order, byte for byte the stream as logged, and the
// text of an uninterrupted run.
func TestResumeThroughNginx(t *testing.T) {
	dsn, env := replicaEnv(t)
	a := startProcWith(t, procOpts{DB: dsn, Env: env})
	b := startProcWith(t, procOpts{DB: dsn, Env: env})
	c := startProcWith(t, procOpts{DB: dsn, Env: env})
	lb := startNginx(t, []string{a.url, b.url, c.url})
	key := a.key
	body := chatBody(`Tell a story. #sim{"chunks":40,"delay_ms":10}`, true)

	plain := openStream(t, context.Background(), "POST", lb+"/api/v1/chat/completions", key, body)
	want := contentOf(t, readEvents(bufio.NewReader(plain.Body), -1))
	if plain.StatusCode != 200 || want == "" {
		t.Fatalf("plain run: %d %q", plain.StatusCode, want)
	}

	for round := range 3 {
		ctx, drop := context.WithCancel(context.Background())
		first := openStream(t, ctx, "POST", lb+"/api/v1/chat/completions", key, body, "X-Grokgate-Resumable", "true")
		id, origin := first.Header.Get("X-Grokgate-Stream-Id"), first.Header.Get("X-Upstream")
		if first.StatusCode != 200 || id == "" || origin == "" {
			t.Fatalf("status %d, stream id %q, upstream %q", first.StatusCode, id, origin)
		}
		cut := 1 + rand.IntN(30)
		got := readEvents(bufio.NewReader(first.Body), cut)
		drop()
		if len(got) != cut {
			t.Fatalf("round %d: %d events before the drop, want %d", round, len(got), cut)
		}
		var rest *http.Response
		for range 6 {
			r := openStream(t, context.Background(), "GET", lb+"/api/v1/chat/completions/"+id+"/stream", key, "",
				"Last-Event-ID", got[len(got)-1].id)
			if r.Header.Get("X-Upstream") != origin {
				rest = r
				break
			}
			r.Body.Close()
		}
		if rest == nil || rest.StatusCode != 200 {
			t.Fatalf("round %d: no resume on another replica than %s", round, origin)
		}
		got = append(got, readEvents(bufio.NewReader(rest.Body), -1)...)
		whole := readEvents(bufio.NewReader(openStream(t, context.Background(), "GET", lb+"/api/v1/chat/completions/"+id+"/stream", key, "").Body), -1)
		if len(got) != len(whole) {
			t.Fatalf("round %d (cut at %d, resumed off %s on %s): %d events, the whole stream has %d",
				round, cut, origin, rest.Header.Get("X-Upstream"), len(got), len(whole))
		}
		for i := range got {
			if got[i].id != strconv.Itoa(i+1) || got[i] != whole[i] {
				t.Fatalf("round %d event %d: %+v, whole stream %+v", round, i, got[i], whole[i])
			}
		}
		if got[len(got)-1].data != "[DONE]" {
			t.Fatalf("round %d: last event %q", round, got[len(got)-1].data)
		}
		if text := contentOf(t, got); text != want {
			t.Fatalf("round %d: text %q, an uninterrupted run's %q", round, text, want)
		}
	}
	// One record per generation, written by the replica that ran it,
	// though other replicas served the resumes.
	u := keyUsage(t, a.url, key, 4)
	if u.Requests != 4 || u.Completed != 4 || u.Estimated != 0 {
		t.Fatalf("usage %+v, want 4 requests, all completed with xAI's usage", u)
	}
}

type usageRow struct {
	KeyID     string `json:"key_id"`
	Requests  int64  `json:"requests"`
	Completed int64  `json:"completed_requests"`
	Estimated int64  `json:"estimated_requests"`
}

// keyUsage returns the ledger's row of the key whose secret is key (an
// admin key) once it counts n requests, or what it counts at a deadline.
func keyUsage(t *testing.T, base, key string, n int64) usageRow {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, body, err := call(t, context.Background(), "GET", base+"/admin/v1/usage?group_by=key", key, "")
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("usage: %v %s", err, body)
		}
		var v struct{ Data []usageRow }
		json.Unmarshal(body, &v)
		var row usageRow
		for _, r := range v.Data {
			row.Requests += r.Requests
			row.Completed += r.Completed
			row.Estimated += r.Estimated
		}
		if row.Requests >= n || time.Now().After(deadline) {
			return row
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestCancelOnAnotherReplica: a background response running on one
// replica is cancelled through another, and both then say so.
func TestCancelOnAnotherReplica(t *testing.T) {
	dsn, env := replicaEnv(t)
	a := startProcWith(t, procOpts{DB: dsn, Env: env})
	b := startProcWith(t, procOpts{DB: dsn, Env: env})
	ctx := context.Background()
	resp, body, err := call(t, ctx, "POST", a.url+"/v1/responses", a.key,
		`{"model":"grok-4.3","input":"On and on. #sim{\"chunks\":2000,\"delay_ms\":10}","background":true}`)
	var r struct{ ID, Status string }
	if err != nil || resp.StatusCode != 200 || json.Unmarshal(body, &r) != nil || r.Status != "in_progress" {
		t.Fatalf("create: %v %s", err, body)
	}
	resp, body, err = call(t, ctx, "POST", b.url+"/v1/responses/"+r.ID+"/cancel", a.key, "")
	if err != nil || resp.StatusCode != 200 || !strings.Contains(string(body), `"status":"cancelled"`) {
		t.Fatalf("cancel through the other replica: %v %s", err, body)
	}
	resp, body, err = call(t, ctx, "GET", a.url+"/v1/responses/"+r.ID, a.key, "")
	if err != nil || resp.StatusCode != 200 || !strings.Contains(string(body), `"status":"cancelled"`) {
		t.Fatalf("on the replica that ran it: %v %s", err, body)
	}
}

// TestResumeAfterReplicaKilled: the replica running a generation is killed
// (SIGKILL) mid-stream; a resume on another replica gets every event it
// stored, then the interrupted error event, and ends instead of waiting.
func TestResumeAfterReplicaKilled(t *testing.T) {
	dsn, env := replicaEnv(t)
	a := startProcWith(t, procOpts{DB: dsn, Env: env})
	b := startProcWith(t, procOpts{DB: dsn, Env: env})
	key := a.key
	ctx, drop := context.WithCancel(context.Background())
	first := openStream(t, ctx, "POST", a.url+"/api/v1/chat/completions", key,
		chatBody(`Go on. #sim{"chunks":2000,"delay_ms":10}`, true), "X-Grokgate-Resumable", "true")
	id := first.Header.Get("X-Grokgate-Stream-Id")
	got := readEvents(bufio.NewReader(first.Body), 3)
	drop()
	if len(got) != 3 {
		t.Fatalf("%d events", len(got))
	}
	if err := a.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-a.done
	start := time.Now()
	rest := openStream(t, context.Background(), "GET", b.url+"/api/v1/chat/completions/"+id+"/stream", key, "", "Last-Event-ID", "3")
	evs := readEvents(bufio.NewReader(rest.Body), -1)
	if rest.StatusCode != 200 || len(evs) < 1 {
		t.Fatalf("resume: %d, %d events", rest.StatusCode, len(evs))
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Fatalf("the resume took %s", took)
	}
	last := evs[len(evs)-1]
	if last.data != `{"error":"API error: the generation was interrupted; send the request again"}` || last.id != "" {
		t.Fatalf("last event %+v", last)
	}
	for i, ev := range evs[:len(evs)-1] {
		if ev.id != strconv.Itoa(i+4) || ev.data == "[DONE]" {
			t.Fatalf("event %d: %+v", i, ev)
		}
	}
}

// TestDrainBackgroundOnSIGTERM: a background generation whose client is
// gone is given the drain timeout like any stream: at SIGTERM the process
// waits for it to end, records its usage and exits 0.
func TestDrainBackgroundOnSIGTERM(t *testing.T) {
	p := startProc(t, "--drain-timeout", "20s")
	resp, body, err := call(t, context.Background(), "POST", p.url+"/v1/responses", p.key,
		`{"model":"grok-4.3","input":"Count. #sim{\"chunks\":40,\"delay_ms\":20}","background":true}`)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("create: %v %s", err, body)
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := waitExit(t, p, 20*time.Second); err != nil {
		t.Fatalf("exit: %v", err)
	}
	out, err := cli(t, nil, "usage", "--json", "--db", p.db)
	if err != nil {
		t.Fatal(err)
	}
	var ledger struct {
		Data []usageRow `json:"data"`
	}
	if err := json.Unmarshal([]byte(out), &ledger); err != nil {
		t.Fatalf("usage --json: %v\n%s", err, out)
	}
	if len(ledger.Data) != 1 || ledger.Data[0].Requests != 1 || ledger.Data[0].Completed != 1 {
		t.Fatalf("ledger after the drain: %s", out)
	}
}

// TestResumableEveryByteSplit: xAI's stream split at every byte reaches a
// resumable stream's client, and a full replay, as each event byte for
// byte after its id: line.
func TestResumableEveryByteSplit(t *testing.T) {
	events := []string{
		"data: {\"id\":\"a\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Ol\\u00e1\",\"role\":\"assistant\"}}]}\n\n",
		": keep-alive\n\n",
		"data: {\"id\":\"a\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"\\n\\n\"}}]}\r\n\r\n",
		"data: {\"id\":\"a\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n",
		"data: [DONE]\n\n",
	}
	stream, want := strings.Join(events, ""), ""
	for i, ev := range events {
		want += "id: " + strconv.Itoa(i+1) + "\n" + ev
	}
	split := make(chan int, 1)
	upstream := httptest.NewServer(chatOnly(func(w http.ResponseWriter, r *http.Request) {
		i := <-split
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, stream[:i])
		http.NewResponseController(w).Flush()
		io.WriteString(w, stream[i:])
	}))
	defer upstream.Close()
	g := startGW(t, map[string]string{"XAI_API_KEY": "xai-test", "XAI_BASE_URL": upstream.URL, "GROKGATE_HEARTBEAT": "0"})
	for i := 1; i < len(stream); i++ {
		split <- i
		resp := openStream(t, context.Background(), "POST", g.URL+"/api/v1/chat/completions", g.AdminKey,
			`{"model":"m","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"x"}]}`, "X-Grokgate-Resumable", "true")
		got, err := io.ReadAll(resp.Body)
		if err != nil || string(got) != want {
			t.Fatalf("split at %d: got %q (err %v)", i, got, err)
		}
		replay := openStream(t, context.Background(), "GET", g.URL+"/api/v1/chat/completions/"+resp.Header.Get("X-Grokgate-Stream-Id")+"/stream", g.AdminKey, "")
		if got, err := io.ReadAll(replay.Body); err != nil || string(got) != want {
			t.Fatalf("split at %d, replayed: got %q (err %v)", i, got, err)
		}
	}
}
