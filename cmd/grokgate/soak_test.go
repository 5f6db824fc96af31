package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/grokgate/grokgate/simulator"
)

// TestSoak runs 500 concurrent streams for a bounded time with random client
// disconnects and random upstream faults, then checks that nothing leaked:
// goroutines, upstream connections in use, heap.
func TestSoak(t *testing.T) {
	if testing.Short() {
		t.Skip("soak test skipped in -short mode")
	}
	duration := 60 * time.Second
	if d, err := time.ParseDuration(os.Getenv("GROKGATE_SOAK_DURATION")); err == nil {
		duration = d
	}
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())

	// The upstream is a simulator on a server whose connection states we
	// count, so leaked upstream requests show up as active connections.
	var active, open atomic.Int64
	var states sync.Map // net.Conn -> http.ConnState
	up := &http.Server{Handler: simulator.New(simulator.Options{}), ConnState: func(c net.Conn, s http.ConnState) {
		prev, seen := states.Swap(c, s)
		if seen && prev.(http.ConnState) == http.StateActive {
			active.Add(-1)
		}
		switch s {
		case http.StateNew:
			open.Add(1)
		case http.StateActive:
			active.Add(1)
		case http.StateClosed, http.StateHijacked:
			open.Add(-1)
			states.Delete(c)
		}
	}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go up.Serve(ln)
	defer up.Close()

	g := startGW(t, map[string]string{"GROKGATE_TEST_QUIET_LOG": "1", "GROKGATE_TEST_LOG_FILE": os.Getenv("GROKGATE_SOAK_LOG"), "XAI_API_KEY": "xai-soak", "XAI_BASE_URL": "http://" + ln.Addr().String() + "/v1"},
		"--heartbeat", "200ms", "--upstream-attempts", "2")
	tr := &http.Transport{MaxIdleConnsPerHost: 600}
	client := &http.Client{Transport: tr}
	defer tr.CloseIdleConnections()

	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)

	var done, canceled, failed, errs atomic.Int64
	var sampleMu sync.Mutex
	samples := map[string]int{}
	deadline := time.Now().Add(duration)
	var wg sync.WaitGroup
	for w := 0; w < 500; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			for i := 0; time.Now().Before(deadline); i++ {
				what := soakOne(client, g, rng, fmt.Sprintf("w%d-%d", w, i))
				switch what {
				case "done":
					done.Add(1)
				case "canceled":
					canceled.Add(1)
				case "failed":
					failed.Add(1)
				default:
					errs.Add(1)
					sampleMu.Lock()
					samples[what[:min(len(what), 120)]]++
					sampleMu.Unlock()
				}
			}
		}(w)
	}
	wg.Wait()
	t.Logf("soak: %d completed, %d canceled by the client, %d failed as injected, %d unexpected", done.Load(), canceled.Load(), failed.Load(), errs.Load())
	if errs.Load() > 0 {
		t.Fatalf("%d requests ended in a way no fault explains: %v", errs.Load(), samples)
	}
	if done.Load() < 100 {
		t.Fatalf("only %d streams completed", done.Load())
	}

	eventually(t, 10*time.Second, "no upstream request still active", func() bool { return active.Load() == 0 })
	if n := open.Load(); n > 1024 {
		t.Fatalf("%d upstream connections open, more than the idle pool", n)
	}
	tr.CloseIdleConnections()
	if err := g.stop(t); err != nil {
		t.Fatal(err)
	}
	// The gateway has closed its pooled connections; the simulator's side
	// sees them close as its connection goroutines notice.
	eventually(t, 5*time.Second, "every upstream connection closed after stop", func() bool { return open.Load() == 0 })
	up.Close()
	// With the gateway stopped, what the soak allocated must be collectable.
	// Two collections: sync.Pool contents survive the first.
	runtime.GC()
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	t.Logf("heap: %d KiB before, %d KiB after", before.HeapAlloc>>10, after.HeapAlloc>>10)
	if after.HeapAlloc > before.HeapAlloc+16<<20 {
		t.Fatalf("heap grew from %d to %d bytes", before.HeapAlloc, after.HeapAlloc)
	}
}

func soakOne(client *http.Client, g *gw, rng *rand.Rand, tag string) string {
	fault := ""
	switch rng.IntN(8) {
	case 0:
		fault = fmt.Sprintf(` #sim{"error_after":%d}`, rng.IntN(5))
	case 1:
		fault = fmt.Sprintf(` #sim{"cut_after":%d}`, rng.IntN(5))
	case 2:
		fault = ` #sim{"status":503,"fail_times":1}`
	case 3:
		fault = ` #sim{"status":400}`
	}
	cancelAfter := -1
	if rng.IntN(5) == 0 {
		cancelAfter = rng.IntN(6)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	body := chatBody(fmt.Sprintf("soak %s #sim{\"chunks\":%d,\"delay_ms\":%d}%s", tag, 5+rng.IntN(20), 10+rng.IntN(30), fault), true)
	req, _ := http.NewRequestWithContext(ctx, "POST", g.URL+"/api/v1/chat/completions", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+g.AdminKey)
	// Like the OpenAI SDKs, which retry connection errors: a keep-alive
	// connection the server closed just as it was reused (under the race
	// detector's load) is retried by net/http only for a request it may
	// replay, which this header declares. Nothing was answered on it, so
	// a retry hides no gateway failure.
	req.Header.Set("Idempotency-Key", tag)
	resp, err := client.Do(req)
	if err != nil {
		return "transport: " + err.Error()
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		io.Copy(io.Discard, resp.Body)
		if resp.StatusCode == 400 && strings.Contains(fault, `"status":400`) {
			return "failed"
		}
		// A fault before the first event still gets an HTTP status.
		if resp.StatusCode == 502 && (strings.Contains(fault, `_after":0`)) {
			return "failed"
		}
		return fmt.Sprintf("status %d", resp.StatusCode)
	}
	br := bufio.NewReader(resp.Body)
	for n := 0; ; n++ {
		if n == cancelAfter {
			cancel()
			return "canceled"
		}
		ev, err := readEventRaw(br)
		switch {
		case err != nil:
			return fmt.Sprintf("ended without [DONE] or an error event (%v) after %q", err, ev)
		case ev == "data: [DONE]\n\n":
			return "done"
		case strings.HasPrefix(ev, `data: {"error":"API error: `):
			if strings.Contains(fault, "error_after") || strings.Contains(fault, "cut_after") {
				return "failed"
			}
			return "unexpected error event " + ev
		}
	}
}

func readEventRaw(br *bufio.Reader) (string, error) {
	var b strings.Builder
	for {
		line, err := br.ReadString('\n')
		b.WriteString(line)
		if err != nil {
			return b.String(), err
		}
		if line == "\n" {
			return b.String(), nil
		}
	}
}
