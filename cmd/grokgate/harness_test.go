package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/grokgate/grokgate/internal/logtest"
)

// gw is a grokgate started in-process through run(), exactly as main does;
// run tells it where it listens (started), so nothing is read back from
// stdout.
type gw struct {
	URL        string      // http://127.0.0.1:PORT
	AdminKey   string      // minted on a first start; "" on later ones
	SimURL     string      // the built-in simulator's origin, when used
	MetricsURL string      // the metrics listener's origin, when asked for
	DB         string      // the store: a file path or a PostgreSQL DSN
	Log        *testWriter // the server's stderr

	cancel context.CancelFunc
	done   chan error
	out    logtest.Buffer
}

// simEnv is the environment of a gateway in front of the simulator at
// simURL (newSimulator), logging JSON, with pairs of extra variables.
func simEnv(simURL string, kv ...string) map[string]string {
	env := map[string]string{"XAI_API_KEY": "xai-test", "XAI_BASE_URL": simURL, "GROKGATE_LOG_FORMAT": "json"}
	for i := 0; i+1 < len(kv); i += 2 {
		env[kv[i]] = kv[i+1]
	}
	return env
}

// startGW runs `grokgate serve` on a free port with env and extra args. The
// database is a fresh file unless env or args name one.
func startGW(t *testing.T, env map[string]string, args ...string) *gw {
	t.Helper()
	g := &gw{DB: filepath.Join(t.TempDir(), "grokgate.db"), done: make(chan error, 1), Log: &testWriter{t: t}}
	// A PostgreSQL gateway's spool would default to the working
	// directory, the package's source: each test gets its own.
	spoolDir := t.TempDir()
	getenv := func(k string) string {
		if k == "GROKGATE_SPOOL_DIR" && env[k] == "" {
			return spoolDir
		}
		return env[k]
	}
	full := []string{"serve", "--addr", "127.0.0.1:0", "--db", g.DB}
	if db := env["GROKGATE_DB"]; db != "" {
		full, g.DB = full[:3], db // the store named by the environment, as a user would
	}
	full = append(full, args...)
	for i, a := range args {
		if a == "--db" && i+1 < len(args) {
			g.DB = args[i+1]
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	g.cancel = cancel
	var stderr io.Writer = g.Log
	if env["GROKGATE_TEST_QUIET_LOG"] != "" {
		// A soak's access log would otherwise pile up in the test's memory.
		stderr = io.Discard
		if f := env["GROKGATE_TEST_LOG_FILE"]; f != "" {
			lf, err := os.Create(f)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { lf.Close() })
			stderr = lf
		}
	}
	ready := make(chan started, 1)
	go func() {
		g.done <- runWith(ctx, full, getenv, strings.NewReader(""), &g.out, stderr, func(s started) { ready <- s })
	}()
	select {
	case s := <-ready:
		g.URL, g.AdminKey, g.SimURL, g.MetricsURL = s.URL, s.AdminKey, s.SimURL, s.MetricsURL
	case err := <-g.done:
		t.Fatalf("grokgate exited before listening: %v\nstdout:\n%s", err, g.stdout())
	case <-time.After(15 * time.Second):
		t.Fatalf("grokgate did not start listening; stdout:\n%s", g.stdout())
	}
	t.Cleanup(func() { g.stop(t) })
	return g
}

func (g *gw) stdout() string { return g.out.String() }

// stop cancels run's context (as SIGTERM does) and waits for it to return.
func (g *gw) stop(t *testing.T) error {
	t.Helper()
	if g.cancel == nil {
		return nil
	}
	// A connection the client dialled but never used holds http.Server's
	// Shutdown for 5s; a real client's would too, a test need not wait.
	client.CloseIdleConnections()
	g.cancel()
	g.cancel = nil
	select {
	case err := <-g.done:
		return err
	case <-time.After(40 * time.Second):
		t.Errorf("grokgate did not stop within 40s")
		return nil
	}
}

// secretRE finds a gateway key in what a command printed for people: the
// CLI's keys create, and a grokgate run as a real process (startProc),
// which has no other way to tell.
var secretRE = regexp.MustCompile(`gg-[A-Za-z0-9_-]{43}`)

var listenRE = regexp.MustCompile(`grokgate listening on (http://\S+) `)

// startedFrom reads what a serve printed for people once it listens.
func startedFrom(stdout string) (started, bool) {
	m := listenRE.FindStringSubmatch(stdout)
	if m == nil {
		return started{}, false
	}
	return started{URL: m[1], AdminKey: secretRE.FindString(stdout)}, true
}

// testWriter sends the server's log to the test log, shown only on failure,
// and keeps it for tests that read the log.
type testWriter struct {
	t   *testing.T
	mu  sync.Mutex
	all strings.Builder
}

func (w *testWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.all.String()
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.all.Write(p)
	w.t.Logf("%s", strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// post sends a JSON body with a key and returns the response.
func (g *gw) post(t *testing.T, path, key, body string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, g.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	return resp
}

type simStats struct {
	Requests         int64 `json:"requests"`
	StreamsStarted   int64 `json:"streams_started"`
	StreamsCompleted int64 `json:"streams_completed"`
	StreamsCanceled  int64 `json:"streams_canceled"`
	RequestsCanceled int64 `json:"requests_canceled"`
}

func (g *gw) simStats(t *testing.T) simStats {
	t.Helper()
	resp, err := http.Get(g.SimURL + "/sim/stats")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var s simStats
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		t.Fatal(err)
	}
	return s
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s", within, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// errorEnvelope is the OpenAI error body, decoded strictly enough to catch a
// missing key.
type errorEnvelope struct {
	Error *struct {
		Message *string `json:"message"`
		Type    *string `json:"type"`
		Param   any     `json:"param"`
		Code    any     `json:"code"`
	} `json:"error"`
}

// readError checks resp is an error with status and a full OpenAI envelope,
// and returns the envelope's message and code.
func readError(t *testing.T, resp *http.Response, status int) (msg, code string) {
	t.Helper()
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != status {
		t.Fatalf("status %d, want %d; body %s", resp.StatusCode, status, body)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("error Content-Type %q", ct)
	}
	var raw map[string]map[string]json.RawMessage
	if err := json.Unmarshal(body, &raw); err != nil {
		t.Fatalf("error body is not an envelope: %s", body)
	}
	for _, k := range []string{"message", "type", "param", "code"} {
		if _, ok := raw["error"][k]; !ok {
			t.Fatalf("envelope lacks error.%s: %s", k, body)
		}
	}
	var env errorEnvelope
	json.Unmarshal(body, &env)
	if env.Error.Message == nil || *env.Error.Message == "" {
		t.Fatalf("empty message: %s", body)
	}
	if resp.Header.Get("X-Request-Id") == "" {
		t.Fatalf("no X-Request-Id on error response")
	}
	c, _ := env.Error.Code.(string)
	return *env.Error.Message, c
}

// startSimulatorForTest runs `grokgate simulate` through run() and returns
// its origin.
func startSimulatorForTest(t *testing.T, apiKey string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	ready := make(chan started, 1)
	go func() {
		done <- runWith(ctx, []string{"simulate", "--addr", "127.0.0.1:0", "--api-key", apiKey}, func(string) string { return "" },
			nil, io.Discard, &testWriter{t: t}, func(s started) { ready <- s })
	}()
	t.Cleanup(func() { cancel(); <-done })
	select {
	case s := <-ready:
		return s.URL
	case err := <-done:
		t.Fatalf("simulate: %v", err)
	}
	return ""
}

// chatOnly is a fake xAI that answers its chat route with h and, like an
// xAI without a model list, GET /language-models (which grokgate fetches at
// start for prices) with 404, so h sees only the requests under test.
func chatOnly(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/language-models") {
			http.Error(w, `{"code":"Some requested entity was not found","error":"not found"}`, http.StatusNotFound)
			return
		}
		h(w, r)
	})
}
