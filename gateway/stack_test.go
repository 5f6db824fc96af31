package gateway

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strings"
	"sync"
	"testing"
	"time"
)

// holdingUpstream answers every chat request with an SSE head and one chunk,
// then holds the connection open until closed. One goroutine serves every
// connection in turn, so the streams it holds add no goroutines of its own
// to the process.
type holdingUpstream struct {
	ln    net.Listener
	mu    sync.Mutex
	conns []net.Conn
	done  chan struct{}
}

func newHoldingUpstream(t *testing.T) *holdingUpstream {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := &holdingUpstream{ln: ln, done: make(chan struct{})}
	go u.serve()
	t.Cleanup(u.close)
	return u
}

func (u *holdingUpstream) serve() {
	defer close(u.done)
	for {
		c, err := u.ln.Accept()
		if err != nil {
			return
		}
		req, err := http.ReadRequest(bufio.NewReader(c))
		if err != nil {
			c.Close()
			continue
		}
		io.Copy(io.Discard, req.Body)
		chunk := `{"id":"c1","object":"chat.completion.chunk","created":1,"model":"grok-4.3","choices":[{"index":0,"delta":{"role":"assistant","content":"Hi"}}]}`
		fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
		ev := "data: " + chunk + "\n\n"
		fmt.Fprintf(c, "%x\r\n%s\r\n", len(ev), ev)
		u.mu.Lock()
		u.conns = append(u.conns, c)
		u.mu.Unlock()
	}
}

func (u *holdingUpstream) close() {
	u.ln.Close()
	<-u.done
	u.mu.Lock()
	defer u.mu.Unlock()
	for _, c := range u.conns {
		c.Close()
	}
}

// streamStackBudget is the stack an open stream's connection goroutine may
// hold: it holds it for the stream's whole life, so doubling it to the next
// size would add a large share to every open stream's memory.
const streamStackBudget = 8 << 10

func stackInuse() uint64 {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.StackInuse
}

func stackStart() uint64 {
	s := []metrics.Sample{{Name: "/gc/stack/starting-size:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// TestStreamStackBudget opens streams through the handler to an upstream that
// holds them open and checks the stack they hold. A stream has the
// connection goroutine, whose stack the gateway's code decides, and helper
// goroutines of net/http (the server's background read, the transport's
// read and write loops), which start at the runtime's starting size and
// grow to at most 4 KiB; so the connection goroutine keeps within
// streamStackBudget when the total per stream keeps within the budget plus
// the helpers'. Averaged over many streams, and with the collector off so
// stacks neither shrink nor change their starting size while it counts, the
// check needs no timing.
func TestStreamStackBudget(t *testing.T) {
	if raceEnabled {
		t.Skip("the budget is a normal build's; the race detector enlarges frames (scripts/test runs this test without it)")
	}
	const n = 200
	up := newHoldingUpstream(t)
	transport := &http.Transport{MaxIdleConnsPerHost: n}
	t.Cleanup(transport.CloseIdleConnections)
	h := newHarnessUpstream(t, "http://"+up.ln.Addr().String()+"/v1", transport, func(c *Config) { c.Heartbeat = time.Minute })
	srv, secret := h.gw, h.user

	body := chat("grok-4.3", "hi", true, false)
	req := "POST /v1/chat/completions HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer " + secret +
		"\r\nContent-Type: application/json\r\nContent-Length: " + fmt.Sprint(len(body)) + "\r\n\r\n" + body
	open := func(count int) []net.Conn {
		var conns []net.Conn
		for range count {
			c, err := net.Dial("tcp", srv.Listener.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { c.Close() })
			if _, err := io.WriteString(c, req); err != nil {
				t.Fatal(err)
			}
			br := bufio.NewReader(c)
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			for {
				line, err := br.ReadString('\n')
				if err != nil {
					t.Fatalf("stream did not start: %v", err)
				}
				if strings.HasPrefix(line, "data: ") {
					break
				}
			}
			conns = append(conns, c)
		}
		return conns
	}
	open(10) // warm: pools, the key cache, the first connection's setup
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	runtime.GC()
	g0, s0, start := runtime.NumGoroutine(), stackInuse(), stackStart()
	if start > streamStackBudget {
		t.Fatalf("goroutines start with %d-byte stacks, more than the %d-byte budget, so it cannot be checked; run with GODEBUG=adaptivestackstart=0", start, streamStackBudget)
	}
	open(n)
	g1, s1 := runtime.NumGoroutine(), stackInuse()
	perStream := (g1 - g0 + n/2) / n
	if perStream < 1 {
		t.Fatalf("%d goroutines for %d open streams", g1-g0, n)
	}
	helper := max(start, 4<<10)
	// 1 KiB of slack per stream for stack spans' unused slots; a connection
	// goroutine at twice the budget adds 8 KiB.
	bound := uint64(streamStackBudget + (perStream-1)*int(helper) + 1<<10)
	got := (s1 - s0) / n
	t.Logf("per open stream: %d goroutines, %d bytes of stack (bound %d; stacks start at %d)", perStream, got, bound, start)
	if got > bound {
		t.Errorf("an open stream holds %d bytes of stack in %d goroutines, more than %d: the connection goroutine's stack outgrew %d bytes",
			got, perStream, bound, streamStackBudget)
	}
}
