package gateway_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/grokgate/grokgate/gateway"
	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
)

// sseEvents splits an SSE body strictly as xAI frames it: every event is
// exactly one "data: " line followed by a blank line.
func sseEvents(t *testing.T, body []byte) []string {
	t.Helper()
	var events []string
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(nil, 1<<20)
	expectBlank := false
	for sc.Scan() {
		line := sc.Text()
		if expectBlank {
			if line != "" {
				t.Fatalf("event not followed by a blank line: %q in\n%s", line, body)
			}
			expectBlank = false
			continue
		}
		data, ok := strings.CutPrefix(line, "data: ")
		if !ok {
			t.Fatalf("line %q is not a data line in\n%s", line, body)
		}
		events = append(events, data)
		expectBlank = true
	}
	if len(events) == 0 || events[len(events)-1] != "[DONE]" {
		t.Fatalf("stream does not end with [DONE]:\n%s", body)
	}
	return events[:len(events)-1]
}

type ivChunk struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Model   string `json:"model"`
	Choices []struct {
		Index        int             `json:"index"`
		Delta        json.RawMessage `json:"delta"`
		FinishReason *string         `json:"finish_reason"`
	} `json:"choices"`
	Usage *struct {
		PromptTokens int `json:"prompt_tokens"`
	} `json:"usage"`
}

// checkEmulated checks the emulated framing: role+content chunk, finish
// chunk, usage chunk only if asked for, one id, no "error" key anywhere.
func checkEmulated(t *testing.T, body []byte, wantText string, includeUsage bool) {
	t.Helper()
	events := sseEvents(t, body)
	want := 2
	if includeUsage {
		want = 3
	}
	if len(events) != want {
		t.Fatalf("%d chunks, want %d:\n%s", len(events), want, body)
	}
	var chunks []ivChunk
	for _, ev := range events {
		var probe map[string]json.RawMessage
		if err := json.Unmarshal([]byte(ev), &probe); err != nil {
			t.Fatalf("chunk %q: %v", ev, err)
		}
		if _, ok := probe["error"]; ok {
			t.Fatalf("chunk has an error key: %s", ev)
		}
		if _, ok := probe["usage"]; ok != (includeUsage && len(chunks) == 2) {
			t.Fatalf("usage key in the wrong chunk: %s", ev)
		}
		var c ivChunk
		json.Unmarshal([]byte(ev), &c)
		if c.ID == "" || c.Object != "chat.completion.chunk" || (len(chunks) > 0 && c.ID != chunks[0].ID) {
			t.Fatalf("chunk id/object: %s", ev)
		}
		chunks = append(chunks, c)
	}
	var delta struct {
		Role    string `json:"role"`
		Content string `json:"content"`
	}
	json.Unmarshal(chunks[0].Choices[0].Delta, &delta)
	if delta.Role != "assistant" || delta.Content != wantText || chunks[0].Choices[0].FinishReason != nil {
		t.Fatalf("first chunk: %s", events[0])
	}
	if c := chunks[1].Choices; len(c) != 1 || string(c[0].Delta) != "{}" || c[0].FinishReason == nil || *c[0].FinishReason != "stop" {
		t.Fatalf("finish chunk: %s", events[1])
	}
	if includeUsage && (len(chunks[2].Choices) != 0 || chunks[2].Usage == nil || chunks[2].Usage.PromptTokens == 0 || !strings.Contains(events[2], `"choices":[]`)) {
		t.Fatalf("usage chunk: %s", events[2])
	}
}

// nativeText joins the content deltas of a relayed upstream stream.
func nativeText(t *testing.T, body []byte) string {
	t.Helper()
	var text strings.Builder
	for _, ev := range sseEvents(t, body) {
		var c ivChunk
		if err := json.Unmarshal([]byte(ev), &c); err != nil {
			t.Fatalf("chunk %q: %v", ev, err)
		}
		for _, ch := range c.Choices {
			var d struct {
				Content string `json:"content"`
			}
			json.Unmarshal(ch.Delta, &d)
			text.WriteString(d.Content)
		}
	}
	return text.String()
}

const ivImageChat = `{"model":"grok-4.3","stream":true,"stream_options":{"include_usage":true},"messages":[` +
	`{"role":"user","content":[{"type":"text","text":"What is in the picture?"},{"type":"image_url","image_url":{"url":"https://example.com/cat.png"}}]}]}`

// TestVisionStreamModes: stream:true with image input, to /vision/analyze
// and to /chat/completions, in each GROKGATE_VISION_STREAM mode.
func TestVisionStreamModes(t *testing.T) {
	t.Parallel()
	requests := []struct {
		name, path, body, prompt string
		includeUsage             bool
	}{
		{"vision", "/api/v1/vision/analyze", `{"image_url":"https://example.com/cat.png","prompt":"What is it?","stream":true}`, "What is it?", false},
		{"vision+usage", "/v1/vision/analyze", `{"image_url":"https://example.com/cat.png","prompt":"What is it?","stream":true,"stream_options":{"include_usage":true}}`, "What is it?", true},
		{"chat", "/api/v1/chat/completions", ivImageChat, "What is in the picture?", true},
		{"chat-no-usage", "/v1/chat/completions", strings.Replace(ivImageChat, `"stream_options":{"include_usage":true},`, "", 1), "What is in the picture?", false},
	}
	for _, mode := range []gateway.VisionStream{"", gateway.VisionStreamJSON, gateway.VisionStreamEmulate, gateway.VisionStreamNative} {
		e := newIV(t, gateway.Config{VisionStream: mode}, nil)
		for _, rq := range requests {
			name := string(mode) + "/" + rq.name
			resp, body := e.postJSON(t, rq.path, rq.body)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("%s: status %d: %s", name, resp.StatusCode, body)
			}
			up := e.lastUpstream(t, "/chat/completions")
			want := ivSimAnswer(rq.prompt)
			switch mode {
			case gateway.VisionStreamJSON:
				if resp.Header.Get("X-Stream-Fallback") != "true" || resp.Header.Get("Content-Type") != "application/json" {
					t.Fatalf("%s: headers %v", name, resp.Header)
				}
				if c := ivDecodeCompletion(t, resp, body); c.Choices[0].Message.Content != want {
					t.Fatalf("%s: %s", name, body)
				}
			case "", gateway.VisionStreamEmulate: // emulate is the default
				if resp.Header.Get("X-Stream-Fallback") != "true" || resp.Header.Get("Content-Type") != "text/event-stream" {
					t.Fatalf("%s: headers %v", name, resp.Header)
				}
				checkEmulated(t, body, want, rq.includeUsage)
			case gateway.VisionStreamNative:
				if resp.Header.Get("X-Stream-Fallback") != "" || resp.Header.Get("Content-Type") != "text/event-stream" {
					t.Fatalf("%s: headers %v", name, resp.Header)
				}
				if got := nativeText(t, body); got != want {
					t.Fatalf("%s: streamed %q, want %q", name, got, want)
				}
				if up["stream"] != true {
					t.Fatalf("%s: native mode did not stream upstream: %v", name, up["stream"])
				}
				continue
			}
			if _, ok := up["stream_options"]; ok || up["stream"] != false {
				t.Fatalf("%s: upstream body still streams: stream=%v stream_options=%v", name, up["stream"], up["stream_options"])
			}
		}
	}
}

// TestVisionStreamOpenAIGo: what the Go SDK's streaming loop receives in
// each mode: the full text in emulate (the default) and native, nothing in
// json (the documented cost of that mode).
func TestVisionStreamOpenAIGo(t *testing.T) {
	t.Parallel()
	want := ivSimAnswer("What is in the picture?")
	for _, mode := range []gateway.VisionStream{"", gateway.VisionStreamJSON, gateway.VisionStreamEmulate, gateway.VisionStreamNative} {
		e := newIV(t, gateway.Config{VisionStream: mode}, nil)
		client := openai.NewClient(option.WithBaseURL(e.gw.URL+"/api/v1"), option.WithAPIKey(ivKey),
			option.WithHTTPClient(e.gw.Client()), option.WithMaxRetries(0))
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		stream := client.Chat.Completions.NewStreaming(ctx, openai.ChatCompletionNewParams{
			Model: "grok-4.3",
			Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage([]openai.ChatCompletionContentPartUnionParam{
				openai.TextContentPart("What is in the picture?"),
				openai.ImageContentPart(openai.ChatCompletionContentPartImageImageURLParam{URL: "https://example.com/cat.png"}),
			})},
			StreamOptions: openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)},
		})
		var acc openai.ChatCompletionAccumulator
		chunks := 0
		for stream.Next() {
			if !acc.AddChunk(stream.Current()) {
				t.Fatalf("%s: accumulator refused chunk %d", mode, chunks)
			}
			chunks++
		}
		err := stream.Err()
		stream.Close()
		cancel()
		if err != nil {
			t.Fatalf("%s: stream error: %v", mode, err)
		}
		switch mode {
		case gateway.VisionStreamJSON:
			if chunks != 0 {
				t.Fatalf("json: %d chunks; the JSON answer was expected to yield none", chunks)
			}
		default:
			if len(acc.Choices) != 1 || acc.Choices[0].Message.Content != want || acc.Usage.PromptTokens == 0 {
				t.Fatalf("%s: accumulated %+v", mode, acc.ChatCompletion)
			}
		}
	}
}

// TestVisionStreamEdges: text-only streams are untouched; upstream errors
// keep their status in emulate mode; tool calls and reasoning survive the
// emulated framing.
func TestVisionStreamEdges(t *testing.T) {
	t.Parallel()
	e := newIV(t, gateway.Config{VisionStream: gateway.VisionStreamEmulate}, nil)
	resp, body := e.postJSON(t, "/api/v1/chat/completions", `{"model":"grok-4.3","stream":true,"messages":[{"role":"user","content":"Hello"}]}`)
	if resp.Header.Get("X-Stream-Fallback") != "" || nativeText(t, body) != ivSimAnswer("Hello") {
		t.Fatalf("text-only stream changed: %v %s", resp.Header, body)
	}
	if up := e.lastUpstream(t, "/chat/completions"); up["stream"] != true {
		t.Fatal("text-only request not streamed upstream")
	}

	resp, body = e.postJSON(t, "/api/v1/chat/completions", strings.Replace(ivImageChat, "What is in the picture?", `#sim{\"status\":429} x`, 1))
	ivWantError(t, resp, body, 429, "", "Simulated upstream error")
	resp, body = e.postJSON(t, "/api/v1/vision/analyze", `{"image_url":"https://example.com/a.png","prompt":"#sim{\"status\":429} x","stream":true}`)
	ivWantError(t, resp, body, 429, "", "Simulated upstream error")

	canned := newIV(t, gateway.Config{VisionStream: gateway.VisionStreamEmulate}, func(w http.ResponseWriter, r *http.Request, _ []byte) bool {
		if r.URL.Path != "/v1/chat/completions" {
			return false
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"id":"c-1","object":"chat.completion","created":1700000000,"model":"grok-4.20-0309-reasoning",` +
			`"choices":[{"index":0,"message":{"role":"assistant","content":"","reasoning_content":"Looking.","refusal":null,` +
			`"tool_calls":[{"id":"call_1","type":"function","function":{"name":"zoom","arguments":"{\"x\":1}"}}]},"finish_reason":"tool_calls"}],` +
			`"usage":{"prompt_tokens":300,"completion_tokens":5,"total_tokens":310},"system_fingerprint":"fp_x"}`))
		return true
	})
	client := openai.NewClient(option.WithBaseURL(canned.gw.URL+"/api/v1"), option.WithAPIKey(ivKey),
		option.WithHTTPClient(canned.gw.Client()), option.WithMaxRetries(0))
	stream := client.Chat.Completions.NewStreaming(context.Background(), openai.ChatCompletionNewParams{
		Model: "grok-4.20-0309-reasoning",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage([]openai.ChatCompletionContentPartUnionParam{
			openai.ImageContentPart(openai.ChatCompletionContentPartImageImageURLParam{URL: "https://example.com/cat.png"}),
		})},
	})
	var acc openai.ChatCompletionAccumulator
	for stream.Next() {
		acc.AddChunk(stream.Current())
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	calls := acc.Choices[0].Message.ToolCalls
	if acc.ID != "c-1" || acc.Choices[0].FinishReason != "tool_calls" || len(calls) != 1 ||
		calls[0].Function.Name != "zoom" || calls[0].Function.Arguments != `{"x":1}` || calls[0].ID != "call_1" {
		t.Fatalf("accumulated %+v", acc.ChatCompletion)
	}
}
