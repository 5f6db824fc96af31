package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/grokgate/grokgate/simulator"
)

func sdk(g *gw, key string) openai.Client {
	return openai.NewClient(option.WithBaseURL(g.URL+"/api/v1"), option.WithAPIKey(key), option.WithMaxRetries(0))
}

func userMsg(text string) openai.ChatCompletionNewParams {
	return openai.ChatCompletionNewParams{
		Model:    "grok-4.3",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage(text)},
	}
}

// TestOpenAIGoSDK drives grokgate with the official Go SDK, as an
// application would.
func TestOpenAIGoSDK(t *testing.T) {
	g := startGW(t, nil)
	client := sdk(g, g.AdminKey)
	ctx := context.Background()
	const prompt = "Tell me about gateways"
	want := strings.Join(simulator.Reply(prompt, 8), "")

	t.Run("non-streaming", func(t *testing.T) {
		params := userMsg(prompt)
		params.Model = "grok-4-1-fast-non-reasoning"
		res, err := client.Chat.Completions.New(ctx, params)
		if err != nil {
			t.Fatal(err)
		}
		if got := res.Choices[0].Message.Content; got != want {
			t.Fatalf("content %q, want %q", got, want)
		}
		if res.Model != "grok-4.3" {
			t.Fatalf("model %q: the retired alias should resolve to grok-4.3", res.Model)
		}
		if res.Usage.TotalTokens != res.Usage.PromptTokens+res.Usage.CompletionTokens+res.Usage.CompletionTokensDetails.ReasoningTokens {
			t.Fatalf("usage arithmetic: %+v", res.Usage)
		}
	})

	t.Run("streaming", func(t *testing.T) {
		stream := client.Chat.Completions.NewStreaming(ctx, userMsg(prompt))
		var acc openai.ChatCompletionAccumulator
		var b strings.Builder
		n := 0
		for stream.Next() {
			c := stream.Current()
			acc.AddChunk(c)
			if len(c.Choices) > 0 {
				b.WriteString(c.Choices[0].Delta.Content)
			}
			n++
		}
		if err := stream.Err(); err != nil {
			t.Fatalf("stream error: %v", err)
		}
		if b.String() != want || acc.Choices[0].Message.Content != want {
			t.Fatalf("streamed %q, want %q", b.String(), want)
		}
		if n != 9 { // 8 content chunks + the finish chunk; [DONE] ends the loop
			t.Fatalf("%d chunks, want 9", n)
		}
		if acc.Choices[0].FinishReason != "stop" {
			t.Fatalf("finish reason %q", acc.Choices[0].FinishReason)
		}
	})

	t.Run("the same stream on the wire", func(t *testing.T) {
		// The SDK hides [DONE]; the bytes show it, last, exactly once.
		resp := g.post(t, "/api/v1/chat/completions", g.AdminKey, chatBody(prompt, true))
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		for _, h := range [][2]string{{"Content-Type", "text/event-stream"}, {"Cache-Control", "no-cache"}, {"X-Accel-Buffering", "no"}} {
			if got := resp.Header.Get(h[0]); got != h[1] {
				t.Errorf("%s: %q, want %q", h[0], got, h[1])
			}
		}
		if !strings.HasSuffix(string(b), "\n\ndata: [DONE]\n\n") || strings.Count(string(b), "[DONE]") != 1 {
			t.Fatalf("stream does not end with one [DONE]: %q", b)
		}
	})

	t.Run("mid-stream error", func(t *testing.T) {
		stream := client.Chat.Completions.NewStreaming(ctx, userMsg(`hi #sim{"error_after":3}`))
		n := 0
		for stream.Next() {
			n++
		}
		err := stream.Err()
		if err == nil || !strings.Contains(err.Error(), "Simulated error after 3 chunks") {
			t.Fatalf("err = %v; want the upstream message", err)
		}
		if n != 3 {
			t.Fatalf("%d chunks before the error, want 3", n)
		}
	})

	t.Run("bad key", func(t *testing.T) {
		for _, key := range []string{"gg-" + strings.Repeat("x", 43), "sk-not-a-gateway-key"} {
			bad := sdk(g, key)
			_, err := bad.Chat.Completions.New(ctx, userMsg("hi"))
			var apiErr *openai.Error
			if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusUnauthorized {
				t.Fatalf("key %q: err = %v; want a 401 *openai.Error", key, err)
			}
			if apiErr.Type != "authentication_error" || apiErr.Code != "invalid_api_key" {
				t.Fatalf("type %q code %q", apiErr.Type, apiErr.Code)
			}
			if strings.Contains(apiErr.Message, key) {
				t.Fatalf("the error echoes the key: %q", apiErr.Message)
			}
		}
	})

	t.Run("models", func(t *testing.T) {
		page, err := client.Models.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, m := range page.Data {
			found = found || m.ID == "grok-4.3"
		}
		if !found {
			t.Fatalf("grok-4.3 not in %d models", len(page.Data))
		}
	})
}

// chatBody is a chat request for grok-4.3 with one user message.
func chatBody(content string, stream bool) string {
	b, _ := json.Marshal(map[string]any{"model": "grok-4.3", "stream": stream,
		"messages": []map[string]string{{"role": "user", "content": content}}})
	return string(b)
}

// readEvent reads raw SSE events ("data: ...\n\n") from an HTTP stream.
func readEvent(t *testing.T, br *bufio.Reader) string {
	t.Helper()
	var ev strings.Builder
	for {
		line, err := br.ReadString('\n')
		ev.WriteString(line)
		if err != nil {
			return ev.String()
		}
		if line == "\n" {
			return ev.String()
		}
	}
}

// TestStreamCutWithoutDone: an upstream stream that ends without [DONE] must
// end the client's stream with the error event, never a [DONE] upstream did
// not send.
func TestStreamCutWithoutDone(t *testing.T) {
	g := startGW(t, nil)
	for _, directive := range []string{`{"cut_after":2}`, `{"error_after":2}`} {
		resp := g.post(t, "/api/v1/chat/completions", g.AdminKey, chatBody("x #sim"+directive, true))
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		events := strings.Split(strings.TrimSuffix(string(body), "\n\n"), "\n\n")
		if len(events) != 3 {
			t.Fatalf("%s: %d events, want 2 chunks and an error: %q", directive, len(events), body)
		}
		last := events[2]
		if !strings.HasPrefix(last, `data: {"error":"API error: `) || strings.Contains(string(body), "[DONE]") {
			t.Fatalf("%s: last event %q", directive, last)
		}
		if strings.Contains(string(body), `"error":null`) {
			t.Fatalf("emitted error:null")
		}
	}
}

// TestClientDisconnectCancelsUpstream: a client that leaves mid-stream stops
// the upstream generation at once.
func TestClientDisconnectCancelsUpstream(t *testing.T) {
	g := startGW(t, nil)
	before := g.simStats(t)
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, g.URL+"/api/v1/chat/completions",
		strings.NewReader(`{"model":"grok-4.3","stream":true,"messages":[{"role":"user","content":"long #sim{\"chunks\":1000,\"delay_ms\":50}"}]}`))
	req.Header.Set("Authorization", "Bearer "+g.AdminKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if ev := readEvent(t, bufio.NewReader(resp.Body)); !strings.HasPrefix(ev, "data: {") {
		t.Fatalf("first event %q", ev)
	}
	cancel()
	resp.Body.Close()
	// 1000 chunks at 50 ms would take 50 s; cancellation must show in well under that.
	eventually(t, 5*time.Second, "simulator saw the stream canceled", func() bool {
		return g.simStats(t).StreamsCanceled == before.StreamsCanceled+1
	})
	if s := g.simStats(t); s.StreamsCompleted != before.StreamsCompleted {
		t.Fatalf("a stream completed: %+v", s)
	}
}

// TestClientDisconnectCancelsNonStreaming: the same for a non-streaming
// request whose answer takes long: the upstream request ends with the client.
func TestClientDisconnectCancelsNonStreaming(t *testing.T) {
	g := startGW(t, nil)
	before := g.simStats(t)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, g.URL+"/api/v1/chat/completions",
		strings.NewReader(chatBody(`slow #sim{"ttft_ms":60000}`, false)))
	req.Header.Set("Authorization", "Bearer "+g.AdminKey)
	if _, err := http.DefaultClient.Do(req); err == nil {
		t.Fatal("a 60 s answer arrived within 300 ms")
	}
	eventually(t, 5*time.Second, "simulator saw the request canceled", func() bool {
		return g.simStats(t).RequestsCanceled == before.RequestsCanceled+1
	})
}

// TestEventsAreNotBuffered proves each event reaches the client before the
// upstream sends the next: the upstream writes event i+1 only after the test
// client has received event i. Any buffering in grokgate deadlocks this.
func TestEventsAreNotBuffered(t *testing.T) {
	const n = 5
	received := make(chan int)
	upstream := httptest.NewServer(chatOnly(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		rc := http.NewResponseController(w)
		for i := 0; i < n; i++ {
			fmt.Fprintf(w, "data: {\"id\":\"x\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"%d\"}}]}\n\n", i)
			rc.Flush()
			select {
			case got := <-received:
				if got != i {
					return
				}
			case <-time.After(10 * time.Second):
				return // the client never saw event i: the gateway held it back
			case <-r.Context().Done():
				return
			}
		}
		io.WriteString(w, "data: [DONE]\n\n")
	}))
	defer upstream.Close()
	g := startGW(t, map[string]string{"XAI_API_KEY": "xai-test", "XAI_BASE_URL": upstream.URL})
	resp := g.post(t, "/api/v1/chat/completions", g.AdminKey, `{"model":"m","stream":true,"messages":[{"role":"user","content":"x"}]}`)
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	for i := 0; i < n; i++ {
		ev := readEvent(t, br)
		want := fmt.Sprintf(`"content":"%d"`, i)
		if !strings.Contains(ev, want) {
			t.Fatalf("event %d = %q", i, ev)
		}
		received <- i
	}
	if ev := readEvent(t, br); ev != "data: [DONE]\n\n" {
		t.Fatalf("last event %q", ev)
	}
}

// TestRelayEveryByteSplit: an upstream stream delivered in two writes split
// at every byte reaches the client byte for byte.
func TestRelayEveryByteSplit(t *testing.T) {
	stream := "data: {\"id\":\"a\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Ol\\u00e1\",\"role\":\"assistant\"}}]}\n\n" +
		": keep-alive\n\n" +
		"data: {\"id\":\"a\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"\\n\\n\"}}]}\r\n\r\n" +
		"data: {\"id\":\"a\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n" +
		"data: [DONE]\n\n"
	relaySplitAtEveryByte(t, stream, "/api/v1/chat/completions", `{"model":"m","stream":true,"messages":[{"role":"user","content":"x"}]}`)
}

// relaySplitAtEveryByte has an upstream send stream in two writes split at
// every byte, and checks that each request of body to path gets it back
// byte for byte.
func relaySplitAtEveryByte(t *testing.T, stream, path, body string) {
	t.Helper()
	split := make(chan int, 1)
	upstream := httptest.NewServer(chatOnly(func(w http.ResponseWriter, r *http.Request) {
		i := <-split
		w.Header().Set("Content-Type", "text/event-stream")
		rc := http.NewResponseController(w)
		io.WriteString(w, stream[:i])
		rc.Flush()
		io.WriteString(w, stream[i:])
	}))
	defer upstream.Close()
	g := startGW(t, map[string]string{"XAI_API_KEY": "xai-test", "XAI_BASE_URL": upstream.URL})
	for i := 1; i < len(stream); i++ {
		split <- i
		resp := g.post(t, path, g.AdminKey, body)
		got, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || string(got) != stream {
			t.Fatalf("split at %d: got %q (err %v)", i, got, err)
		}
	}
}
