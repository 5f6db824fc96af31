package main

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/grokgate/grokgate"
	"github.com/grokgate/grokgate/internal/logtest"
	"github.com/grokgate/grokgate/pricing"
	"github.com/grokgate/grokgate/simulator"
	"github.com/grokgate/grokgate/sqlite"
)

func newSimulator(t *testing.T) (*simulator.Simulator, string) {
	sim := simulator.New(simulator.Options{})
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	return sim, srv.URL + "/v1"
}

var client = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 512}}

func call(t *testing.T, ctx context.Context, method, url, key, body string) (*http.Response, []byte, error) {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp, b, err
}

func ledgerBody(model, prompt string, stream, includeUsage bool) string {
	req := map[string]any{
		"model":     model,
		"messages":  []map[string]any{{"role": "system", "content": "Be brief."}, {"role": "user", "content": prompt}},
		"x_unknown": map[string]any{"kept": true},
	}
	if stream {
		req["stream"] = true
	}
	if includeUsage {
		req["stream_options"] = map[string]any{"include_usage": true}
	}
	b, _ := json.Marshal(req)
	return string(b)
}

// kind is one sort of request in the mixed load.
type kind struct {
	name      string
	body      func(i int) string
	leaves    bool // the client goes away after the first event
	outcome   grokgate.Outcome
	exact     bool // tokens equal simulator.ExpectedUsage
	estimated bool
	wantUsage int // usage-bearing events the client must see
}

var kinds = []kind{
	{name: "non-stream", body: func(i int) string { return ledgerBody("grok-4.3", fmt.Sprintf("question %d", i), false, false) },
		outcome: grokgate.OutcomeCompleted, exact: true},
	{name: "stream", body: func(i int) string {
		return ledgerBody("grok-4-1-fast-reasoning", fmt.Sprintf("stream %d", i), true, false)
	},
		outcome: grokgate.OutcomeCompleted, exact: true},
	{name: "stream+usage", body: func(i int) string {
		return ledgerBody("grok-4.20-0309-reasoning", fmt.Sprintf(`with usage %d #sim{"cached_tokens":5}`, i), true, true)
	}, outcome: grokgate.OutcomeCompleted, exact: true, wantUsage: 1},
	{name: "upstream 503", body: func(i int) string { return ledgerBody("grok-4.3", `#sim{"status":503}`, i%2 == 0, false) },
		outcome: grokgate.OutcomeUpstreamError},
	{name: "stream error", body: func(i int) string { return ledgerBody("grok-4.3", `#sim{"error_after":2}`, true, false) },
		outcome: grokgate.OutcomeUpstreamError, estimated: true},
	{name: "stream cut", body: func(i int) string { return ledgerBody("grok-3", `#sim{"cut_after":3}`, true, true) },
		outcome: grokgate.OutcomeUpstreamError, estimated: true},
	{name: "client leaves stream", body: func(i int) string {
		return ledgerBody("grok-4.3", `#sim{"chunks":50,"delay_ms":20}`, true, false)
	}, leaves: true, outcome: grokgate.OutcomeClientCanceled, estimated: true},
	{name: "invalid", body: func(i int) string { return `{"model":"grok-4.3","messages":[]}` }, outcome: grokgate.OutcomeRejected},
}

type sent struct {
	kind      *kind
	body      string
	requestID string
	status    int
	response  []byte
	done      bool // the client read the whole answer ([DONE] for streams)
}

// fire sends body and records what the client saw.
func fire(t *testing.T, base, key string, k *kind, body string) *sent {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s := &sent{kind: k, body: body}
	if k != nil && k.leaves {
		// Read the first event, then go away mid-stream.
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1/chat/completions", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := client.Do(req)
		if err != nil {
			return s
		}
		s.requestID, s.status = resp.Header.Get("X-Request-Id"), resp.StatusCode
		first, _ := bufio.NewReader(resp.Body).ReadString('\n')
		s.response = []byte(first)
		cancel()
		resp.Body.Close()
		return s
	}
	resp, b, err := call(t, ctx, http.MethodPost, base+"/v1/chat/completions", key, body)
	if resp != nil {
		s.requestID, s.status = resp.Header.Get("X-Request-Id"), resp.StatusCode
	}
	s.response = b
	s.done = err == nil && (!strings.Contains(body, `"stream":true`) || bytes.HasSuffix(b, []byte("data: [DONE]\n\n")))
	return s
}

func usageEvents(b []byte) int { return bytes.Count(b, []byte(`"usage"`)) }

// checkRecord compares a stored record with what was sent and seen.
func checkRecord(t *testing.T, s *sent, r grokgate.Record) {
	t.Helper()
	k := s.kind
	if r.Outcome != k.outcome || r.Estimated != k.estimated {
		t.Errorf("%s (%s): outcome %s estimated %v; want %s %v", k.name, s.requestID, r.Outcome, r.Estimated, k.outcome, k.estimated)
	}
	if s.status != 0 && r.Status != s.status && k.outcome != grokgate.OutcomeClientCanceled {
		t.Errorf("%s: record status %d, client saw %d", k.name, r.Status, s.status)
	}
	if k.exact {
		exp, err := simulator.ExpectedUsage([]byte(s.body))
		if err != nil {
			t.Fatal(err)
		}
		if r.PromptTokens != int64(exp.PromptTokens) || r.CompletionTokens != int64(exp.CompletionTokens) ||
			r.ReasoningTokens != int64(exp.CompletionTokensDetails.ReasoningTokens) ||
			r.CachedTokens != int64(exp.PromptTokensDetails.CachedTokens) || r.CostTicks != exp.CostInUSDTicks {
			t.Errorf("%s: recorded p%d c%d r%d cached%d cost%d; simulator reported %+v", k.name, r.PromptTokens,
				r.CompletionTokens, r.ReasoningTokens, r.CachedTokens, r.CostTicks, exp)
		}
	}
	if k.estimated {
		// The estimated tokens at the model's listed prices, never 0.
		model := r.Model
		if model == "" {
			model = r.RequestedModel
		}
		want := pricing.EstimateCost(pricing.Fallback(), model, pricing.Tokens{Prompt: r.PromptTokens,
			Completion: r.CompletionTokens, Reasoning: r.ReasoningTokens})
		if r.PromptTokens == 0 || r.CostTicks != want || r.CostTicks <= 0 {
			t.Errorf("%s: estimate prompt %d cost %d, want cost %d", k.name, r.PromptTokens, r.CostTicks, want)
		}
	}
	if strings.Contains(s.body, `"stream":true`) && s.status == 200 && usageEvents(s.response) != k.wantUsage {
		t.Errorf("%s: the client saw %d usage events, want %d", k.name, usageEvents(s.response), k.wantUsage)
	}
}

func storedRecords(t *testing.T, db string) []grokgate.Record {
	t.Helper()
	st, err := openStore(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	lister, ok := st.(interface {
		UsageRecords(ctx context.Context, from, to time.Time) ([]grokgate.Record, error)
	})
	if !ok {
		t.Fatal("the store cannot list records")
	}
	recs, err := lister.UsageRecords(context.Background(), time.Time{}, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

// TestE2EMixedRequests: N requests of every kind, concurrently, through a
// real serve on SQLite; after it stops, the ledger has exactly N records,
// each with the simulator's figures.
func TestE2EMixedRequests(t *testing.T) {
	_, simURL := newSimulator(t)
	db := filepath.Join(t.TempDir(), "grokgate.db")
	g := startGW(t, simEnv(simURL, "GROKGATE_DB", db))
	if g.AdminKey == "" {
		t.Fatal("the first start printed no admin key")
	}
	const perKind = 6
	var (
		mu   sync.Mutex
		all  []*sent
		wg   sync.WaitGroup
		work = make(chan func())
	)
	for range 8 {
		go func() {
			for f := range work {
				f()
			}
		}()
	}
	for i := range perKind {
		for k := range kinds {
			wg.Add(1)
			work <- func() {
				defer wg.Done()
				s := fire(t, g.URL, g.AdminKey, &kinds[k], kinds[k].body(i))
				mu.Lock()
				all = append(all, s)
				mu.Unlock()
			}
		}
	}
	wg.Wait()
	close(work)
	// A request without a key is refused and not a ledger entry.
	if resp, _, _ := call(t, context.Background(), http.MethodPost, g.URL+"/v1/chat/completions", "", ledgerBody("grok-4.3", "x", false, false)); resp.StatusCode != 401 {
		t.Errorf("no key: %d", resp.StatusCode)
	}
	if err := g.stop(t); err != nil {
		t.Errorf("serve returned %v", err)
	}

	recs := storedRecords(t, db)
	// A key's refused requests reach the ledger once a minute: the first
	// of them (two if the run straddles a minute).
	refused, refusedRecs := 0, 0
	for _, s := range all {
		if s.kind.outcome == grokgate.OutcomeRejected {
			refused++
		}
	}
	for _, r := range recs {
		if r.Outcome == grokgate.OutcomeRejected {
			refusedRecs++
		}
	}
	if refused > 0 && (refusedRecs < 1 || refusedRecs > 2) {
		t.Errorf("%d ledger records for %d refused requests, want one a minute", refusedRecs, refused)
	}
	if want := len(all) - refused + refusedRecs; len(recs) != want {
		t.Errorf("%d records for %d requests, want %d", len(recs), len(all), want)
	}
	byID := map[string]grokgate.Record{}
	for _, r := range recs {
		if _, dup := byID[r.RequestID]; dup {
			t.Errorf("request %s recorded twice", r.RequestID)
		}
		byID[r.RequestID] = r
	}
	for _, s := range all {
		if s.requestID == "" {
			t.Errorf("%s: no response at all", s.kind.name)
			continue
		}
		r, ok := byID[s.requestID]
		if !ok && s.kind.outcome == grokgate.OutcomeRejected {
			continue // counted above
		}
		if !ok {
			t.Errorf("%s (%s): no record", s.kind.name, s.requestID)
			continue
		}
		checkRecord(t, s, r)
	}
	if !strings.Contains(g.Log.String(), `"msg":"usage ledger flushed"`) {
		t.Errorf("no flush report in the log:\n%s", g.Log)
	}

	// grokgate usage agrees with the records.
	var out logtest.Buffer
	env := func(k string) string { return map[string]string{"GROKGATE_DB": db}[k] }
	if err := run(context.Background(), []string{"usage", "--group-by", "model", "--json"}, env, nil, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	var totals struct {
		Data []struct {
			Model        string `json:"model"`
			Requests     int64  `json:"requests"`
			PromptTokens int64  `json:"prompt_tokens"`
		} `json:"data"`
	}
	if err := json.Unmarshal([]byte(out.String()), &totals); err != nil {
		t.Fatalf("usage --json: %v\n%s", err, out.String())
	}
	var n, prompt, wantN, wantPrompt int64
	for _, d := range totals.Data {
		n, prompt = n+d.Requests, prompt+d.PromptTokens
	}
	for _, r := range recs {
		// A key's refusals of a minute are one record counting them.
		wantN, wantPrompt = wantN+r.Count, wantPrompt+r.PromptTokens
	}
	if n != wantN || prompt != wantPrompt {
		t.Errorf("usage --json: %d requests, %d prompt tokens; want %d, %d", n, prompt, wantN, wantPrompt)
	}
	out = logtest.Buffer{}
	if err := run(context.Background(), []string{"usage", "--group-by", "day"}, env, nil, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "TOTAL") || !strings.Contains(out.String(), time.Now().UTC().Format(time.DateOnly)) {
		t.Errorf("usage table:\n%s", out.String())
	}
}

// TestE2EGracefulShutdown: a stop with 200 streams in flight lets them
// finish, and every finished request has its record once run returns.
func TestE2EGracefulShutdown(t *testing.T) {
	sim, simURL := newSimulator(t)
	db := filepath.Join(t.TempDir(), "grokgate.db")
	g := startGW(t, simEnv(simURL, "GROKGATE_DB", db, "GROKGATE_DRAIN_TIMEOUT", "30s"))
	// Hold SQLite's write lock through the load and the stop, so the
	// records are still queued when the stop begins: only the flush on the
	// way out can save them. It also shows that requests do not wait on the
	// database.
	lock := holdWriteLock(t, db)
	const n = 200
	k := &kind{name: "in flight", outcome: grokgate.OutcomeCompleted, exact: true}
	results := make([]*sent, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = fire(t, g.URL, g.AdminKey, k, ledgerBody("grok-4.3", fmt.Sprintf(`%d #sim{"chunks":20,"delay_ms":100}`, i), true, i%2 == 0))
		}()
	}
	deadline := time.Now().Add(20 * time.Second)
	for sim.Stats().StreamsStarted < n {
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d streams started", sim.Stats().StreamsStarted, n)
		}
		time.Sleep(2 * time.Millisecond)
	}
	if c := sim.Stats().StreamsCompleted; c > n/2 {
		t.Fatalf("%d streams were already over before the stop: not a test of requests in flight", c)
	}
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		if err := g.stop(t); err != nil { // returns only after run did
			t.Errorf("serve returned %v", err)
		}
	}()
	wg.Wait() // every client has its whole answer, though no record could be written yet
	select {
	case <-stopped:
		t.Fatal("run returned while the records could not be written")
	case <-time.After(100 * time.Millisecond):
	}
	lock()
	<-stopped

	recs := storedRecords(t, db)
	byID := map[string]grokgate.Record{}
	for _, r := range recs {
		byID[r.RequestID] = r
	}
	completed := 0
	for _, s := range results {
		if !s.done {
			continue
		}
		completed++
		k.wantUsage = 0
		if strings.Contains(s.body, "include_usage") {
			k.wantUsage = 1
		}
		r, ok := byID[s.requestID]
		if !ok {
			t.Errorf("completed request %s has no record", s.requestID)
			continue
		}
		checkRecord(t, s, r)
	}
	if completed != n || len(recs) != n {
		t.Errorf("%d of %d streams completed, %d records", completed, n, len(recs))
	}
}

// TestE2EConfigErrors: a bad GROKGATE_DB is reported with the other
// problems, without echoing a password.
func TestE2EConfigErrors(t *testing.T) {
	var stderr logtest.Buffer
	env := map[string]string{"GROKGATE_DB": "postgres://u:hunter2@127.0.0.1:notaport/x", "GROKGATE_USAGE_FLUSH_TIMEOUT": "-1s"}
	err := run(context.Background(), []string{"serve"}, func(k string) string { return env[k] }, nil, io.Discard, &stderr)
	if err == nil {
		t.Fatal("serve started with a bad configuration")
	}
	msg := err.Error()
	if strings.Contains(msg, "hunter2") || !strings.Contains(msg, "GROKGATE_DB") || !strings.Contains(msg, "GROKGATE_USAGE_FLUSH_TIMEOUT") {
		t.Errorf("error: %s", msg)
	}
}

// TestSQLiteStoreIsTheDefault guards the default: a plain path is a file.
func TestSQLiteStoreIsTheDefault(t *testing.T) {
	st, err := openStore(context.Background(), filepath.Join(t.TempDir(), "x.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, ok := st.(*sqlite.DB); !ok {
		t.Errorf("a file path opened %T", st)
	}
}

// holdWriteLock takes SQLite's write lock on db until the returned function
// is called.
func holdWriteLock(t *testing.T, db string) (release func()) {
	t.Helper()
	h, err := sql.Open("sqlite", "file:"+db+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	conn, err := h.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(context.Background(), "BEGIN IMMEDIATE"); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	release = func() {
		once.Do(func() {
			conn.ExecContext(context.Background(), "ROLLBACK")
			conn.Close()
			h.Close()
		})
	}
	t.Cleanup(release)
	return release
}
