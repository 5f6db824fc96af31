package gateway

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/grokgate/grokgate"
	"github.com/grokgate/grokgate/keys"
	"github.com/grokgate/grokgate/simulator"
	"github.com/grokgate/grokgate/xai"
)

// histStreams is an Observer whose streams feed a real Prometheus
// histogram, as package metrics does.
type histStreams struct{ h prometheus.Histogram }

func (histStreams) Request(RequestStats)           {}
func (histStreams) UpstreamError(string)           {}
func (histStreams) RateLimited(string, string)     {}
func (o histStreams) Stream(string) StreamObserver { return &histStream{o.h} }

type histStream struct{ h prometheus.Histogram }

func (s *histStream) FirstEvent(d time.Duration) { s.h.Observe(d.Seconds()) }
func (s *histStream) Event(d time.Duration)      { s.h.Observe(d.Seconds()) }
func (s *histStream) End()                       {}

// TestRelayAllocsPerEventObserved: with metrics on, relaying still
// allocates nothing per event (the observer is resolved once per stream).
func TestRelayAllocsPerEventObserved(t *testing.T) {
	s := relayServer()
	h := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "gap", Buckets: prometheus.DefBuckets})
	s.cfg.Observer = histStreams{h}
	w := &sinkWriter{h: http.Header{}}
	noAllocsPerEvent(t, "relaying with metrics", func(n int) { relayStream(s, w, n) })
}

type oneKey struct {
	k      *grokgate.Key
	secret string
}

func (a oneKey) Authenticate(_ context.Context, s string) (*grokgate.Key, error) {
	if s == a.secret {
		return a.k, nil
	}
	return nil, keys.ErrInvalid
}

// TestTracing runs requests through a traced gateway and the simulator and
// checks the spans the SDK's in-memory exporter got, and the traceparent
// xAI received.
func TestTracing(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { tp.Shutdown(context.Background()) })

	var mu sync.Mutex
	var upTraceparents []string
	sim := simulator.New(simulator.Options{})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		upTraceparents = append(upTraceparents, r.Header.Get("traceparent"))
		mu.Unlock()
		sim.ServeHTTP(w, r)
	}))
	t.Cleanup(up.Close)
	log := slog.New(slog.DiscardHandler)
	client := xai.NewClient(up.URL+"/v1", "sim-key", up.Client().Transport, xai.Retry{MaxAttempts: 1}, log, time.Now)
	client.SetHooks(xai.Hooks{Header: func(ctx context.Context, h http.Header) {
		propagation.TraceContext{}.Inject(ctx, propagation.HeaderCarrier(h))
	}})
	key := &grokgate.Key{ID: "key_test", Prefix: "gg-test", Role: grokgate.RoleUser}
	gw := httptest.NewServer(NewServer(log, Config{Tracer: tp.Tracer("test")}, oneKey{key, "gg-secret"}, client).Handler())
	t.Cleanup(gw.Close)

	// The caller's own trace, which grokgate must continue.
	callerTrace, _ := trace.TraceIDFromHex("0af7651916cd43dd8448eb211c80319c")
	callerSpan, _ := trace.SpanIDFromHex("b7ad6b7169203331")
	for i, stream := range []bool{false, true} {
		exp.Reset()
		mu.Lock()
		upTraceparents = nil
		mu.Unlock()
		req, _ := http.NewRequest(http.MethodPost, gw.URL+"/v1/chat/completions", strings.NewReader(chat("grok-4.3", "hi", stream, stream)))
		req.Header.Set("Authorization", "Bearer gg-secret")
		if i == 0 {
			req.Header.Set("traceparent", "00-"+callerTrace.String()+"-"+callerSpan.String()+"-01")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("%d %s", resp.StatusCode, body)
		}
		var want struct{ Prompt, Output int64 }
		u := usageIn(t, body)
		want.Prompt, want.Output = u.Prompt, u.Completion+u.Reasoning

		var server, client *tracetest.SpanStub
		deadline := time.Now().Add(5 * time.Second)
		for server == nil && time.Now().Before(deadline) {
			// The server span ends after the response is written.
			for _, s := range exp.GetSpans() {
				switch s.SpanKind {
				case trace.SpanKindServer:
					server = &s
				case trace.SpanKindClient:
					client = &s
				}
			}
			time.Sleep(5 * time.Millisecond)
		}
		if server == nil || client == nil || len(exp.GetSpans()) != 2 {
			t.Fatalf("stream=%v: spans %+v", stream, exp.GetSpans())
		}
		if server.Name != "POST /chat/completions" || client.Name != "chat grok-4.3" {
			t.Errorf("span names %q, %q", server.Name, client.Name)
		}
		if client.Parent.SpanID() != server.SpanContext.SpanID() || client.SpanContext.TraceID() != server.SpanContext.TraceID() {
			t.Error("the client span is not the server span's child")
		}
		if i == 0 && (server.SpanContext.TraceID() != callerTrace || server.Parent.SpanID() != callerSpan) {
			t.Errorf("the caller's traceparent was not continued: %v parent %v", server.SpanContext.TraceID(), server.Parent.SpanID())
		}
		wantTP := "00-" + client.SpanContext.TraceID().String() + "-" + client.SpanContext.SpanID().String() + "-01"
		mu.Lock()
		if len(upTraceparents) != 1 || upTraceparents[0] != wantTP {
			t.Errorf("xAI got traceparent %q, want %q", upTraceparents, wantTP)
		}
		mu.Unlock()
		for _, sp := range []*tracetest.SpanStub{server, client} {
			attrs := map[attribute.Key]attribute.Value{}
			for _, a := range sp.Attributes {
				attrs[a.Key] = a.Value
			}
			checks := map[attribute.Key]any{
				"gen_ai.system": "xai", "gen_ai.operation.name": "chat", "gen_ai.request.model": "grok-4.3",
				"gen_ai.response.model": "grok-4.3", "gen_ai.usage.input_tokens": want.Prompt,
				"gen_ai.usage.output_tokens": want.Output, "http.response.status_code": int64(200),
			}
			for k, v := range checks {
				if got, ok := attrs[k]; !ok || got.AsInterface() != v {
					t.Errorf("stream=%v %s span: %s = %v, want %v", stream, sp.Name, k, got.AsInterface(), v)
				}
			}
			if sp.Name == server.Name {
				if attrs["grokgate.request_id"].AsString() != resp.Header.Get("X-Request-Id") {
					t.Errorf("server span request id %v", attrs["grokgate.request_id"])
				}
				if attrs["grokgate.key_id"].AsString() != "key_test" {
					t.Errorf("server span key id %v", attrs["grokgate.key_id"])
				}
			}
		}
	}
}

type tokenUsage struct {
	Prompt     int64 `json:"prompt_tokens"`
	Completion int64 `json:"completion_tokens"`
	Reasoning  int64
}

// usageIn finds the usage of a JSON answer or an SSE body.
func usageIn(t *testing.T, body []byte) tokenUsage {
	t.Helper()
	for _, part := range strings.Split(string(body), "\n\n") {
		var u struct {
			Usage *struct {
				tokenUsage
				Details struct {
					Reasoning int64 `json:"reasoning_tokens"`
				} `json:"completion_tokens_details"`
			} `json:"usage"`
		}
		if json.Unmarshal([]byte(strings.TrimPrefix(strings.TrimSpace(part), "data: ")), &u) == nil && u.Usage != nil {
			tu := u.Usage.tokenUsage
			tu.Reasoning = u.Usage.Details.Reasoning
			return tu
		}
	}
	t.Fatalf("no usage in %s", body)
	return tokenUsage{}
}
