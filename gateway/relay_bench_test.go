package gateway

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/grokgate/grokgate"
	"github.com/grokgate/grokgate/xai"
)

// A chat chunk as xAI sends it, about 200 bytes.
const benchChunk = `data: {"id":"53ae1f0c-0c5c-4e57-9c8d-1b0f8d3e7a21","object":"chat.completion.chunk","created":1773345550,"model":"grok-4.3","choices":[{"index":0,"delta":{"content":" word"}}],"system_fingerprint":"fp_3d7ed3b779"}` + "\n\n"

func benchStream(events int) []byte {
	return []byte(strings.Repeat(benchChunk, events) + "data: [DONE]\n\n")
}

// eventReader hands out one event per Read, as a paced upstream does, so
// the relay flushes after every event instead of batching a buffer's worth.
type eventReader struct {
	data []byte
	off  int
}

func (r *eventReader) Read(p []byte) (int, error) {
	if r.off >= len(r.data) {
		return 0, io.EOF
	}
	end := bytes.Index(r.data[r.off:], []byte("\n\n"))
	if end < 0 {
		end = len(r.data) - r.off
	} else {
		end += 2
	}
	n := copy(p, r.data[r.off:r.off+end])
	r.off += n
	return n, nil
}

func (r *eventReader) Close() error { return nil }

// memUpstream answers every request with the same event stream from memory.
type memUpstream struct {
	stream []byte
	body   eventReader
	header http.Header
}

func (u *memUpstream) Do(ctx context.Context, req xai.Request) (*http.Response, error) {
	u.body = eventReader{data: u.stream}
	return &http.Response{StatusCode: http.StatusOK, Header: u.header, Body: &u.body}, nil
}

type fixedAuth struct{ key *grokgate.Key }

func (a fixedAuth) Authenticate(context.Context, string) (*grokgate.Key, error) { return a.key, nil }

// discardWriter is a ResponseWriter and Flusher that keeps nothing, so the
// measurement is the gateway's own work.
type discardWriter struct {
	h       http.Header
	n       int64
	flushes int
}

func (w *discardWriter) Header() http.Header { return w.h }
func (w *discardWriter) WriteHeader(int)     {}
func (w *discardWriter) Write(p []byte) (int, error) {
	w.n += int64(len(p))
	return len(p), nil
}
func (w *discardWriter) Flush() { w.flushes++ }

// relayRig is the gateway handler in front of an in-memory stream.
type relayRig struct {
	h    http.Handler
	up   *memUpstream
	body []byte
	w    discardWriter
}

func newRelayRig(events int) *relayRig {
	up := &memUpstream{stream: benchStream(events), header: http.Header{"Content-Type": {"text/event-stream"}}}
	key := &grokgate.Key{ID: "key_bench", Prefix: "gg-bench0"}
	h := NewServer(slog.New(slog.DiscardHandler), Config{}, fixedAuth{key}, up)
	return &relayRig{h: h, up: up,
		body: []byte(`{"model":"grok-4.3","stream":true,"messages":[{"role":"user","content":"hi"}]}`),
		w:    discardWriter{h: http.Header{}}}
}

// serve runs one streaming request through the handler.
func (r *relayRig) serve(tb testing.TB) {
	req := httptest.NewRequest(http.MethodPost, "/v1/chat/completions", bytes.NewReader(r.body))
	req.Header.Set("Authorization", "Bearer gg-bench")
	req.Header.Set("Content-Type", "application/json")
	clear(r.w.h)
	r.w.n, r.w.flushes = 0, 0
	r.h.ServeHTTP(&r.w, req)
	if want := int64(len(r.up.stream)); r.w.n != want {
		tb.Fatalf("relayed %d bytes, want %d", r.w.n, want)
	}
}

// BenchmarkRelayHandler relays streams, through the whole handler, of 1 and 1000 chat chunks, each flushed on
// its own. The difference between the two allocs/op is what every relayed
// event costs; TestHandlerRelayAllocsPerEvent holds it at zero.
func BenchmarkRelayHandler(b *testing.B) {
	for _, events := range []int{1, 1000} {
		b.Run(fmt.Sprintf("events=%d", events), func(b *testing.B) {
			rig := newRelayRig(events)
			b.ReportAllocs()
			b.SetBytes(int64(len(rig.up.stream)))
			for b.Loop() {
				rig.serve(b)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*(events+1)), "ns/event")
		})
	}
}

// TestHandlerRelayAllocsPerEvent: relaying, through the whole handler, a long stream allocates no more than a
// short one, so the steady-state path allocates nothing per event.
func TestHandlerRelayAllocsPerEvent(t *testing.T) {
	if testing.Short() {
		t.Skip("allocation counting")
	}
	short, long := newRelayRig(10), newRelayRig(1010)
	short.serve(t) // fill the buffer pool
	long.serve(t)
	a := testing.AllocsPerRun(50, func() { short.serve(t) })
	z := testing.AllocsPerRun(50, func() { long.serve(t) })
	if perEvent := (z - a) / 1000; perEvent > 0.01 {
		t.Fatalf("%.3f allocations per relayed event (%.0f for 10 events, %.0f for 1010)", perEvent, a, z)
	}
}
