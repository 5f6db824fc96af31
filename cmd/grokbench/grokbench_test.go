package main

import (
	"context"
	"encoding/json"
	"encoding/xml"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// childEnv marks a re-run of the test binary as the proxy child, since a
// test binary cannot be re-run with a subcommand the way grokbench can.
const childEnv = "GROKBENCH_TEST_CHILD=proxy"

func TestMain(m *testing.M) {
	if os.Getenv("GROKBENCH_TEST_CHILD") == "proxy" {
		ctx, stop := context.WithCancel(context.Background())
		defer stop()
		if err := run(ctx, os.Args[1:], nil, nil, os.Stdout, os.Stderr); err != nil {
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestQuickRun runs the whole command on tiny numbers: every server starts,
// every phase measures something, nothing fails, and all outputs are written.
func TestQuickRun(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("grokbench reads /proc")
	}
	out := t.TempDir()
	args := []string{"--quick", "--out", out, "--rounds", "1", "--duration", "300ms", "--warmup", "0s",
		"--concurrency", "2", "--rate", "100", "--open-conns", "4",
		"--stream-concurrency", "2", "--stream-chunks", "3", "--stream-delay", "1ms",
		"--streams", "20", "--stream-hold", "100ms", "--slow-delay", "1s"}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var stdout strings.Builder
	progress := &lockedBuilder{}
	if err := run(ctx, args, []string{os.Args[0]}, []string{childEnv}, &stdout, io.MultiWriter(testLog{t}, progress)); err != nil {
		t.Fatal(err)
	}
	// Capacity leaves the servers with idle pools and a grown heap: the
	// other phases run on servers started afresh.
	if p := progress.String(); strings.Count(p, "servers up:") != 2 || !strings.Contains(p, "restarting the servers after the capacity run") {
		t.Errorf("the servers were not restarted after the capacity run; progress:\n%s", p)
	}
	md := stdout.String()
	for _, want := range []string{"| | simulator (floor) | bare proxy (baseline) | grokgate | grokgate ÷ proxy |", "RSS per open stream"} {
		if !strings.Contains(md, want) {
			t.Errorf("table lacks %q:\n%s", want, md)
		}
	}
	b, err := os.ReadFile(filepath.Join(out, "results.json"))
	if err != nil {
		t.Fatal(err)
	}
	var rep report
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.Targets) != 3 {
		t.Fatalf("%d targets", len(rep.Targets))
	}
	for _, tr := range rep.Targets {
		for name, p := range map[string]*phaseReport{"closed": tr.Closed, "open": tr.Open, "stream": tr.Stream} {
			if p == nil || p.Requests == 0 || p.Errors != 0 || p.P50 <= 0 {
				t.Errorf("%s %s: %+v", tr.Name, name, p)
			}
		}
		if tr.Name == "floor" {
			continue
		}
		if c := tr.Capacity; c == nil || c.Opened != 20 || c.Errors != 0 || c.HeldKiB <= 0 {
			t.Errorf("%s capacity: %+v", tr.Name, c)
		}
	}
	if rep.Relay == nil || rep.Relay.AllocsPerOp != 0 {
		t.Errorf("BenchmarkRelay: %+v (%s), want it run and 0 allocations per event", rep.Relay, rep.RelayErr)
	}
	if c := rep.CapacityH2; c == nil || c.Opened != 20 || c.Errors != 0 {
		t.Errorf("capacity with an HTTP/2 upstream: %+v", c)
	}
	if !strings.Contains(rep.Features, "auth") {
		t.Errorf("features: %q", rep.Features)
	}
	svg, err := os.Open(filepath.Join(out, "latency.svg"))
	if err != nil {
		t.Fatal(err)
	}
	defer svg.Close()
	dec := xml.NewDecoder(svg)
	lines := 0
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("latency.svg is not well-formed: %v", err)
		}
		if se, ok := tok.(xml.StartElement); ok && se.Name.Local == "polyline" {
			lines++
		}
	}
	if lines != 9 {
		t.Errorf("latency.svg has %d lines, want 3 panels × 3 targets", lines)
	}
}

// testLog sends progress lines to the test log.
type testLog struct{ t *testing.T }

// lockedBuilder keeps what is written to it, for writers on any goroutine.
type lockedBuilder struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuilder) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuilder) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (l testLog) Write(p []byte) (int, error) {
	l.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func TestPercentile(t *testing.T) {
	s := samples{5, 1, 4, 2, 3}.sorted()
	for q, want := range map[float64]int64{0: 1, 0.2: 1, 0.5: 3, 0.9: 5, 1: 5} {
		if got := s.pct(q); int64(got) != want {
			t.Errorf("pct(%g) = %d, want %d", q, got, want)
		}
	}
	if samples(nil).pct(0.5) != 0 {
		t.Error("empty samples")
	}
}

func TestThousands(t *testing.T) {
	for v, want := range map[float64]string{0: "0", 999: "999", 1000: "1,000", 11523.4: "11,523", 1234567: "1,234,567", -2500: "-2,500"} {
		if got := thousands(v); got != want {
			t.Errorf("thousands(%v) = %q, want %q", v, got, want)
		}
	}
}

func TestParseBenchLine(t *testing.T) {
	out := "goos: linux\nBenchmarkRelayHandler/events=1-2  100  20219 ns/op  11128 B/op  126 allocs/op\n" +
		"BenchmarkRelay-2   \t 1964984\t       597.8 ns/op\t 363.02 MB/s\t       0 B/op\t       0 allocs/op\nPASS\n"
	b, err := parseBenchLine(out, "BenchmarkRelay")
	if err != nil {
		t.Fatal(err)
	}
	if b.Name != "BenchmarkRelay-2" || b.NsPerOp != 597.8 || b.BytesPerOp != 0 || b.AllocsPerOp != 0 {
		t.Errorf("%+v", b)
	}
	if _, err := parseBenchLine("BenchmarkRelay-2 10 5 ns/op\n", "BenchmarkRelay"); err == nil {
		t.Error("a line without -benchmem figures was accepted")
	}
	if _, err := parseBenchLine("PASS\n", "BenchmarkRelay"); err == nil {
		t.Error("output without the benchmark was accepted")
	}
}
