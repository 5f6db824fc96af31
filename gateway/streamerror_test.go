package gateway_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/grokgate/grokgate/gateway"
	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
)

// TestStreamErrorFormats: the event that ends a begun stream, byte for byte,
// in each GROKGATE_STREAM_ERROR_FORMAT, for an xAI error event, a cut
// upstream and an idle upstream.
func TestStreamErrorFormats(t *testing.T) {
	t.Parallel()
	cases := []struct {
		directive, message, code string
	}{
		{`{"error_after":2}`, "Simulated error after 2 chunks", "Internal error"},
		{`{"cut_after":2}`, "the upstream stream ended unexpectedly before it was complete", "stream_interrupted"},
		{`{"chunks":3,"delay_ms":1000}`, "xAI sent nothing for 200ms; the stream was ended", "stream_interrupted"},
	}
	for _, format := range []gateway.StreamErrorFormat{"", gateway.StreamErrorString, gateway.StreamErrorOpenAI} {
		e := newIV(t, gateway.Config{StreamErrorFormat: format, StreamIdleTimeout: 200 * time.Millisecond}, nil)
		for _, c := range cases {
			content, _ := json.Marshal("hi #sim" + c.directive)
			resp, body := e.postJSON(t, "/api/v1/chat/completions",
				`{"model":"grok-4.3","stream":true,"messages":[{"role":"user","content":`+string(content)+`}]}`)
			if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
				t.Fatalf("%s %s: %d %v", format, c.directive, resp.StatusCode, resp.Header)
			}
			events := strings.Split(strings.TrimSuffix(string(body), "\n\n"), "\n\n")
			last := events[len(events)-1]
			want := `data: {"error":"API error: ` + c.message + `"}`
			if format == gateway.StreamErrorOpenAI {
				want = `data: {"error":{"message":"API error: ` + c.message + `","type":"upstream_error","param":null,"code":"` + c.code + `"}}`
			}
			if last != want || strings.Contains(string(body), "[DONE]") {
				t.Fatalf("%s %s: stream ends with\n%s\nwant\n%s", format, c.directive, last, want)
			}
		}
	}
}

// TestStreamErrorOpenAIGo: openai-go's stream error carries the message in
// either format.
func TestStreamErrorOpenAIGo(t *testing.T) {
	t.Parallel()
	for _, format := range []gateway.StreamErrorFormat{gateway.StreamErrorString, gateway.StreamErrorOpenAI} {
		e := newIV(t, gateway.Config{StreamErrorFormat: format}, nil)
		client := openai.NewClient(option.WithBaseURL(e.gw.URL+"/api/v1"), option.WithAPIKey(ivKey),
			option.WithHTTPClient(e.gw.Client()), option.WithMaxRetries(0))
		stream := client.Chat.Completions.NewStreaming(context.Background(), openai.ChatCompletionNewParams{
			Model:    "grok-4.3",
			Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage(`hi #sim{"error_after":2}`)},
		})
		chunks := 0
		for stream.Next() {
			chunks++
		}
		err := stream.Err()
		stream.Close()
		if chunks != 2 || err == nil || !strings.Contains(err.Error(), "API error: Simulated error after 2 chunks") {
			t.Fatalf("%s: %d chunks, error %v", format, chunks, err)
		}
	}
}
