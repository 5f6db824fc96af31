package gateway

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/grokgate/grokgate"
	"github.com/grokgate/grokgate/xai"
)

// jsonUpstream answers every request with the same completion from memory.
type jsonUpstream struct {
	body   []byte
	rd     bytes.Reader
	header http.Header
}

func (u *jsonUpstream) Do(ctx context.Context, req xai.Request) (*http.Response, error) {
	u.rd.Reset(u.body)
	return &http.Response{StatusCode: http.StatusOK, Header: u.header, ContentLength: int64(len(u.body)),
		Body: io.NopCloser(&u.rd)}, nil
}

// benchAnswer is a non-streaming completion as xAI sends it.
const benchAnswer = `{"id":"53ae1f0c-0c5c-4e57-9c8d-1b0f8d3e7a21","object":"chat.completion","created":1773345550,"model":"grok-4.3","choices":[{"index":0,"message":{"role":"assistant","content":"A gateway holds the upstream key, checks its own keys, and relays answers unchanged.","refusal":null},"finish_reason":"stop"}],"usage":{"prompt_tokens":75,"completion_tokens":8,"total_tokens":83,"prompt_tokens_details":{"text_tokens":75,"audio_tokens":0,"image_tokens":0,"cached_tokens":0},"completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0},"num_sources_used":0,"cost_in_usd_ticks":123000},"system_fingerprint":"fp_3d7ed3b779"}`

const benchChatBody = `{"model":"grok-4.3","messages":[{"role":"system","content":"You are a concise assistant for an engineering team. Answer in plain prose, cite no sources, and keep every answer under one hundred words unless asked for more."},{"role":"user","content":"What does a gateway in front of a model API do for the applications behind it?"}]}`

// BenchmarkChat is one non-streaming request through the whole handler
// (request id, access log, auth, validation, forwarding) with the network
// taken out: what grokgate itself spends per request.
func BenchmarkChat(b *testing.B) {
	benchChat(b, Config{}, &grokgate.Key{ID: "key_bench", Prefix: "gg-bench0"})
}

// BenchmarkChatLimited is BenchmarkChat for a key with a tokens-per-minute
// limit, so admission estimates the prompt; the limiter itself is a stub
// that always admits, leaving the gateway's own work.
func BenchmarkChatLimited(b *testing.B) {
	benchChat(b, Config{Limiter: admitAll{}},
		&grokgate.Key{ID: "key_bench", Prefix: "gg-bench0", Limits: grokgate.Limits{TPM: 1 << 40}})
}

type admitAll struct{}

func (admitAll) Admit(context.Context, grokgate.Admission) (grokgate.Verdict, error) {
	return grokgate.Verdict{Allowed: true}, nil
}

func (admitAll) Settle(context.Context, grokgate.Admission, grokgate.Settlement) error { return nil }

func benchChat(b *testing.B, cfg Config, key *grokgate.Key) {
	up := &jsonUpstream{header: http.Header{"Content-Type": {"application/json"}}, body: []byte(benchAnswer)}
	// A real logger formatting to a discarded writer: the access line is
	// part of every request's cost.
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	h := NewServer(log, cfg, fixedAuth{key}, up)
	body := []byte(benchChatBody)
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

// benchConversation is a multi-turn chat body of about 3 KB, with the
// escapes (newlines, quotes) real prompts carry and one array content.
func benchConversation() []byte {
	para := `Our service sends about 2,000 requests a minute to the model API.\nEach request carries the team's \"house style\" prompt and the user's question; answers are cached for an hour. `
	msgs := []string{
		`{"role":"system","content":"You are a concise assistant for an engineering team.\n- Answer in plain prose.\n- Cite no sources.\n- Keep every answer under one hundred words unless asked for more."}`,
		`{"role":"user","content":"` + strings.Repeat(para, 4) + `What should sit between the service and the API?"}`,
		`{"role":"assistant","content":"A gateway: it holds the upstream key, gives each team its own key with limits, records usage per key, and retries or fails over when the API is down. It relays answers unchanged, so clients keep their SDKs."}`,
		`{"role":"user","content":[{"type":"text","text":"` + strings.Repeat(para, 2) + `"},{"type":"text","text":"How does it count tokens before the answer arrives?"}]}`,
		`{"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"lookup","arguments":"{\"topic\":\"token estimates\"}"}}]}`,
		`{"role":"tool","tool_call_id":"call_1","content":"It estimates the prompt from the message text: about four bytes a token, plus a few tokens per message."}`,
		`{"role":"user","content":"And when the real usage arrives?"}`,
	}
	return []byte(`{"model":"grok-4.3","temperature":0.3,"max_tokens":600,"messages":[` + strings.Join(msgs, ",") + `]}`)
}

// BenchmarkParseChat is what the request path spends reading a chat body:
// validation plus the prompt estimate a token limit reserves.
func BenchmarkParseChat(b *testing.B) {
	body := benchConversation()
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		p, e := parseChat(body)
		if e != nil {
			b.Fatal(e.Message)
		}
		if p.promptTokens == 0 {
			b.Fatal("no estimate")
		}
	}
}

// BenchmarkParseResponses is what the request path spends reading a
// Responses API body: a conversation as "input" items, as the OpenAI SDKs
// send one.
func BenchmarkParseResponses(b *testing.B) {
	body := []byte(`{"model":"grok-4.3","stream":true,"max_output_tokens":600,"input":[` +
		`{"role":"system","content":"You are a concise assistant for an engineering team. Answer in plain prose."},` +
		`{"role":"user","content":"What does an API gateway do for a team that shares one xAI key?"},` +
		`{"type":"message","role":"assistant","content":[{"type":"output_text","text":"It holds the key, gives each app its own, limits and meters them."}]},` +
		`{"role":"user","content":[{"type":"input_text","text":"And how does it count tokens before the answer arrives?"}]}]}`)
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		p, e := parseResponses(body)
		if e != nil {
			b.Fatal(e.Message)
		}
		if p.promptTokens == 0 {
			b.Fatal("no estimate")
		}
	}
}
