package main

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/grokgate/grokgate/simulator"
)

// python3 returns the interpreter if it can import requests; without it the
// test is skipped, or fails under GROKGATE_REQUIRE_SERVICES=1 (CI installs
// Debian's python3-requests).
func python3(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("python3")
	if err == nil {
		err = exec.Command(path, "-c", "import requests").Run()
	}
	if err != nil {
		msg := "python3 with requests is not available: " + err.Error()
		if os.Getenv("GROKGATE_REQUIRE_SERVICES") == "1" {
			t.Fatal(msg + " (GROKGATE_REQUIRE_SERVICES=1 makes this a failure; apt-get install python3-requests)")
		}
		t.Skip(msg + " (skipping; GROKGATE_REQUIRE_SERVICES=1 makes this a failure)")
	}
	return path
}

// runLoop runs one of the e2e/python loops against g, with messages (a JSON
// array, which is also a Python literal when it holds only strings) in place
// of the script's own, and returns what it printed and how it ended.
func runLoop(t *testing.T, python, script string, g *gw, messages string) (stdout, stderr string, exit error) {
	t.Helper()
	src, err := os.ReadFile(filepath.Join("..", "..", "e2e", "python", script))
	if err != nil {
		t.Fatal(err)
	}
	const url, own = "http://127.0.0.1:8080", `[{"role": "user", "content": "Say hello"}]`
	if !strings.Contains(string(src), url) || !strings.Contains(string(src), own) {
		t.Fatalf("%s no longer has the URL and messages this test replaces", script)
	}
	code := strings.Replace(strings.Replace(string(src), url, g.URL, 1), own, messages, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, python, "-")
	cmd.Stdin = strings.NewReader(code)
	cmd.Env = append(os.Environ(), "KEY="+g.AdminKey)
	var out, errOut strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errOut
	exit = cmd.Run()
	return out.String(), errOut.String(), exit
}

func pyMessages(content any) string {
	b, _ := json.Marshal([]map[string]any{{"role": "user", "content": content}})
	return string(b)
}

// TestPythonRequestsLoop runs the specification's requests loop, and the
// README's (the same with the two lines for the error event), against
// grokgate with its defaults: text and a streamed image request print the
// answer; a mid-stream error crashes the specification's loop on the error
// event (its own limit) and is raised with the message by the README's.
func TestPythonRequestsLoop(t *testing.T) {
	t.Parallel()
	python := python3(t)
	g := startGW(t, nil)
	image := pyMessages([]map[string]any{
		{"type": "text", "text": "What is in the picture?"},
		{"type": "image_url", "image_url": map[string]string{"url": "https://example.com/cat.png"}},
	})
	for _, script := range []string{"spec_loop.py", "readme_loop.py"} {
		for _, c := range []struct{ name, messages, want string }{
			{"text", pyMessages("Say hello"), strings.Join(simulator.Reply("Say hello", 8), "")},
			{"image, streamed", image, strings.Join(simulator.Reply("What is in the picture?", 8), "")},
		} {
			out, errOut, exit := runLoop(t, python, script, g, c.messages)
			if exit != nil || out != c.want {
				t.Fatalf("%s, %s: printed %q (want %q), %v\n%s", script, c.name, out, c.want, exit, errOut)
			}
		}
		out, errOut, exit := runLoop(t, python, script, g, pyMessages(`Start, then fail. #sim{"error_after":2}`))
		partial := strings.Join(simulator.Reply("Start, then fail.", 8)[:2], "")
		want := "KeyError: 'choices'"
		if script == "readme_loop.py" {
			want = "RuntimeError: API error: Simulated error after 2 chunks"
		}
		var ee *exec.ExitError
		if !errors.As(exit, &ee) || out != partial || !strings.Contains(errOut, want) {
			t.Fatalf("%s, mid-stream error: printed %q (want %q), %v, stderr (want %q):\n%s", script, out, partial, exit, want, errOut)
		}
	}
}

// TestREADMEPythonLoop: the README's requests example is the tested loop.
func TestREADMEPythonLoop(t *testing.T) {
	t.Parallel()
	loop, err := os.ReadFile(filepath.Join("..", "..", "e2e", "python", "readme_loop.py"))
	if err != nil {
		t.Fatal(err)
	}
	docs, _ := filepath.Glob(filepath.Join("..", "..", "docs", "*.md"))
	for _, doc := range append([]string{filepath.Join("..", "..", "README.md")}, docs...) {
		b, err := os.ReadFile(doc)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(b), "```python\n"+string(loop)+"```\n") {
			return
		}
	}
	t.Fatal("neither README.md nor docs/*.md shows e2e/python/readme_loop.py as a python block")
}
