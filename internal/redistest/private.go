package redistest

import (
	"bufio"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Private starts a Redis server of the test's own (redis-server from PATH,
// no persistence) and returns its URL; it stops when the test ends. Tests
// that restart or flush Redis use it, so the shared one is left alone.
// Without redis-server the test is skipped, or fails if
// GROKGATE_REQUIRE_SERVICES=1.
func Private(t testing.TB) string {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		msg := "redis-server is not on PATH (" + err.Error() + ")"
		if os.Getenv("GROKGATE_REQUIRE_SERVICES") == "1" {
			t.Fatal(msg + " (GROKGATE_REQUIRE_SERVICES=1 makes this a failure)")
		}
		t.Skip(msg + " (skipping; GROKGATE_REQUIRE_SERVICES=1 makes this a failure)")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	cmd := exec.Command(bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", t.TempDir())
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	ready := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if strings.Contains(sc.Text(), "Ready to accept connections") {
				ready <- true
			}
		}
	}()
	select {
	case <-ready:
	case <-time.After(10 * time.Second):
		t.Fatal("redis-server did not start within 10 s")
	}
	return "redis://127.0.0.1:" + strconv.Itoa(port) + "/0"
}
