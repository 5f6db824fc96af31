package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// cli runs a grokgate command to completion and returns its stdout.
func cli(t *testing.T, env map[string]string, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	err := run(context.Background(), args, func(k string) string { return env[k] }, nil, &out, &testWriter{t: t})
	return out.String(), err
}

func TestKeysCLIAgainstRunningServer(t *testing.T) {
	g := startGW(t, nil)
	out, err := cli(t, nil, "keys", "create", "--name", "ci-bot", "--db", g.DB)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	secret := lines[len(lines)-1]
	if secretRE.FindString(secret) != secret {
		t.Fatalf("last line of stdout is not a key: %q", secret)
	}

	// Usable at once on the running server, though created by another process.
	resp := g.post(t, "/api/v1/chat/completions", secret, chatBody("hello", false))
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("new key: status %d", resp.StatusCode)
	}

	out, err = cli(t, nil, "keys", "list", "--json", "--db", g.DB)
	if err != nil {
		t.Fatal(err)
	}
	var list []map[string]any
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatalf("keys list --json: %v\n%s", err, out)
	}
	if len(list) != 2 {
		t.Fatalf("%d keys listed, want admin + ci-bot", len(list))
	}
	var prefix string
	for _, k := range list {
		if k["name"] == "ci-bot" {
			prefix, _ = k["prefix"].(string)
			if k["role"] != "user" || k["revoked_at"] != nil {
				t.Fatalf("listed %v", k)
			}
		}
		if _, has := k["hash"]; has {
			t.Fatalf("listing shows the hash: %v", k)
		}
	}
	if prefix == "" || !strings.HasPrefix(secret, prefix) || len(prefix) >= len(secret)/2 {
		t.Fatalf("prefix %q of %q", prefix, secret)
	}
	table, _ := cli(t, nil, "keys", "list", "--db", g.DB)
	if !strings.Contains(table, "ci-bot") || !strings.Contains(table, "active") {
		t.Fatalf("table:\n%s", table)
	}
	for _, o := range []string{out, table} {
		if strings.Contains(o, secret) || strings.Contains(o, g.AdminKey) {
			t.Fatal("a listing shows a secret")
		}
	}

	// Secrets are not at rest: only hashes are.
	for _, f := range []string{g.DB, g.DB + "-wal"} {
		b, err := os.ReadFile(f)
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		if bytes.Contains(b, []byte(secret)) || bytes.Contains(b, []byte(g.AdminKey)) {
			t.Fatalf("%s holds a secret in clear", filepath.Base(f))
		}
	}

	if out, err := cli(t, nil, "keys", "revoke", prefix, "--db", g.DB); err != nil || !strings.Contains(out, "Revoked") {
		t.Fatalf("revoke: %v %s", err, out)
	}
	start := time.Now()
	eventually(t, 2*time.Second, "revoked key refused by the running server", func() bool {
		resp := g.post(t, "/api/v1/chat/completions", secret, chatBody("hello", false))
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode == http.StatusUnauthorized
	})
	t.Logf("revocation took effect after %s", time.Since(start).Round(time.Millisecond))
	msg, code := readError(t, g.post(t, "/api/v1/chat/completions", secret, chatBody("hello", false)), 401)
	if code != "revoked_api_key" || !strings.Contains(msg, "revoked") {
		t.Fatalf("code %q message %q", code, msg)
	}
	// The admin key still works.
	resp = g.post(t, "/api/v1/chat/completions", g.AdminKey, chatBody("hello", false))
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("admin key: %d", resp.StatusCode)
	}
}

func TestKeysCLIErrors(t *testing.T) {
	db := filepath.Join(t.TempDir(), "k.db")
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"keys", "create", "--db", db}, "--name is required"},
		{[]string{"keys", "create", "--name", "x", "--role", "root", "--db", db}, "--role must be user, admin or metrics"},
		{[]string{"keys", "revoke", "--db", db}, "say which key"},
		{[]string{"keys", "revoke", "gg-nothing", "--db", db}, "no key has id or prefix"},
	}
	for _, c := range cases {
		_, err := cli(t, nil, c.args...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: err %v, want %q", c.args, err, c.want)
		}
	}
}

// TestFirstStartPrintsOneAdminKey: the first start on an empty store prints
// an admin key; later starts print none.
func TestFirstStartPrintsOneAdminKey(t *testing.T) {
	g := startGW(t, nil)
	if g.AdminKey == "" {
		t.Fatalf("no admin key printed:\n%s", g.stdout())
	}
	if err := g.stop(t); err != nil {
		t.Fatal(err)
	}
	g2 := startGW(t, nil, "--db", g.DB)
	if g2.AdminKey != "" || strings.Contains(g2.stdout(), "gg-") {
		t.Fatalf("second start printed a key:\n%s", g2.stdout())
	}
	resp := g2.post(t, "/api/v1/chat/completions", g.AdminKey, chatBody("hi", false))
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("first key after restart: %d", resp.StatusCode)
	}
}

// TestConfigProblemsReportedTogether: every bad setting is named at once and
// nothing starts listening.
func TestConfigProblemsReportedTogether(t *testing.T) {
	env := map[string]string{
		"GROKGATE_ADDR":               "nonsense",
		"XAI_BASE_URL":                "ftp://x",
		"GROKGATE_FIRST_BYTE_TIMEOUT": "soon",
		"GROKGATE_MAX_BODY_BYTES":     "-1",
		"GROKGATE_LOG_FORMAT":         "xml",
	}
	out, err := cli(t, env, "serve", "--db", filepath.Join(t.TempDir(), "x.db"))
	if err == nil {
		t.Fatal("serve started with a bad configuration")
	}
	for _, want := range []string{"GROKGATE_ADDR", "XAI_BASE_URL", "GROKGATE_FIRST_BYTE_TIMEOUT", "GROKGATE_MAX_BODY_BYTES", "GROKGATE_LOG_FORMAT"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not name %s:\n%v", want, err)
		}
	}
	if strings.Contains(out, "listening") {
		t.Fatal("it listened")
	}
	// A flag wins over its variable.
	g := startGW(t, map[string]string{"GROKGATE_ADDR": "nonsense:1"})
	if !strings.HasPrefix(g.URL, "http://127.0.0.1:") {
		t.Fatalf("flag did not win: %s", g.URL)
	}
}

// TestImagesAreInTheLedger: an image generation is a billed request like a
// chat completion, so it has its usage record and its cost.
func TestImagesAreInTheLedger(t *testing.T) {
	g := startGW(t, nil)
	resp := g.post(t, "/api/v1/images/generations", g.AdminKey, `{"prompt":"a lighthouse","n":2,"response_format":"b64_json"}`)
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("generate: %d", resp.StatusCode)
	}
	eventually(t, 5*time.Second, "the image request's record, with its cost", func() bool {
		req, _ := http.NewRequest("GET", g.URL+"/admin/v1/usage?group_by=model", nil)
		req.Header.Set("Authorization", "Bearer "+g.AdminKey)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out struct {
			Data []struct {
				Model    string `json:"model"`
				Requests int64  `json:"requests"`
				Cost     int64  `json:"cost_in_usd_ticks"`
			} `json:"data"`
		}
		json.NewDecoder(resp.Body).Decode(&out)
		for _, row := range out.Data {
			// The simulator prices grok-imagine-image at 2e8 ticks an image.
			if row.Model == "grok-imagine-image" && row.Requests == 1 && row.Cost == 4e8 {
				return true
			}
		}
		return false
	})
}

// TestModelsListHonoursAllowedModels: a key limited to some models sees only
// those in GET /models; an unlimited key sees them all.
func TestModelsListHonoursAllowedModels(t *testing.T) {
	g := startGW(t, nil)
	out, err := cli(t, nil, "keys", "create", "--name", "narrow", "--models", "grok-4.3,grok-3", "--db", g.DB)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	narrow := lines[len(lines)-1]
	ids := func(key string) []string {
		req, _ := http.NewRequest("GET", g.URL+"/api/v1/models", nil)
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var list struct {
			Object string `json:"object"`
			Data   []struct {
				ID      string `json:"id"`
				OwnedBy string `json:"owned_by"`
			} `json:"data"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&list); err != nil || list.Object != "list" {
			t.Fatalf("models: %v %+v", err, list)
		}
		var out []string
		for _, m := range list.Data {
			if m.OwnedBy == "" {
				t.Fatalf("a model lost its fields: %+v", m)
			}
			out = append(out, m.ID)
		}
		return out
	}
	if got := ids(narrow); strings.Join(got, ",") != "grok-4.3,grok-3" && strings.Join(got, ",") != "grok-3,grok-4.3" {
		t.Fatalf("narrow key sees %v", got)
	}
	if got := ids(g.AdminKey); len(got) < 5 {
		t.Fatalf("unlimited key sees %v", got)
	}
}

// TestKeysCLINamePrintable: the CLI refuses a name with a control character,
// which would print a forged row in `keys list`.
func TestKeysCLINamePrintable(t *testing.T) {
	db := filepath.Join(t.TempDir(), "k.db")
	if _, err := cli(t, nil, "keys", "create", "--name", "ok\nkey_forged  gg-fake  admin", "--db", db); err == nil || !strings.Contains(err.Error(), "printable") {
		t.Errorf("a name with a newline: %v", err)
	}
	out, err := cli(t, nil, "keys", "list", "--db", db)
	if err != nil || strings.Contains(out, "forged") {
		t.Errorf("list after the refusal: %v\n%s", err, out)
	}
}
