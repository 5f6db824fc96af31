package main

import (
	"io"
	"strings"
	"testing"
)

// TestSimulatorOnlyWhenSafe: without XAI_API_KEY, serve answers from the
// simulator only on a loopback address or when asked with --simulator; on
// any other address start-up fails saying what to do, so a deployment that
// lost its secret never serves fake answers.
func TestSimulatorOnlyWhenSafe(t *testing.T) {
	noEnv := func(string) string { return "" }
	withKey := func(k string) string {
		if k == "XAI_API_KEY" {
			return "xai-test"
		}
		return ""
	}
	for _, c := range []struct {
		args []string
		env  func(string) string
		ok   bool
	}{
		{[]string{"--addr", "127.0.0.1:8080"}, noEnv, true},
		{[]string{"--addr", "localhost:8080"}, noEnv, true},
		{[]string{"--addr", "[::1]:8080"}, noEnv, true},
		{[]string{"--addr", "0.0.0.0:8080"}, noEnv, false},
		{[]string{"--addr", ":8080"}, noEnv, false},
		{[]string{"--addr", "10.1.2.3:8080"}, noEnv, false},
		{[]string{"--addr", "0.0.0.0:8080", "--simulator"}, noEnv, true},
		{[]string{"--addr", "0.0.0.0:8080"}, withKey, true},
	} {
		_, err := parseServe(c.args, c.env, io.Discard)
		if (err == nil) != c.ok {
			t.Errorf("%v: err %v, want ok=%v", c.args, err, c.ok)
		}
		if err != nil && (!strings.Contains(err.Error(), "XAI_API_KEY") || !strings.Contains(err.Error(), "--simulator")) {
			t.Errorf("%v: %v does not say to set XAI_API_KEY or pass --simulator", c.args, err)
		}
	}
	// serve itself refuses to start.
	if _, err := cli(t, nil, "serve", "--addr", "0.0.0.0:0", "--db", t.TempDir()+"/g.db"); err == nil || !strings.Contains(err.Error(), "--simulator") {
		t.Errorf("serve on 0.0.0.0 without a key: %v", err)
	}
}
