package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/grokgate/grokgate/internal/faultproxy"
	"github.com/grokgate/grokgate/internal/logtest"
	"github.com/grokgate/grokgate/internal/pgtest"
)

// proxiedSchema is a fresh PostgreSQL schema (pgtest.Schema) and the same
// database reached through a fault proxy the test controls.
func proxiedSchema(t *testing.T) (direct, proxied string, px *faultproxy.Proxy) {
	t.Helper()
	direct = pgtest.Schema(t)
	u, err := url.Parse(direct)
	if err != nil {
		t.Fatal(err)
	}
	px = faultproxy.Start(t, u.Host)
	u.Host = px.Addr()
	return direct, u.String(), px
}

// adminKeyOn makes an admin key on dsn with the CLI (which also migrates
// the schema), as an operator would before starting replicas.
func adminKeyOn(t *testing.T, dsn, name, role string) string {
	t.Helper()
	out, err := cli(t, map[string]string{"GROKGATE_DB": dsn}, "keys", "create", "--name", name, "--role", role)
	if err != nil {
		t.Fatal(err)
	}
	k := secretRE.FindString(out)
	if k == "" {
		t.Fatalf("keys create printed no key: %s", out)
	}
	return k
}

// within calls f until it reports true or d passes.
func within(d time.Duration, f func() bool) bool {
	for end := time.Now().Add(d); ; time.Sleep(50 * time.Millisecond) {
		if f() {
			return true
		}
		if time.Now().After(end) {
			return false
		}
	}
}

// timed is call with a deadline, so a hang fails the test rather than
// blocking it; it reports how long the answer took.
func timed(t *testing.T, limit time.Duration, method, url, key, body string) (int, apiErr, time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	t0 := time.Now()
	resp, b, err := call(t, ctx, method, url, key, body)
	took := time.Since(t0)
	if err != nil {
		t.Fatalf("%s %s: no answer within %v: %v", method, url, limit, err)
	}
	var env struct{ Error apiErr }
	json.Unmarshal(b, &env)
	if resp.StatusCode >= 400 && (env.Error.Message == "" || resp.Header.Get("X-Request-Id") == "") {
		t.Fatalf("%s %s: %d without the error envelope and a request id: %s", method, url, resp.StatusCode, b)
	}
	return resp.StatusCode, env.Error, took
}

type apiErr struct {
	Message string `json:"message"`
	Type    string `json:"type"`
	Code    string `json:"code"`
}

// TestStoreHangs: while PostgreSQL hangs, what needs it (the admin API, a
// key the replica does not know yet, a key's ledger) gets a 503 in the
// envelope within the store timeout, the keys the replica knows keep
// working, /readyz says no and /healthz yes; all recover when it answers.
func TestStoreHangs(t *testing.T) {
	direct, proxied, px := proxiedSchema(t)
	admin := adminKeyOn(t, direct, "ops", "admin")
	p := startProcWith(t, procOpts{DB: proxied, Env: []string{"GROKGATE_STORE_TIMEOUT=1s"}})
	if code, e, _ := timed(t, 10*time.Second, "POST", p.url+"/api/v1/chat/completions", admin, chatBody("hello", false)); code != 200 {
		t.Fatalf("before the fault: %d %+v", code, e)
	}

	px.Set(faultproxy.Hang)
	// A key made while the replica cannot see the database: unknown to it.
	unknown := adminKeyOn(t, direct, "late", "user")
	const limit = 1500 * time.Millisecond // the timeout, and time to answer
	for _, c := range []struct{ method, path, key, body string }{
		{"GET", "/admin/v1/keys", admin, ""},
		{"POST", "/admin/v1/keys", admin, `{"name":"x"}`},
		{"GET", "/admin/v1/usage", admin, ""},
		{"GET", "/api/v1/me/usage", admin, ""},
		{"POST", "/api/v1/chat/completions", unknown, chatBody("hi", false)},
		{"GET", "/api/v1/models", unknown, ""},
	} {
		code, e, took := timed(t, 10*time.Second, c.method, p.url+c.path, c.key, c.body)
		if code != 503 || e.Code != "store_unavailable" || !strings.Contains(e.Message, "not answering") && !strings.Contains(e.Message, "did not answer") {
			t.Errorf("%s %s while PostgreSQL hangs: %d %+v; want 503 store_unavailable", c.method, c.path, code, e)
		}
		if took > limit {
			t.Errorf("%s %s took %v; want at most about the store timeout (1s)", c.method, c.path, took)
		}
	}
	// The console's sign-in: the page says the database is not answering,
	// for a key it does not know and for one it does (the session is kept
	// in the database).
	for _, key := range []string{unknown, admin} {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		req, _ := http.NewRequestWithContext(ctx, "POST", p.url+"/console/login", strings.NewReader(url.Values{"key": {key}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		t0 := time.Now()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("console sign-in while PostgreSQL hangs: %v", err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		cancel()
		if resp.StatusCode != 503 || !strings.Contains(string(b), "database") || time.Since(t0) > limit {
			t.Errorf("console sign-in while PostgreSQL hangs: %d after %v", resp.StatusCode, time.Since(t0))
		}
	}
	// The keys it knows keep working, at once.
	if code, e, took := timed(t, 10*time.Second, "POST", p.url+"/api/v1/chat/completions", admin, chatBody("still", false)); code != 200 || took > limit {
		t.Errorf("a cached key while PostgreSQL hangs: %d %+v after %v", code, e, took)
	}
	if code, e, _ := timed(t, 10*time.Second, "GET", p.url+"/api/v1/me", admin, ""); code != 200 {
		t.Errorf("GET /api/v1/me (from the cache) while PostgreSQL hangs: %d %+v", code, e)
	}
	if code, e, _ := timed(t, 10*time.Second, "GET", p.url+"/readyz", "", ""); code != 503 || e.Code != "not_ready" {
		t.Errorf("/readyz while PostgreSQL hangs: %d %+v", code, e)
	}
	if code, _, _ := timed(t, 10*time.Second, "GET", p.url+"/healthz", "", ""); code != 200 {
		t.Errorf("/healthz while PostgreSQL hangs: %d", code)
	}

	px.Set(faultproxy.Pass)
	if !within(15*time.Second, func() bool {
		code, _, _ := timed(t, 10*time.Second, "GET", p.url+"/admin/v1/keys", admin, "")
		return code == 200
	}) {
		t.Fatal("the admin API did not recover after PostgreSQL answered again")
	}
	if code, e, _ := timed(t, 10*time.Second, "POST", p.url+"/api/v1/chat/completions", unknown, chatBody("now", false)); code != 200 {
		t.Errorf("the new key after PostgreSQL answered again: %d %+v", code, e)
	}
	if code, _, _ := timed(t, 10*time.Second, "GET", p.url+"/readyz", "", ""); code != 200 {
		t.Errorf("/readyz after PostgreSQL answered again: %d", code)
	}
}

// TestStartWhileStoreHangs: a replica started while PostgreSQL hangs
// listens anyway, says so in its log, answers /readyz and keyed requests
// with a 503 that says why (and /healthz with 200), and becomes ready by
// itself once PostgreSQL answers.
func TestStartWhileStoreHangs(t *testing.T) {
	for _, mode := range []faultproxy.Mode{faultproxy.Hang, faultproxy.Refuse} {
		name := map[faultproxy.Mode]string{faultproxy.Hang: "hang", faultproxy.Refuse: "refuse"}[mode]
		t.Run(name, func(t *testing.T) {
			direct, proxied, px := proxiedSchema(t)
			admin := adminKeyOn(t, direct, "ops", "admin")
			px.Set(mode)
			t0 := time.Now()
			p := startProcWith(t, procOpts{DB: proxied, Env: []string{"GROKGATE_STORE_TIMEOUT=500ms"}})
			if d := time.Since(t0); d > 10*time.Second {
				t.Errorf("listening took %v", d)
			}
			code, e, _ := timed(t, 5*time.Second, "GET", p.url+"/readyz", "", "")
			if code != 503 || e.Code != "not_ready" || !strings.Contains(e.Message, "has not answered since it started") {
				t.Errorf("/readyz before the database answered: %d %+v", code, e)
			}
			if code, _, _ := timed(t, 5*time.Second, "GET", p.url+"/healthz", "", ""); code != 200 {
				t.Errorf("/healthz before the database answered: %d", code)
			}
			code, e, took := timed(t, 5*time.Second, "POST", p.url+"/api/v1/chat/completions", admin, chatBody("hi", false))
			if code != 503 || e.Code != "store_unavailable" || !strings.Contains(e.Message, "since it started") || took > time.Second {
				t.Errorf("a request before the database answered: %d %+v after %v", code, e, took)
			}
			code, e, _ = timed(t, 5*time.Second, "GET", p.url+"/admin/v1/keys", admin, "")
			if code != 503 || e.Code != "store_unavailable" {
				t.Errorf("the admin API before the database answered: %d %+v", code, e)
			}
			if !within(10*time.Second, func() bool { return strings.Contains(p.log.String(), "still does not answer") }) {
				t.Errorf("the log does not say the database is retried:\n%s", p.log.String())
			}

			px.Set(faultproxy.Pass)
			if !within(30*time.Second, func() bool {
				code, _, _ := timed(t, 5*time.Second, "GET", p.url+"/readyz", "", "")
				return code == 200
			}) {
				t.Fatalf("not ready 30s after the database answered:\n%s", p.log.String())
			}
			if code, e, _ := timed(t, 10*time.Second, "POST", p.url+"/api/v1/chat/completions", admin, chatBody("hi", false)); code != 200 {
				t.Errorf("a request once ready: %d %+v", code, e)
			}
			if !within(5*time.Second, func() bool {
				l := p.log.String()
				return strings.Contains(l, "listening anyway") && strings.Contains(l, "grokgate is ready")
			}) {
				t.Errorf("the log does not say it became ready:\n%s", p.log.String())
			}
		})
	}
}

// TestKeysStaleness: while PostgreSQL hangs, a replica serves the keys it
// knows for GROKGATE_KEYS_MAX_STALENESS, then refuses every key with a 503
// (a revocation it cannot see is never honoured late for long), logging
// both moments; once PostgreSQL answers, keys work again.
func TestKeysStaleness(t *testing.T) {
	direct, proxied, px := proxiedSchema(t)
	admin := adminKeyOn(t, direct, "ops", "admin")
	p := startProcWith(t, procOpts{DB: proxied, Env: []string{"GROKGATE_STORE_TIMEOUT=300ms", "GROKGATE_KEYS_MAX_STALENESS=3s"}})
	chat := func() (int, apiErr) {
		code, e, _ := timed(t, 10*time.Second, "POST", p.url+"/api/v1/chat/completions", admin, chatBody("x", false))
		return code, e
	}
	if code, e := chat(); code != 200 {
		t.Fatalf("before the fault: %d %+v", code, e)
	}
	px.Set(faultproxy.Hang)
	hung := time.Now()
	if code, e := chat(); code != 200 {
		t.Fatalf("a known key just after PostgreSQL hung: %d %+v", code, e)
	}
	var stale apiErr
	if !within(10*time.Second, func() bool {
		code, e := chat()
		stale = e
		return code == 503
	}) {
		t.Fatal("the known key still works 10s into a 3s staleness")
	}
	if d := time.Since(hung); d < 2*time.Second {
		t.Errorf("the key was refused %v after PostgreSQL hung, before its staleness (3s)", d)
	}
	if stale.Code != "store_unavailable" || !strings.Contains(stale.Message, "too long") {
		t.Errorf("stale refusal: %+v", stale)
	}
	if !within(5*time.Second, func() bool { return strings.Contains(p.log.String(), "keys are stale") }) {
		t.Errorf("the log does not say the keys are stale:\n%s", p.log.String())
	}
	px.Set(faultproxy.Pass)
	if !within(15*time.Second, func() bool { code, _ := chat(); return code == 200 }) {
		t.Fatal("the key did not work again after PostgreSQL answered")
	}
	if !within(5*time.Second, func() bool { return strings.Contains(p.log.String(), "answers again") }) {
		t.Errorf("the log does not say the keys are fresh again:\n%s", p.log.String())
	}
}

// TestOneAdminKeyFromConcurrentStarts: replicas starting together on an
// empty database mint exactly one admin key between them, trial after
// trial.
func TestOneAdminKeyFromConcurrentStarts(t *testing.T) {
	const trials, replicas = 5, 4
	for trial := range trials {
		dsn := pgtest.Schema(t)
		env := map[string]string{"GROKGATE_DB": dsn, "GROKGATE_LOG_FORMAT": "json", "XAI_API_KEY": "xai-test", "XAI_BASE_URL": "http://127.0.0.1:1",
			"GROKGATE_SPOOL_DIR": filepath.Join(t.TempDir(), "spool")}
		// Migrated beforehand (by a usage query), so the replicas do not
		// take turns at the migration lock but reach the first key at once.
		if _, err := cli(t, env, "usage"); err != nil {
			t.Fatal(err)
		}
		getenv := func(k string) string { return env[k] }
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		keys := make(chan string, replicas)
		errs := make(chan error, replicas)
		var outs [replicas]logtest.Buffer
		for i := range replicas {
			wg.Add(1)
			go func() {
				defer wg.Done()
				up := false
				err := runWith(ctx, []string{"serve", "--addr", "127.0.0.1:0", "--console=false"}, getenv, strings.NewReader(""), &outs[i], &testWriter{t: t},
					func(s started) { up = true; keys <- s.AdminKey })
				if !up {
					errs <- fmt.Errorf("replica %d did not start: %v", i, err)
				}
			}()
		}
		var minted []string
		for range replicas {
			select {
			case k := <-keys:
				if k != "" {
					minted = append(minted, k)
				}
			case err := <-errs:
				t.Fatal(err)
			case <-time.After(60 * time.Second):
				t.Fatal("replicas did not start")
			}
		}
		cancel()
		wg.Wait()
		printed := 0
		for i := range outs {
			printed += len(secretRE.FindAllString(outs[i].String(), -1))
		}
		if len(minted) != 1 || printed != 1 {
			t.Fatalf("trial %d: %d replicas minted an admin key and %d printed one; want exactly one", trial, len(minted), printed)
		}
	}
}

// TestRevocationAt100kKeys: with 100,000 keys on PostgreSQL, a key revoked
// through one replica's admin API is refused by another within two
// seconds: replicas read only the keys that changed.
func TestRevocationAt100kKeys(t *testing.T) {
	if testing.Short() {
		t.Skip("100,000 keys: skipped with -short")
	}
	dsn := pgtest.Schema(t)
	admin := adminKeyOn(t, dsn, "ops", "admin")
	// The victim is in both replicas' first load, as most keys are.
	out, err := cli(t, map[string]string{"GROKGATE_DB": dsn}, "keys", "create", "--name", "victim")
	if err != nil {
		t.Fatal(err)
	}
	created := struct{ ID, Key string }{regexp.MustCompile(`key_[0-9a-f]{16}`).FindString(out), secretRE.FindString(out)}
	pgtest.Exec(t, dsn, pgtest.BulkKeysSQL, 100000)
	_, simURL := newSimulator(t)
	env := simEnv(simURL, "GROKGATE_DB", dsn)
	a, b := startGW(t, env), startGW(t, env)
	ctx := context.Background()
	if resp, body, _ := call(t, ctx, "POST", b.URL+"/v1/chat/completions", created.Key, chatBody("hi", false)); resp.StatusCode != 200 {
		t.Fatalf("the key on B: %d %s", resp.StatusCode, body)
	}
	if resp, _, _ := call(t, ctx, "POST", a.URL+"/admin/v1/keys/"+created.ID+"/revoke", admin, ""); resp.StatusCode != 200 {
		t.Fatalf("revoke through A: %d", resp.StatusCode)
	}
	revoked := time.Now()
	for {
		resp, body, _ := call(t, ctx, "POST", b.URL+"/v1/chat/completions", created.Key, chatBody("still?", false))
		if resp.StatusCode == http.StatusUnauthorized && strings.Contains(string(body), "revoked") {
			break
		}
		if time.Since(revoked) > 2*time.Second {
			t.Fatalf("B still accepts the key revoked through A after %v: %d", time.Since(revoked), resp.StatusCode)
		}
		time.Sleep(25 * time.Millisecond)
	}
	t.Logf("revocation reached B in %v with 100,000 keys", time.Since(revoked).Round(time.Millisecond))
}

// TestStoreSettingsChecked: the store timeout and the keys' staleness must
// be positive, reported with the other problems before anything starts.
func TestStoreSettingsChecked(t *testing.T) {
	env := map[string]string{"GROKGATE_STORE_TIMEOUT": "0s", "GROKGATE_KEYS_MAX_STALENESS": "-1m"}
	err := run(context.Background(), []string{"serve"}, func(k string) string { return env[k] }, nil, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "GROKGATE_STORE_TIMEOUT") || !strings.Contains(err.Error(), "GROKGATE_KEYS_MAX_STALENESS") {
		t.Fatalf("serve with a zero store timeout and a negative staleness: %v", err)
	}
}
