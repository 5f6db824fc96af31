package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/grokgate/grokgate/internal/logtest"
	"github.com/grokgate/grokgate/internal/pgtest"
	"github.com/grokgate/grokgate/simulator"
)

// TestE2ETwoReplicasOnPostgres runs two gateways on one PostgreSQL schema:
// a key created through one's admin API works on the other at once, usage
// from both adds up in either's admin API, and a revocation through one
// stops the key on the other within two seconds.
func TestE2ETwoReplicasOnPostgres(t *testing.T) {
	dsn := pgtest.Schema(t)
	_, simURL := newSimulator(t)
	env := simEnv(simURL, "GROKGATE_DB", dsn)
	getenv := func(k string) string { return env[k] }

	var out logtest.Buffer
	if err := run(context.Background(), []string{"keys", "create", "--name", "ops", "--role", "admin"}, getenv, nil, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	admin := secretRE.FindString(out.String())
	a, b := startGW(t, env), startGW(t, env)
	if a.AdminKey != "" || b.AdminKey != "" {
		t.Error("a replica minted an admin key although the store had one")
	}
	ctx := context.Background()

	resp, body, err := call(t, ctx, "POST", a.URL+"/admin/v1/keys", admin, `{"name":"shared","allowed_models":["grok-4.3","grok-3"]}`)
	if err != nil || resp.StatusCode != 201 {
		t.Fatalf("create through A: %v %s", err, body)
	}
	var created struct{ ID, Key string }
	json.Unmarshal(body, &created)

	// Admin routes on B: 401 without a key, 403 with the new user key.
	if resp, _, _ := call(t, ctx, "GET", b.URL+"/admin/v1/usage", "", ""); resp.StatusCode != 401 {
		t.Errorf("B admin without key: %d", resp.StatusCode)
	}
	if resp, _, _ := call(t, ctx, "GET", b.URL+"/admin/v1/usage", created.Key, ""); resp.StatusCode != 403 {
		t.Errorf("B admin with a user key: %d", resp.StatusCode)
	}

	var wantReq, wantPrompt, wantCompletion, wantCost int64
	send := func(base string, i int, stream bool) {
		t.Helper()
		reqBody := ledgerBody("grok-4.3", fmt.Sprintf("replica question %d", i), stream, false)
		resp, body, err := call(t, ctx, "POST", base+"/v1/chat/completions", created.Key, reqBody)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("chat %d on %s: %v %d %s", i, base, err, resp.StatusCode, body)
		}
		exp, _ := simulator.ExpectedUsage([]byte(reqBody))
		wantReq++
		wantPrompt += int64(exp.PromptTokens)
		wantCompletion += int64(exp.CompletionTokens)
		wantCost += exp.CostInUSDTicks
	}
	send(b.URL, 0, false) // the key minted on A, straight away on B
	for i := 1; i <= 6; i++ {
		base := a.URL
		if i%2 == 0 {
			base = b.URL
		}
		send(base, i, i%3 == 0)
	}
	if resp, body, _ := call(t, ctx, "POST", b.URL+"/v1/chat/completions", created.Key, ledgerBody("grok-4.5", "x", false, false)); resp.StatusCode != 403 ||
		!strings.Contains(string(body), "model_not_allowed") {
		t.Errorf("a model outside the key's list on B: %d %s", resp.StatusCode, body)
	}
	// The refused request reaches the ledger when the minute ends or B
	// stops (checked below), with no tokens.

	type row struct {
		KeyID            string `json:"key_id"`
		Requests         int64  `json:"requests"`
		PromptTokens     int64  `json:"prompt_tokens"`
		CompletionTokens int64  `json:"completion_tokens"`
		Cost             int64  `json:"cost_in_usd_ticks"`
	}
	want := row{created.ID, wantReq, wantPrompt, wantCompletion, wantCost}
	// B's refusal is there too if the minute ended since.
	withRefusal := want
	withRefusal.Requests++
	for _, g := range []*gw{a, b} {
		var got row
		deadline := time.Now().Add(5 * time.Second) // records are written asynchronously
		for got != want && got != withRefusal && time.Now().Before(deadline) {
			_, body, err := call(t, ctx, "GET", g.URL+"/admin/v1/usage?group_by=key", admin, "")
			if err != nil {
				t.Fatal(err)
			}
			var v struct{ Data []row }
			json.Unmarshal(body, &v)
			for _, r := range v.Data {
				if r.KeyID == created.ID {
					got = r
				}
			}
			time.Sleep(20 * time.Millisecond)
		}
		if got != want && got != withRefusal {
			t.Errorf("usage on %s: %+v, want %+v", g.URL, got, want)
		}
	}

	resp, _, _ = call(t, ctx, "POST", a.URL+"/admin/v1/keys/"+created.ID+"/revoke", admin, "")
	if resp.StatusCode != 200 {
		t.Fatalf("revoke through A: %d", resp.StatusCode)
	}
	revoked, accepted := time.Now(), int64(0)
	for {
		resp, body, _ := call(t, ctx, "POST", b.URL+"/v1/chat/completions", created.Key, ledgerBody("grok-4.3", "still?", false, false))
		if resp.StatusCode == http.StatusUnauthorized && strings.Contains(string(body), "revoked") {
			break
		}
		accepted++ // recorded in the ledger like any request
		if time.Since(revoked) > 2*time.Second {
			t.Fatalf("B still accepts the key revoked through A after %v: %d", time.Since(revoked), resp.StatusCode)
		}
		time.Sleep(25 * time.Millisecond)
	}
	t.Logf("revocation reached B in %v", time.Since(revoked).Round(time.Millisecond))

	// B's refusals of this minute reach the shared ledger when it stops.
	if err := b.stop(t); err != nil {
		t.Fatal(err)
	}
	wantAll := wantReq + 1 + accepted
	var got row
	for deadline := time.Now().Add(5 * time.Second); got.Requests != wantAll && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		_, body, err := call(t, ctx, "GET", a.URL+"/admin/v1/usage?group_by=key", admin, "")
		if err != nil {
			t.Fatal(err)
		}
		var v struct{ Data []row }
		json.Unmarshal(body, &v)
		for _, r := range v.Data {
			if r.KeyID == created.ID {
				got = r
			}
		}
	}
	if got.Requests != wantAll {
		t.Errorf("usage after B stopped: %d requests, want %d with B's refusal", got.Requests, wantAll)
	}
}
