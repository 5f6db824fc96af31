package main

import (
	"context"
	"encoding/json"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/grokgate/grokgate"
)

// TestKeysCLITools: --tools sets a key's server-side tools on create and
// update exactly as --models sets its models, an empty value clears them,
// unknown tools are refused naming the known ones, and list shows them.
func TestKeysCLITools(t *testing.T) {
	db := filepath.Join(t.TempDir(), "k.db")
	out, err := cli(t, nil, "keys", "create", "--name", "searcher", "--tools", "web_search, x_search,web_search", "--db", db)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "tools web_search,x_search") {
		t.Errorf("create does not say the tools:\n%s", out)
	}
	if _, err := cli(t, nil, "keys", "create", "--name", "plain", "--db", db); err != nil {
		t.Fatal(err)
	}
	listed := func() map[string][]string {
		t.Helper()
		out, err := cli(t, nil, "keys", "list", "--json", "--db", db)
		if err != nil {
			t.Fatal(err)
		}
		var list []struct {
			Name  string    `json:"name"`
			Tools *[]string `json:"allowed_tools"`
		}
		if err := json.Unmarshal([]byte(out), &list); err != nil {
			t.Fatalf("keys list --json: %v\n%s", err, out)
		}
		m := map[string][]string{}
		for _, k := range list {
			if k.Tools == nil {
				t.Fatalf("key %s listed without allowed_tools:\n%s", k.Name, out)
			}
			m[k.Name] = *k.Tools
		}
		return m
	}
	if got := listed(); !reflect.DeepEqual(got, map[string][]string{"searcher": {"web_search", "x_search"}, "plain": {}}) {
		t.Errorf("listed tools %v", got)
	}
	table, err := cli(t, nil, "keys", "list", "--db", db)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(table), "\n")
	if len(lines) != 3 || !strings.Contains(lines[0], "TOOLS") {
		t.Fatalf("table:\n%s", table)
	}
	// ID NAME PREFIX ROLE CREATED MODELS TOOLS EXPIRES STATUS
	for _, l := range lines[1:] {
		f := strings.Fields(l)
		if len(f) != 9 || f[1] == "searcher" && f[6] != "web_search,x_search" || f[1] == "plain" && f[6] != "all" {
			t.Errorf("table line %q does not show the key's tools", l)
		}
	}

	out, err = cli(t, nil, "keys", "update", "--tools", "mcp,code_interpreter", "--db", db, keyID(t, db, "searcher"))
	if err != nil || !strings.Contains(out, "tools mcp,code_interpreter") {
		t.Fatalf("update: %v\n%s", err, out)
	}
	if _, err := cli(t, nil, "keys", "update", keyID(t, db, "searcher"), "--name", "renamed", "--db", db); err != nil {
		t.Fatal(err)
	}
	if got := listed(); !reflect.DeepEqual(got["renamed"], []string{"mcp", "code_interpreter"}) {
		t.Errorf("after update and rename: %v", got)
	}
	if _, err := cli(t, nil, "keys", "update", keyID(t, db, "renamed"), "--tools", "", "--db", db); err != nil {
		t.Fatal(err)
	}
	if got := listed(); len(got["renamed"]) != 0 {
		t.Errorf(`--tools "" left %v; want every tool`, got["renamed"])
	}

	for _, args := range [][]string{
		{"keys", "create", "--name", "x", "--tools", "web_search,browser"},
		{"keys", "update", keyID(t, db, "plain"), "--tools", "WEB_SEARCH"},
	} {
		_, err := cli(t, nil, append(args, "--db", db)...)
		if err == nil || !strings.Contains(err.Error(), "not a server-side tool") ||
			!strings.Contains(err.Error(), strings.Join(grokgate.ServerTools(), ", ")) {
			t.Errorf("%v: err %v; want the known tools named", args, err)
		}
	}
	if got := listed(); len(got) != 2 || len(got["plain"]) != 0 {
		t.Errorf("refused commands changed the keys: %v", got)
	}
}

// keyID finds the id of the key named name in db.
func keyID(t *testing.T, db, name string) string {
	t.Helper()
	st, err := openStore(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	list, err := st.ListKeys(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range list {
		if k.Name == name {
			return k.ID
		}
	}
	t.Fatalf("no key named %q", name)
	return ""
}

// TestUsageCLIToolCalls: grokgate usage shows the server-side tool calls of
// each group, broken down by kind below the table, and in its JSON.
func TestUsageCLIToolCalls(t *testing.T) {
	db := filepath.Join(t.TempDir(), "u.db")
	st, err := openStore(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	day := time.Date(2026, 11, 2, 10, 0, 0, 0, time.UTC)
	err = st.InsertUsage(context.Background(), []grokgate.Record{
		{RequestID: "r1", Time: day, KeyID: "key_a", Route: "/responses", Model: "grok-4.3", Outcome: grokgate.OutcomeCompleted,
			PromptTokens: 10, ToolCalls: grokgate.ToolCalls{WebSearch: 3, XSearch: 2, MCP: 1}},
		{RequestID: "r2", Time: day, KeyID: "key_a", Route: "/responses", Model: "grok-4.3", Outcome: grokgate.OutcomeCompleted,
			PromptTokens: 10, ToolCalls: grokgate.ToolCalls{DocumentSearch: 4}},
		{RequestID: "r3", Time: day, KeyID: "key_b", Route: "/chat/completions", Model: "grok-3", Outcome: grokgate.OutcomeCompleted,
			PromptTokens: 5},
	})
	st.Close()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cli(t, nil, "usage", "--group-by", "model", "--db", db)
	if err != nil {
		t.Fatal(err)
	}
	fields := func(line string) []string { return strings.Fields(line) }
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) < 4 || !strings.Contains(lines[0], "TOOL CALLS") {
		t.Fatalf("usage table:\n%s", out)
	}
	// MODEL REQUESTS COMPLETED ESTIMATED PROMPT COMPLETION REASONING CACHED TOTAL TOOLS COST
	for _, want := range [][]string{
		{"grok-3", "1", "1", "0", "5", "0", "0", "0", "5", "0", "0.0000000"},
		{"grok-4.3", "2", "2", "0", "20", "0", "0", "0", "20", "10", "0.0000000"},
		{"TOTAL", "3", "3", "0", "25", "0", "0", "0", "25", "10", "0.0000000"},
	} {
		found := false
		for _, l := range lines {
			found = found || reflect.DeepEqual(fields(l), want)
		}
		if !found {
			t.Errorf("no line %v in\n%s", want, out)
		}
	}
	_, details, ok := strings.Cut(out, "Server-side tool calls:")
	if !ok {
		t.Fatalf("no tool call breakdown:\n%s", out)
	}
	dl := strings.Split(strings.TrimSpace(details), "\n")
	wantDetails := [][]string{
		{"MODEL", "WEB", "SEARCH", "X", "SEARCH", "CODE", "INTERPRETER", "FILE", "SEARCH", "MCP", "DOCUMENT", "SEARCH"},
		{"grok-4.3", "3", "2", "0", "0", "1", "4"},
		{"TOTAL", "3", "2", "0", "0", "1", "4"},
	}
	if len(dl) != len(wantDetails) {
		t.Fatalf("breakdown (only groups with tool calls, then the total):\n%s", details)
	}
	for i, want := range wantDetails {
		if !reflect.DeepEqual(fields(dl[i]), want) {
			t.Errorf("breakdown line %d: %q, want %v", i, dl[i], want)
		}
	}

	// A period without tool calls has no breakdown.
	out, err = cli(t, nil, "usage", "--group-by", "key", "--from", "2026-11-03", "--db", db)
	if err != nil || strings.Contains(out, "Server-side tool calls") {
		t.Errorf("usage without tool calls: %v\n%s", err, out)
	}

	out, err = cli(t, nil, "usage", "--group-by", "key", "--json", "--db", db)
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		Data []struct {
			KeyID   string           `json:"key_id"`
			Calls   int64            `json:"tool_calls"`
			Details map[string]int64 `json:"tool_call_details"`
		} `json:"data"`
	}
	if err := json.Unmarshal([]byte(out), &v); err != nil || len(v.Data) != 2 {
		t.Fatalf("usage --json: %v\n%s", err, out)
	}
	a := v.Data[0]
	if a.KeyID != "key_a" || a.Calls != 10 || !reflect.DeepEqual(a.Details, map[string]int64{"web_search_calls": 3, "x_search_calls": 2,
		"code_interpreter_calls": 0, "file_search_calls": 0, "mcp_calls": 1, "document_search_calls": 4}) {
		t.Errorf("key_a: %+v", a)
	}
	if b := v.Data[1]; b.KeyID != "key_b" || b.Calls != 0 || len(b.Details) != 6 {
		t.Errorf("key_b: %+v", b)
	}
}
