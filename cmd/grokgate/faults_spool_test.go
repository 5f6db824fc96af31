package main

// Fault tests of the usage ledger: real grokgate processes on a real
// PostgreSQL, reached through a TCP proxy the tests make refuse or hang.
// Each shows that no usage record is lost while the process lives, whatever
// the database does, and that a process that dies leaves no request
// unrecorded. GROKGATE_FAULTS_LONG=1 runs the longer variants.

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/grokgate/grokgate"
	"github.com/grokgate/grokgate/internal/faultproxy"
	"github.com/grokgate/grokgate/internal/pgtest"
	"github.com/grokgate/grokgate/postgres"
)

func faultsLong() bool { return os.Getenv("GROKGATE_FAULTS_LONG") == "1" }

// faultDB is a fresh PostgreSQL schema, reachable directly (for the test's
// own reads) and through a fault proxy (for grokgate).
type faultDB struct {
	direct, proxied string
	proxy           *faultproxy.Proxy
}

func newFaultDB(t *testing.T) faultDB {
	t.Helper()
	dsn := pgtest.Schema(t)
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	p := faultproxy.Start(t, u.Host)
	u.Host = p.Addr()
	return faultDB{direct: dsn, proxied: u.String(), proxy: p}
}

var faultClient = &http.Client{Timeout: 60 * time.Second}

// pcall sends a request to a process and returns its status, request id and
// body.
func pcall(t *testing.T, p *proc, method, path, key, body string) (int, string, []byte) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, p.url+path, rd)
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := faultClient.Do(req)
	if err != nil {
		t.Errorf("%s %s: %v", method, path, err)
		return 0, "", nil
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("X-Request-Id"), b
}

// ledgerOf reads every usage record of the database, by request id.
func ledgerOf(t *testing.T, dsn string) map[string]grokgate.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := postgres.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	recs, err := s.UsageRecords(ctx, time.Time{}, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]grokgate.Record{}
	for _, r := range recs {
		m[r.RequestID] = r
	}
	return m
}

// waitLedger polls the ledger until it holds every id, and returns it.
func waitLedger(t *testing.T, dsn string, ids []string, within time.Duration) map[string]grokgate.Record {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		l := ledgerOf(t, dsn)
		var missing []string
		for _, id := range ids {
			if _, ok := l[id]; !ok {
				missing = append(missing, id)
			}
		}
		if len(missing) == 0 {
			return l
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d records missing from the ledger after %s, such as %s", len(missing), len(ids), within, missing[0])
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// adminSpoolCounts reads /admin/v1/usage's spool counts.
func adminSpoolCounts(t *testing.T, p *proc, key string) (pending, dead float64) {
	t.Helper()
	status, _, body := pcall(t, p, "GET", "/admin/v1/usage", key, "")
	var v struct {
		Spool struct {
			Pending float64 `json:"pending_records"`
			Dead    float64 `json:"dead_letters"`
		} `json:"spool"`
	}
	if status != 200 || json.Unmarshal(body, &v) != nil || !strings.Contains(string(body), `"spool"`) {
		t.Fatalf("/admin/v1/usage: %d %s", status, body)
	}
	return v.Spool.Pending, v.Spool.Dead
}

// metricValue reads one unlabelled metric from /metrics.
func metricValue(t *testing.T, p *proc, key, name string) string {
	t.Helper()
	req, _ := http.NewRequest("GET", p.url+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := faultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			return v
		}
	}
	return ""
}

func waitExit(t *testing.T, p *proc, within time.Duration) error {
	t.Helper()
	select {
	case err := <-p.done:
		return err
	case <-time.After(within):
		t.Fatalf("the process did not exit within %s; log:\n%s", within, logTail(p.log.String()))
		return nil
	}
}

// traffic sends chat requests from workers, each one every 20ms at most,
// until stop is closed, and returns the request ids of those answered 200.
func traffic(t *testing.T, p *proc, key string, workers int, stop <-chan struct{}) func() []string {
	var mu sync.Mutex
	var ids []string
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pace := time.NewTicker(20 * time.Millisecond)
			defer pace.Stop()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				case <-pace.C:
				}
				status, id, body := pcall(t, p, "POST", "/api/v1/chat/completions", key, chatBody(fmt.Sprintf("w%d r%d #sim{\"chunks\":3}", w, i), i%2 == 0))
				if status != 200 {
					t.Errorf("status %d: %s", status, body)
					return
				}
				mu.Lock()
				ids = append(ids, id)
				mu.Unlock()
			}
		}()
	}
	return func() []string {
		wg.Wait()
		return ids
	}
}

// TestFaultStoreRefusesUnderTraffic: PostgreSQL refuses connections for a
// while under traffic; every request is answered, and once it is back
// every record is in the ledger, the spool empty, the metrics saying what
// happened.
func TestFaultStoreRefusesUnderTraffic(t *testing.T) {
	db := newFaultDB(t)
	p := startProcWith(t, procOpts{DB: db.proxied, Env: []string{"GROKGATE_SPOOL_DIR=" + t.TempDir()}})
	outage := 3 * time.Second
	if faultsLong() {
		outage = 12 * time.Second
	}
	stop := make(chan struct{})
	done := traffic(t, p, p.key, 4, stop)
	time.Sleep(500 * time.Millisecond) // traffic before the outage
	db.proxy.Set(faultproxy.Refuse)
	eventually(t, 15*time.Second, "records spooled", func() bool {
		v := metricValue(t, p, p.key, "grokgate_usage_spooled_records_total")
		return v != "" && v != "0"
	})
	time.Sleep(outage)
	db.proxy.Set(faultproxy.Pass)
	time.Sleep(500 * time.Millisecond) // traffic after it
	close(stop)
	ids := done()
	if len(ids) < 20 {
		t.Fatalf("only %d requests answered", len(ids))
	}
	l := waitLedger(t, db.direct, ids, 30*time.Second)
	for _, id := range ids {
		if r := l[id]; r.Outcome != grokgate.OutcomeCompleted || r.PromptTokens == 0 {
			t.Fatalf("record %s: %+v", id, r)
		}
	}
	eventually(t, 10*time.Second, "the spool emptied", func() bool {
		pending, _ := adminSpoolCounts(t, p, p.key)
		return pending == 0
	})
	spooled, replayed := metricValue(t, p, p.key, "grokgate_usage_spooled_records_total"), metricValue(t, p, p.key, "grokgate_usage_replayed_records_total")
	if spooled == "0" || spooled != replayed {
		t.Fatalf("spooled %s, replayed %s", spooled, replayed)
	}
	t.Logf("%d requests answered, %s records spooled and replayed, all %d in the ledger", len(ids), spooled, len(ids))
	eventually(t, 5*time.Second, "the log to tell of the outage and its end", func() bool { // lines are written in batches
		return strings.Contains(p.log.String(), "spooling them to disk") && strings.Contains(p.log.String(), "the spool is replayed")
	})
}

// TestFaultSIGTERMWhileStoreRefuses: records queued when a stop comes while
// PostgreSQL refuses go to the spool, the process exits, grokgate usage
// says they wait, and the next start with PostgreSQL back writes them.
func TestFaultSIGTERMWhileStoreRefuses(t *testing.T) {
	db := newFaultDB(t)
	dir := t.TempDir()
	p := startProcWith(t, procOpts{DB: db.proxied, Env: []string{"GROKGATE_SPOOL_DIR=" + dir}})
	key := p.key
	db.proxy.Set(faultproxy.Refuse)
	var ids []string
	for i := range 20 {
		status, id, body := pcall(t, p, "POST", "/api/v1/chat/completions", key, chatBody(fmt.Sprintf("r%d", i), i%2 == 0))
		if status != 200 {
			t.Fatalf("status %d: %s", status, body)
		}
		ids = append(ids, id)
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	if err := waitExit(t, p, 30*time.Second); err != nil {
		t.Fatalf("exit: %v\n%s", err, logTail(p.log.String()))
	}
	if l := ledgerOf(t, db.direct); len(l) != 0 {
		t.Fatalf("%d records written while PostgreSQL refused", len(l))
	}
	out, err := cli(t, nil, "usage", "--json", "--db", db.direct, "--spool-dir", dir)
	if err != nil || !strings.Contains(out, `"spool":{"pending_records":20,"dead_letters":0}`) {
		t.Fatalf("grokgate usage: %v\n%s", err, out)
	}

	db.proxy.Set(faultproxy.Pass)
	p2 := startProcWith(t, procOpts{DB: db.proxied, Env: []string{"GROKGATE_SPOOL_DIR=" + dir}})
	l := waitLedger(t, db.direct, ids, 20*time.Second)
	if len(l) != 20 {
		t.Fatalf("%d records, want 20", len(l))
	}
	eventually(t, 10*time.Second, "the spool emptied", func() bool {
		pending, _ := adminSpoolCounts(t, p2, key)
		return pending == 0
	})
}

// TestFaultSIGKILLWithStreamsInFlight: a process killed with 20 streams in
// flight leaves, at the next start, 20 records with outcome interrupted,
// estimated tokens and their cost, and the records of the requests it had already
// answered, exactly.
func TestFaultSIGKILLWithStreamsInFlight(t *testing.T) {
	db := newFaultDB(t)
	dir := t.TempDir()
	p := startProcWith(t, procOpts{DB: db.direct, Env: []string{"GROKGATE_SPOOL_DIR=" + dir}})
	key := p.key
	const n = 20
	streams := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest("POST", p.url+"/api/v1/chat/completions",
				strings.NewReader(chatBody(fmt.Sprintf(`long %d #sim{"chunks":2000,"delay_ms":20}`, i), true)))
			req.Header.Set("Authorization", "Bearer "+key)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			defer resp.Body.Close()
			streams[i] = resp.Header.Get("X-Request-Id")
			io.Copy(io.Discard, resp.Body) // until the kill cuts it
		}()
	}
	// Kill once the journal has written every stream's running count.
	journal := filepath.Join(dir, "journal")
	eventually(t, 20*time.Second, "the journal to hold progress of 20 streams", func() bool {
		b, _ := os.ReadFile(journal)
		seen := map[string]bool{}
		for _, line := range strings.Split(string(b), "\n") {
			if i := strings.Index(line, `{"p":"`); i >= 0 {
				seen[strings.SplitN(line[i+6:], `"`, 2)[0]] = true
			}
		}
		return len(seen) >= n
	})
	// Requests answered just before the kill: their records are still in
	// the recorder's queue (it gathers a batch for 100ms), and in the
	// journal.
	var answered []string
	for i := range 10 {
		status, id, body := pcall(t, p, "POST", "/api/v1/chat/completions", key, chatBody(fmt.Sprintf("done %d", i), false))
		if status != 200 {
			t.Fatalf("status %d: %s", status, body)
		}
		answered = append(answered, id)
	}
	p.cmd.Process.Kill()
	waitExit(t, p, 10*time.Second)
	wg.Wait()

	p2 := startProcWith(t, procOpts{DB: db.direct, Env: []string{"GROKGATE_SPOOL_DIR=" + dir}})
	l := waitLedger(t, db.direct, append(append([]string{}, streams...), answered...), 20*time.Second)
	for _, id := range streams {
		r := l[id]
		if r.Outcome != grokgate.OutcomeInterrupted || !r.Estimated || r.CompletionTokens == 0 || r.PromptTokens == 0 || r.CostTicks <= 0 || r.KeyID == "" || !r.Stream {
			t.Fatalf("stream %s recorded as %+v", id, r)
		}
	}
	for _, id := range answered {
		if r := l[id]; r.Outcome != grokgate.OutcomeCompleted || r.Estimated {
			t.Fatalf("answered request %s recorded as %+v", id, r)
		}
	}
	interrupted := 0
	for _, r := range l {
		if r.Outcome == grokgate.OutcomeInterrupted {
			interrupted++
		}
	}
	if interrupted != n {
		t.Fatalf("%d interrupted records, want %d", interrupted, n)
	}
	eventually(t, 5*time.Second, "the restart to say what it recovered", func() bool {
		return strings.Contains(p2.log.String(), "recorded from its journal")
	})
	for _, line := range strings.Split(p2.log.String(), "\n") {
		if strings.Contains(line, "recorded from its journal") {
			t.Logf("restart: %s", line)
		}
	}
}

// TestFaultStoreHangs: PostgreSQL stops answering without refusing; the
// requests are still answered, their records spooled after the write
// timeout, and written once it answers again.
func TestFaultStoreHangs(t *testing.T) {
	db := newFaultDB(t)
	p := startProcWith(t, procOpts{DB: db.proxied, Env: []string{"GROKGATE_SPOOL_DIR=" + t.TempDir()}})
	db.proxy.Set(faultproxy.Hang)
	var ids []string
	for i := range 10 {
		status, id, body := pcall(t, p, "POST", "/api/v1/chat/completions", p.key, chatBody(fmt.Sprintf("r%d", i), i%2 == 0))
		if status != 200 {
			t.Fatalf("status %d: %s", status, body)
		}
		ids = append(ids, id)
	}
	eventually(t, 20*time.Second, "the records spooled", func() bool {
		return metricValue(t, p, p.key, "grokgate_usage_spooled_records_total") == "10"
	})
	db.proxy.Set(faultproxy.Pass)
	waitLedger(t, db.direct, ids, 30*time.Second)
}

// TestFaultPoisonedRecords: a model name with a NUL gets a 400 at the edge
// and never reaches the database; and when PostgreSQL does refuse a
// record as invalid (here a trigger refusing one key's rows with a data
// exception), the rest of its batch is written: the victim key's records
// are all in the ledger, the refused ones in the dead-letter file.
func TestFaultPoisonedRecords(t *testing.T) {
	db := newFaultDB(t)
	dir := t.TempDir()
	p := startProcWith(t, procOpts{DB: db.direct, Env: []string{"GROKGATE_SPOOL_DIR=" + dir}})
	status, _, body := pcall(t, p, "POST", "/admin/v1/keys", p.key, `{"name":"attacker","allowed_models":["grok-4.3"]}`)
	var k struct {
		ID  string `json:"id"`
		Key string `json:"key"`
	}
	if status != 200 && status != 201 || json.Unmarshal(body, &k) != nil || k.Key == "" {
		t.Fatalf("create key: %d %s", status, body)
	}
	// The model as JSON source: a NUL escape, raw invalid UTF-8, 10 KB. (A
	// lone surrogate escape is decoded as U+FFFD, which is storable.)
	for _, model := range []string{`"grok\u0000"`, "\"grok-\xff\"", `"` + strings.Repeat("m", 10<<10) + `"`} {
		status, _, body := pcall(t, p, "POST", "/api/v1/chat/completions", k.Key, `{"model":`+model+`,"messages":[{"role":"user","content":"hi"}]}`)
		var env errorEnvelope
		if status != 400 || json.Unmarshal(body, &env) != nil || env.Error == nil || env.Error.Message == nil {
			t.Fatalf("model %.20q: %d %s", model, status, body)
		}
		t.Logf("model %.20q: 400 %s", model, *env.Error.Message)
	}
	// From here PostgreSQL refuses the attacker key's rows as invalid.
	conn, err := pgx.Connect(context.Background(), db.direct)
	if err != nil {
		t.Fatal(err)
	}
	_, err = conn.Exec(context.Background(), `CREATE FUNCTION refuse_attacker() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			IF NEW.key_id = '`+k.ID+`' THEN
				RAISE EXCEPTION 'invalid value from the attacker' USING ERRCODE = '22000';
			END IF;
			RETURN NEW;
		END $$;
		CREATE TRIGGER refuse_attacker BEFORE INSERT ON usage_records FOR EACH ROW EXECUTE FUNCTION refuse_attacker();`)
	conn.Close(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var victim []string
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 25 {
				key := p.key
				if i%5 == 0 {
					key = k.Key // the attacker's requests land in the same batches
				}
				status, id, body := pcall(t, p, "POST", "/api/v1/chat/completions", key, chatBody(fmt.Sprintf("w%d %d", w, i), false))
				if status != 200 {
					t.Errorf("status %d: %s", status, body)
					return
				}
				if key == p.key {
					mu.Lock()
					victim = append(victim, id)
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	waitLedger(t, db.direct, victim, 20*time.Second)
	eventually(t, 10*time.Second, "20 dead letters", func() bool {
		_, dead := adminSpoolCounts(t, p, p.key)
		return dead == 20
	})
	b, _ := os.ReadFile(filepath.Join(dir, "dead-letter.jsonl"))
	if strings.Count(string(b), "invalid value from the attacker") != 20 || strings.Count(string(b), k.ID) < 20 {
		t.Fatalf("dead-letter file:\n%s", b)
	}
	if v := metricValue(t, p, p.key, "grokgate_usage_dead_letter_records_total"); v != "20" {
		t.Fatalf("dead-letter metric %q", v)
	}
}

// TestFaultDrainDeadlineOutcome: a stream the drain deadline ends is
// recorded with outcome shutdown, not as an upstream error.
func TestFaultDrainDeadlineOutcome(t *testing.T) {
	db := newFaultDB(t)
	p := startProcWith(t, procOpts{DB: db.direct, Args: []string{"--drain-timeout", "300ms"}})
	req, _ := http.NewRequest("POST", p.url+"/api/v1/chat/completions", strings.NewReader(chatBody(`long #sim{"chunks":1000,"delay_ms":50}`, true)))
	req.Header.Set("Authorization", "Bearer "+p.key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	id := resp.Header.Get("X-Request-Id")
	br := bufio.NewReader(resp.Body)
	br.ReadString('\n')
	p.cmd.Process.Signal(syscall.SIGTERM)
	io.ReadAll(br)
	resp.Body.Close()
	if err := waitExit(t, p, 30*time.Second); err != nil {
		t.Fatalf("exit: %v", err)
	}
	r := ledgerOf(t, db.direct)[id]
	if r.Outcome != grokgate.OutcomeShutdown || !r.Estimated || r.CompletionTokens == 0 || r.CostTicks <= 0 {
		t.Fatalf("record %+v", r)
	}
}

func logTail(s string) string {
	if len(s) > 4000 {
		return s[len(s)-4000:]
	}
	return s
}
