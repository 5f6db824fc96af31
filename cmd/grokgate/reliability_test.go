package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/grokgate/grokgate/internal/logtest"
	"github.com/grokgate/grokgate/postgres"
)

// TestMain lets the test binary act as the grokgate command, so tests can
// run it as a real process and signal it.
func TestMain(m *testing.M) {
	if os.Getenv("GROKGATE_TEST_AS_MAIN") == "1" {
		main()
		return
	}
	os.Exit(m.Run())
}

func streamBody(t *testing.T, g *gw, content string) string {
	t.Helper()
	resp := g.post(t, "/api/v1/chat/completions", g.AdminKey, chatBody(content, true))
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, b)
	}
	return string(b)
}

func TestHeartbeatDuringSlowFirstToken(t *testing.T) {
	g := startGW(t, nil, "--heartbeat", "100ms")
	body := streamBody(t, g, `think #sim{"ttft_ms":600,"chunks":3}`)
	first := strings.Index(body, "data: ")
	hb := strings.Index(body, ": keep-alive\n\n")
	if hb < 0 || hb > first {
		t.Fatalf("no heartbeat before the first event: %q", body)
	}
	if !strings.HasSuffix(body, "data: [DONE]\n\n") {
		t.Fatalf("stream incomplete: %q", body)
	}
	for _, bad := range []string{"id:", "retry:", "data: \n", "data:\n"} {
		if strings.Contains(body, bad) {
			t.Fatalf("heartbeat wrote %q: %q", bad, body)
		}
	}
	// A fast stream gets no heartbeat.
	if body := streamBody(t, g, "quick"); strings.Contains(body, "keep-alive") {
		t.Fatalf("heartbeat in a fast stream: %q", body)
	}
}

func TestStreamTimeouts(t *testing.T) {
	t.Run("idle gap", func(t *testing.T) {
		g := startGW(t, nil, "--stream-idle-timeout", "300ms", "--heartbeat", "0")
		body := streamBody(t, g, `x #sim{"chunks":3,"delay_ms":5000}`)
		if !strings.Contains(body, `data: {"error":"API error: xAI sent nothing for 300ms`) || strings.Contains(body, "[DONE]") {
			t.Fatalf("body %q", body)
		}
	})
	t.Run("first byte after a heartbeat began the stream", func(t *testing.T) {
		g := startGW(t, nil, "--first-byte-timeout", "400ms", "--heartbeat", "100ms")
		body := streamBody(t, g, `x #sim{"ttft_ms":5000}`)
		if !strings.HasPrefix(body, ": keep-alive") || !strings.Contains(body, `"error":"API error: xAI did not start answering in time"`) {
			t.Fatalf("body %q", body)
		}
	})
	t.Run("total", func(t *testing.T) {
		g := startGW(t, nil, "--total-timeout", "500ms")
		body := streamBody(t, g, `x #sim{"chunks":100,"delay_ms":50}`)
		if !strings.Contains(body, `"error":"API error: the stream ran longer than the gateway allows (500ms)"`) {
			t.Fatalf("body %q", body)
		}
	})
	t.Run("total before the first byte is a 504", func(t *testing.T) {
		g := startGW(t, nil, "--total-timeout", "300ms")
		_, code := readError(t, g.post(t, "/api/v1/chat/completions", g.AdminKey, chatBody(`x #sim{"hang":true}`, false)), 504)
		if code != "upstream_timeout" {
			t.Fatalf("code %q", code)
		}
	})
}

// proc is grokgate run as a real process (the test binary acting as main).
type proc struct {
	cmd  *exec.Cmd
	url  string
	key  string
	db   string
	log  *logtest.Buffer // the process's stderr (the JSON log)
	done chan error
}

// procOpts says how to start a grokgate process.
type procOpts struct {
	// DB is the store: a SQLite path or a PostgreSQL URL; empty is a new
	// SQLite file in a temporary directory.
	DB string
	// Env is added to the process's environment (KEY=value).
	Env []string
	// Args follow "serve --addr 127.0.0.1:0 --db DB".
	Args []string
	// NoWait returns as soon as the process has started, without waiting
	// for its listening line (for tests of a start-up that cannot finish).
	NoWait bool
}

func startProc(t *testing.T, args ...string) *proc {
	t.Helper()
	return startProcWith(t, procOpts{Args: args})
}

// startProcWith starts grokgate as a real process, so tests can signal,
// kill and restart it. It is killed when the test ends.
func startProcWith(t *testing.T, o procOpts) *proc {
	t.Helper()
	db := o.DB
	if db == "" {
		db = filepath.Join(t.TempDir(), "p.db")
	}
	cmd := exec.Command(os.Args[0], append([]string{"serve", "--addr", "127.0.0.1:0", "--db", db}, o.Args...)...)
	// The spool defaults beside a SQLite file; a PostgreSQL one's would
	// be the package's source directory.
	env := []string{"GROKGATE_TEST_AS_MAIN=1", "XAI_API_KEY=", "GROKGATE_LOG_FORMAT=json"}
	if postgres.IsDSN(db) {
		env = append(env, "GROKGATE_SPOOL_DIR="+t.TempDir())
	}
	cmd.Env = append(append(os.Environ(), env...), o.Env...)
	stdout, _ := cmd.StdoutPipe()
	p := &proc{cmd: cmd, db: db, log: &logtest.Buffer{}, done: make(chan error, 1)}
	cmd.Stderr = p.log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill() })
	if o.NoWait {
		go io.Copy(io.Discard, stdout)
		go func() { p.done <- cmd.Wait() }()
		return p
	}
	sc := bufio.NewScanner(stdout)
	var out strings.Builder
	for sc.Scan() {
		out.WriteString(sc.Text() + "\n")
		if s, ok := startedFrom(out.String()); ok {
			p.url, p.key = s.URL, s.AdminKey
			break
		}
	}
	go io.Copy(io.Discard, stdout)
	go func() { p.done <- cmd.Wait() }()
	if p.url == "" {
		t.Fatalf("process did not start:\n%s\n%s", out.String(), p.log.String())
	}
	return p
}

// TestDrainOnSIGTERM: streams open at SIGTERM finish, new connections are
// refused, and the process exits 0; streams outlasting the drain deadline
// end with the SSE error event instead of a cut connection.
func TestDrainOnSIGTERM(t *testing.T) {
	p := startProc(t, "--drain-timeout", "20s")
	const n = 100
	bodies := make([]string, n)
	var wg sync.WaitGroup
	started := make(chan struct{}, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			req, _ := http.NewRequest("POST", p.url+"/api/v1/chat/completions",
				strings.NewReader(chatBody(fmt.Sprintf(`stream %d #sim{"chunks":10,"delay_ms":100}`, i), true)))
			req.Header.Set("Authorization", "Bearer "+p.key)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				bodies[i] = "error: " + err.Error()
				started <- struct{}{}
				return
			}
			br := bufio.NewReader(resp.Body)
			first, _ := br.ReadString('\n')
			started <- struct{}{}
			rest, _ := io.ReadAll(br)
			resp.Body.Close()
			bodies[i] = first + string(rest)
		}(i)
	}
	for i := 0; i < n; i++ {
		<-started
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	for i, b := range bodies {
		if !strings.HasSuffix(b, "data: [DONE]\n\n") {
			t.Fatalf("stream %d did not finish: %q", i, b)
		}
	}
	if err := waitExit(t, p, 20*time.Second); err != nil {
		t.Fatalf("exit: %v", err)
	}
	// Every stream that finished during the drain has its usage record.
	out, err := cli(t, nil, "usage", "--json", "--db", p.db)
	if err != nil {
		t.Fatal(err)
	}
	var ledger struct {
		Data []struct {
			Requests          int64 `json:"requests"`
			CompletedRequests int64 `json:"completed_requests"`
		} `json:"data"`
	}
	if err := json.Unmarshal([]byte(out), &ledger); err != nil {
		t.Fatalf("usage --json: %v\n%s", err, out)
	}
	var requests, completed int64
	for _, row := range ledger.Data {
		requests += row.Requests
		completed += row.CompletedRequests
	}
	if requests != n || completed != n {
		t.Fatalf("ledger after the drain: %d requests, %d completed; want %d of each", requests, completed, n)
	}

	t.Run("past the drain deadline", func(t *testing.T) {
		p := startProc(t, "--drain-timeout", "300ms")
		req, _ := http.NewRequest("POST", p.url+"/api/v1/chat/completions",
			strings.NewReader(chatBody(`long #sim{"chunks":1000,"delay_ms":50}`, true)))
		req.Header.Set("Authorization", "Bearer "+p.key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		br := bufio.NewReader(resp.Body)
		br.ReadString('\n')
		p.cmd.Process.Signal(syscall.SIGTERM)
		rest, _ := io.ReadAll(br)
		if !strings.HasSuffix(string(rest), `data: {"error":"API error: grokgate is shutting down; send the request again"}`+"\n\n") {
			t.Fatalf("stream ended with %q", tail(string(rest)))
		}
		if err := <-p.done; err != nil {
			t.Fatalf("exit: %v", err)
		}
	})
}

func tail(s string) string {
	if len(s) > 300 {
		return s[len(s)-300:]
	}
	return s
}
