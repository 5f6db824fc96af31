package gateway

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/grokgate/grokgate"
)

// jsonUpstream answers every request with the same completion from memory.
type jsonUpstream struct {
	body   []byte
	rd     bytes.Reader
	header http.Header
}

func (u *jsonUpstream) Do(ctx context.Context, method, path string, body []byte) (*http.Response, error) {
	u.rd.Reset(u.body)
	return &http.Response{StatusCode: http.StatusOK, Header: u.header, ContentLength: int64(len(u.body)),
		Body: io.NopCloser(&u.rd)}, nil
}

// BenchmarkChat is one non-streaming request through the whole handler
// (request id, access log, auth, validation, forwarding) with the network
// taken out: what grokgate itself spends per request.
func BenchmarkChat(b *testing.B) {
	up := &jsonUpstream{header: http.Header{"Content-Type": {"application/json"}},
		body: []byte(`{"id":"53ae1f0c-0c5c-4e57-9c8d-1b0f8d3e7a21","object":"chat.completion","created":1773345550,"model":"grok-4.3","choices":[{"index":0,"message":{"role":"assistant","content":"A gateway holds the upstream key, checks its own keys, and relays answers unchanged.","refusal":null},"finish_reason":"stop"}],"usage":{"prompt_tokens":75,"completion_tokens":8,"total_tokens":83,"prompt_tokens_details":{"text_tokens":75,"audio_tokens":0,"image_tokens":0,"cached_tokens":0},"completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0},"num_sources_used":0,"cost_in_usd_ticks":123000},"system_fingerprint":"fp_3d7ed3b779"}`)}
	key := &grokgate.Key{ID: "key_bench", Prefix: "gg-bench0"}
	// A real logger formatting to a discarded writer: the access line is
	// part of every request's cost.
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	h := NewServer(log, Config{}, fixedAuth{key}, up)
	body := []byte(`{"model":"grok-4.3","messages":[{"role":"system","content":"You are a concise assistant for an engineering team. Answer in plain prose, cite no sources, and keep every answer under one hundred words unless asked for more."},{"role":"user","content":"What does a gateway in front of a model API do for the applications behind it?"}]}`)
	w := &discardWriter{h: http.Header{}}
	b.ReportAllocs()
	for b.Loop() {
		req := httptest.NewRequest(http.MethodPost, "/v1/chat/completions", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer gg-bench")
		req.Header.Set("Content-Type", "application/json")
		clear(w.h)
		w.n = 0
		h.ServeHTTP(w, req)
		if w.n != int64(len(up.body)) {
			b.Fatalf("wrote %d bytes, want %d", w.n, len(up.body))
		}
	}
}
