package main

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/grokgate/grokgate/internal/logtest"
	"github.com/grokgate/grokgate/simulator"
	"go.uber.org/goleak"
)

// childEnv marks a re-run of the test binary as a child (the proxy, the hop
// or the TLS front, by its first argument), since a test binary cannot be
// re-run with a subcommand the way grokbench can.
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
	// A guard against a hang, not a speed target: with a cold build cache
	// the run compiles grokgate and the gateway's tests (SQLite among them)
	// while the rest of the suite compiles beside it.
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	var stdout strings.Builder
	progress := &logtest.Buffer{}
	if err := run(ctx, args, []string{os.Args[0]}, []string{childEnv}, &stdout, io.MultiWriter(testLog{t}, progress)); err != nil {
		t.Fatal(err)
	}
	// Capacity leaves the servers with idle pools and a grown heap: the
	// other phases run on servers started afresh.
	if p := progress.String(); strings.Count(p, "servers up:") != 2 || !strings.Contains(p, "restarting the servers after the capacity run") {
		t.Errorf("the servers were not restarted after the capacity run; progress:\n%s", p)
	}
	md := stdout.String()
	for _, want := range []string{"| | simulator (floor) | one TCP hop (no HTTP) | bare proxy (baseline) | grokgate | grokgate ÷ proxy |",
		"RSS per open stream", "; one TCP hop alone adds ", "| **streaming Responses API, 2 concurrent streams of 3 chunks 1ms apart** |",
		"| streaming Responses API time to first event added over the floor ≤ bare proxy's, median |",
		"| CPU s per 1,000 streams, server process |"} {
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
	var names []string
	for _, tr := range rep.Targets {
		names = append(names, tr.Name)
	}
	if got := strings.Join(names, ","); got != "floor,hop,proxy,grokgate" {
		t.Fatalf("targets %s, want floor,hop,proxy,grokgate", got)
	}
	// Every row of the results table, up to the blank line after it, has
	// the label, a cell per target and the ratio.
	_, table, _ := strings.Cut(md, "| | simulator (floor)")
	table, _, _ = strings.Cut(table, "\n\n")
	rows := 0
	for line := range strings.Lines(table) {
		if rows++; rows > 1 && strings.Count(line, "|") != 7 {
			t.Errorf("row has %d cells, want 6: %s", strings.Count(line, "|")-1, line)
		}
	}
	if rows < 10 {
		t.Errorf("the table has %d rows:\n%s", rows, md)
	}
	for _, tr := range rep.Targets {
		for name, p := range map[string]*phaseReport{"closed": tr.Closed, "open": tr.Open, "stream": tr.Stream, "responses": tr.Responses} {
			if p == nil || p.Requests == 0 || p.Errors != 0 || p.P50 <= 0 {
				t.Errorf("%s %s: %+v", tr.Name, name, p)
			}
		}
		// Every Responses stream ended with response.completed after its
		// 3 text deltas: a stream that did not counts as an error above,
		// and its gaps and time to the end were measured.
		if p := tr.Responses; p != nil && (p.GapP50 <= 0 || p.TotalP50 < p.P50 || len(p.RoundRPS) != 1 || p.RPS <= 0) {
			t.Errorf("%s responses: %+v", tr.Name, p)
		}
		if tr.Name == "floor" || tr.Name == "hop" {
			if tr.Capacity != nil {
				t.Errorf("%s was measured for capacity: %+v", tr.Name, tr.Capacity)
			}
			continue
		}
		if c := tr.Capacity; c == nil || c.Opened != 20 || c.Errors != 0 || c.HeldKiB <= 0 {
			t.Errorf("%s capacity: %+v", tr.Name, c)
		}
	}
	if rep.Relay == nil || rep.Relay.AllocsPerOp != 0 || rep.RelayResponses == nil || rep.RelayResponses.AllocsPerOp != 0 {
		t.Errorf("BenchmarkRelay: %+v, BenchmarkRelayResponses: %+v (%s), want both run and 0 allocations per event", rep.Relay, rep.RelayResponses, rep.RelayErr)
	}
	if c := rep.target("grokgate").CapacityH2; c == nil || c.Opened != 20 || c.Errors != 0 {
		t.Errorf("capacity with an HTTP/2 upstream: %+v", c)
	}
	if c := rep.target("proxy").CapacityH2; c == nil || c.Opened != 20 || c.Errors != 0 || c.HeldKiB <= 0 {
		t.Errorf("the bare proxy's capacity with an HTTP/2 upstream: %+v", c)
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
	if lines != 16 {
		t.Errorf("latency.svg has %d lines, want 4 panels × 4 targets", lines)
	}
}

// testLog sends progress lines to the test log.
type testLog struct{ t *testing.T }

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

func TestByRound(t *testing.T) {
	for _, c := range []struct {
		gw, proxy []float64
		want      string
	}{
		{[]float64{110, 90, 120}, []float64{100, 100, 100}, "0.90–1.20× by round, ahead in 2 of 3"},
		{[]float64{100, 100}, []float64{100, 50}, "1.00–2.00× by round, ahead in 1 of 2"},     // level is not ahead
		{[]float64{100, 100, 100}, []float64{50, 50}, "2.00–2.00× by round, ahead in 2 of 2"}, // unpaired rounds are left out
		{[]float64{100}, []float64{50}, ""},
	} {
		if got := byRound(c.gw, c.proxy); got != c.want {
			t.Errorf("byRound(%v, %v) = %q, want %q", c.gw, c.proxy, got, c.want)
		}
	}
}

func TestFirstByRound(t *testing.T) {
	for _, c := range []struct {
		gw, proxy []float64
		want      string
	}{
		{[]float64{1.0, 2.0, 1.1}, []float64{0.9, 2.1, 1.1}, "grokgate − proxy -0.100 to +0.100 ms by round, at or under the proxy in 2 of 3"}, // level counts as under
		{[]float64{1.0, 1.0}, []float64{0.5, 0.5, 0.5}, "grokgate − proxy +0.500 to +0.500 ms by round, at or under the proxy in 0 of 2"},      // unpaired rounds are left out
		{[]float64{1.0}, []float64{0.5}, ""},
	} {
		if got := firstByRound(c.gw, c.proxy); got != c.want {
			t.Errorf("firstByRound(%v, %v) = %q, want %q", c.gw, c.proxy, got, c.want)
		}
	}
}

// TestStreamsCheck: at full scale the 10,000-streams check judges grokgate
// over the HTTP/2 upstream and names the bare proxy's figure beside it.
func TestStreamsCheck(t *testing.T) {
	for _, c := range []struct {
		gwKiB float64
		holds bool
	}{{47.2, false}, {31.5, true}} {
		r := &report{}
		for _, n := range []string{"floor", "hop", "proxy", "grokgate"} {
			r.Targets = append(r.Targets, &targetReport{Name: n})
		}
		r.target("grokgate").Capacity = &capResult{Want: 9968, Opened: 9968, PerStreamKiB: 52.6}
		r.target("grokgate").CapacityH2 = &capResult{Want: 10000, Opened: 10000, PerStreamKiB: c.gwKiB}
		r.target("proxy").CapacityH2 = &capResult{Want: 10000, Opened: 10000, PerStreamKiB: 56.8}
		var got *check
		for _, ch := range r.checks() {
			if strings.HasPrefix(ch.Target, "10,000 open streams") {
				got = &ch
			}
		}
		switch {
		case got == nil:
			t.Fatalf("%v KiB: no streams check in %+v", c.gwKiB, r.checks())
		case got.Pass == nil || *got.Pass != c.holds:
			t.Errorf("%v KiB: holds %v, want %v", c.gwKiB, got.Pass, c.holds)
		case !strings.Contains(got.Measured, fmt.Sprintf("%.1f KiB each, with an HTTP/2 upstream", c.gwKiB)),
			!strings.Contains(got.Measured, "the bare proxy, through the same HTTP/2 upstream, 56.8 KiB each"):
			t.Errorf("measured: %q", got.Measured)
		}
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

// startHop serves a TCP hop to upstream in-process on a loopback port; the
// returned stop cancels it and returns what serveHop returned.
func startHop(t *testing.T, upstream string, logs io.Writer) (addr string, stop func() error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serveHop(ctx, ln, upstream, log.New(logs, "hop: ", 0)) }()
	return ln.Addr().String(), func() error {
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(10 * time.Second):
			t.Fatal("serveHop did not return within 10s of its context ending")
			return nil
		}
	}
}

// TestHopRelay sends HTTP through the TCP hop over real sockets: responses
// arrive byte for byte over one kept-alive connection, and ending the
// context closes the listener and every open connection and ends every
// goroutine the hop started.
func TestHopRelay(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	// Larger than any socket or copy buffer, so it crosses the hop in pieces.
	payload := make([]byte, 1<<20)
	for i := range payload {
		payload[i] = byte(i*131 + i>>10)
	}
	var conns atomic.Int32
	upstream := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Write(body)
		w.Write(payload)
	}))
	upstream.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	upstream.Start()
	defer upstream.Close()
	logs := &logtest.Buffer{}
	addr, stop := startHop(t, upstream.Listener.Addr().String(), logs)
	stopped := false
	defer func() {
		if !stopped {
			stop()
		}
	}()

	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	for i := range 3 {
		reqBody := fmt.Sprintf("request %d", i)
		resp, err := client.Post("http://"+addr+"/v1/chat/completions", "text/plain", strings.NewReader(reqBody))
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if want := append([]byte(reqBody), payload...); resp.StatusCode != 200 || !bytes.Equal(got, want) {
			t.Fatalf("request %d: status %d, %d bytes back, want %d bytes, equal %v", i, resp.StatusCode, len(got), len(want), bytes.Equal(got, want))
		}
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("the upstream saw %d connections for 3 requests on one kept-alive client connection", n)
	}

	// A connection open through the hop when it stops is closed, not left
	// hanging; so is the client's idle kept-alive one.
	open, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer open.Close()
	stopped = true
	if err := stop(); err != nil {
		t.Errorf("serveHop: %v", err)
	}
	open.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := open.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("a connection through the stopped hop is still open: read %d, %v", n, err)
	}
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Error("the hop still accepts connections after its context ended")
	}
	if l := logs.String(); l != "" {
		t.Errorf("hop logged:\n%s", l)
	}
}

// TestHopHalfClose checks that the hop passes a half-close on both ways: a
// client that sends and then shuts its write side still gets the answer,
// and the upstream's close ends the client's read.
func TestHopHalfClose(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	up, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer up.Close()
	upDone := make(chan struct{})
	go func() { // reads to EOF, then answers with what it read and closes
		defer close(upDone)
		c, err := up.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		b, _ := io.ReadAll(c)
		c.Write(append([]byte("got: "), b...))
	}()
	addr, stop := startHop(t, up.Addr().String(), io.Discard)
	defer stop()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	if err := c.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(c)
	if err != nil || string(got) != "got: ping" {
		t.Errorf("read %q, %v; want %q and EOF", got, err, "got: ping")
	}
	<-upDone
}

// TestStreamEnds reads streams of both APIs from the simulator over a real
// socket: a complete one is measured, and every other way a stream can end
// is an error, told apart by its message.
func TestStreamEnds(t *testing.T) {
	srv := httptest.NewServer(simulator.New(simulator.Options{APIKey: upstreamKey}))
	defer srv.Close()
	addr := srv.Listener.Addr().String()
	for _, c := range []struct {
		api       *streamAPI
		directive string
		err       string // "" for a complete stream
	}{
		{&chatStreams, `#sim{"chunks":4,"delay_ms":2}`, ""},
		{&responsesStreams, `#sim{"chunks":4,"delay_ms":2}`, ""},
		{&responsesStreams, `#sim{"chunks":4,"delay_ms":2,"event_lines":true}`, ""},
		{&chatStreams, `#sim{"chunks":3}`, "3 of them content (want 4"},
		{&responsesStreams, `#sim{"chunks":5}`, "5 of them content (want 4"},
		{&chatStreams, `#sim{"chunks":4,"error_after":2}`, "error event"},
		{&responsesStreams, `#sim{"chunks":4,"error_after":2}`, "error event: Simulated error after 2 chunks"},
		{&responsesStreams, `#sim{"chunks":4,"failed_after":2}`, "response.failed (status failed)"},
		{&responsesStreams, `#sim{"chunks":4,"cut_after":2}`, "unexpected EOF"},
	} {
		name := c.api.phase + " " + c.directive
		conn, err := dial(addr, 4096)
		if err != nil {
			t.Fatal(err)
		}
		conn.nc.SetDeadline(time.Now().Add(10 * time.Second))
		st, err := conn.stream(c.api, buildRequest(addr, c.api.path, upstreamKey, c.api.body(c.directive), true), make([]byte, 4096), 4)
		conn.close()
		switch {
		case c.err == "" && err != nil:
			t.Errorf("%s: %v", name, err)
		case c.err == "" && (len(st.gaps) != 3 || st.first <= 0 || st.total < st.first || st.total < 6*time.Millisecond):
			// Arrival times jitter, so a gap may be short; the end cannot
			// come before the three 2ms waits.
			t.Errorf("%s: measured %+v, want 3 gaps and the end at least 6ms after the send", name, st)
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("%s: error %v, want one containing %q", name, err, c.err)
		}
	}
}
