package simulator

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"image/png"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"
)

const testKey = "xai-test-key-0123456789"

func newServer(t *testing.T, opts Options) (*Simulator, *httptest.Server) {
	t.Helper()
	sim := New(opts)
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	return sim, srv
}

func do(t *testing.T, ctx context.Context, srv *httptest.Server, method, path, key, body string) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, method, srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func post(t *testing.T, srv *httptest.Server, path, body string) *http.Response {
	t.Helper()
	return do(t, context.Background(), srv, http.MethodPost, path, testKey, body)
}

func chatBody(t *testing.T, model, prompt string, stream, includeUsage bool) string {
	t.Helper()
	req := map[string]any{
		"model": model,
		"messages": []map[string]any{
			{"role": "system", "content": "You are terse."},
			{"role": "user", "content": prompt},
		},
		"stream":        stream,
		"unknown_field": map[string]any{"kept": true}, // unknown fields are accepted
	}
	if includeUsage {
		req["stream_options"] = map[string]any{"include_usage": true}
	}
	b, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func readBody(t *testing.T, resp *http.Response) []byte {
	t.Helper()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	return b
}

// splitEvents checks SSE framing strictly: only "data: ...\n\n" events.
func splitEvents(t *testing.T, body []byte) []string {
	t.Helper()
	s := string(body)
	if s != "" && !strings.HasSuffix(s, "\n\n") {
		t.Fatalf("body does not end with a blank line: %q", s)
	}
	var out []string
	for _, ev := range strings.Split(strings.TrimSuffix(s, "\n\n"), "\n\n") {
		if ev == "" {
			continue
		}
		data, ok := strings.CutPrefix(ev, "data: ")
		if !ok || strings.Contains(data, "\n") {
			t.Fatalf("malformed event %q", ev)
		}
		out = append(out, data)
	}
	return out
}

type testChunk struct {
	ID                string `json:"id"`
	Object            string `json:"object"`
	Created           int64  `json:"created"`
	Model             string `json:"model"`
	SystemFingerprint string `json:"system_fingerprint"`
	Choices           []struct {
		Index int `json:"index"`
		Delta struct {
			Role             string  `json:"role"`
			Content          *string `json:"content"`
			ReasoningContent *string `json:"reasoning_content"`
		} `json:"delta"`
		FinishReason *string `json:"finish_reason"`
	} `json:"choices"`
	Usage *Usage `json:"usage"`
}

type streamResult struct {
	chunks    []testChunk
	raw       []string
	content   string
	reasoning string
	finish    string
	usage     *Usage
}

// parseStream checks the invariants every successful stream must hold and
// returns what it carried.
func parseStream(t *testing.T, resp *http.Response) streamResult {
	t.Helper()
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, readBody(t, resp))
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("Content-Type = %q", ct)
	}
	events := splitEvents(t, readBody(t, resp))
	if len(events) < 3 || events[len(events)-1] != "[DONE]" {
		t.Fatalf("stream does not end with [DONE]: %q", events)
	}
	var res streamResult
	res.raw = events[:len(events)-1]
	for i, ev := range res.raw {
		var c testChunk
		if err := json.Unmarshal([]byte(ev), &c); err != nil {
			t.Fatalf("event %d: %v: %s", i, err, ev)
		}
		if strings.Contains(ev, `"error"`) {
			t.Fatalf("event %d has an error key: %s", i, ev)
		}
		if c.ID == "" || c.ID != res.firstID() && len(res.chunks) > 0 {
			t.Fatalf("event %d: id %q changed", i, c.ID)
		}
		if c.Object != "chat.completion.chunk" || c.Created == 0 || c.Model == "" || c.SystemFingerprint == "" {
			t.Fatalf("event %d: bad envelope: %s", i, ev)
		}
		if c.Choices == nil {
			t.Fatalf("event %d: no choices array: %s", i, ev)
		}
		if i == 0 && (len(c.Choices) != 1 || c.Choices[0].Delta.Role != "assistant") {
			t.Fatalf("first delta lacks role: %s", ev)
		}
		if i > 0 && len(c.Choices) > 0 && c.Choices[0].Delta.Role != "" {
			t.Fatalf("event %d repeats the role: %s", i, ev)
		}
		if c.Usage != nil {
			if res.usage != nil || len(c.Choices) != 0 || i != len(res.raw)-1 {
				t.Fatalf("usage chunk misplaced: %s", ev)
			}
			res.usage = c.Usage
		}
		for _, ch := range c.Choices {
			if ch.Delta.Content != nil {
				if res.finish != "" {
					t.Fatalf("content after finish: %s", ev)
				}
				res.content += *ch.Delta.Content
			}
			if ch.Delta.ReasoningContent != nil {
				if res.content != "" {
					t.Fatalf("reasoning after content: %s", ev)
				}
				res.reasoning += *ch.Delta.ReasoningContent
			}
			if ch.FinishReason != nil {
				if !strings.Contains(ev, `"delta":{},"finish_reason"`) {
					t.Fatalf("finish chunk carries a delta: %s", ev)
				}
				res.finish = *ch.FinishReason
			}
		}
		res.chunks = append(res.chunks, c)
	}
	if res.finish == "" {
		t.Fatal("no finish chunk")
	}
	return res
}

func (r streamResult) firstID() string {
	if len(r.chunks) == 0 {
		return ""
	}
	return r.chunks[0].ID
}

func checkUsageArithmetic(t *testing.T, u Usage) {
	t.Helper()
	if u.TotalTokens != u.PromptTokens+u.CompletionTokens+u.CompletionTokensDetails.ReasoningTokens {
		t.Fatalf("total %d != prompt %d + completion %d + reasoning %d", u.TotalTokens, u.PromptTokens,
			u.CompletionTokens, u.CompletionTokensDetails.ReasoningTokens)
	}
	if u.PromptTokens != u.PromptTokensDetails.TextTokens+u.PromptTokensDetails.ImageTokens {
		t.Fatalf("prompt tokens %d != text + image: %+v", u.PromptTokens, u.PromptTokensDetails)
	}
	if u.CostInUSDTicks <= 0 {
		t.Fatalf("cost %d", u.CostInUSDTicks)
	}
}

func TestStreamShape(t *testing.T) {
	t.Parallel()
	_, srv := newServer(t, Options{APIKey: testKey})
	const prompt = "Tell me about gateways"

	t.Run("include_usage", func(t *testing.T) {
		body := chatBody(t, "grok-4.3", prompt+"  ", true, true)
		res := parseStream(t, post(t, srv, "/v1/chat/completions", body))
		if res.content != strings.Join(Reply(prompt, 8), "") {
			t.Fatalf("content %q", res.content)
		}
		if res.reasoning != "" || res.finish != "stop" || len(res.chunks) != 8+2 {
			t.Fatalf("reasoning %q finish %q chunks %d", res.reasoning, res.finish, len(res.chunks))
		}
		for _, c := range res.chunks {
			if c.Model != "grok-4.3" {
				t.Fatalf("model %q", c.Model)
			}
		}
		if res.usage == nil {
			t.Fatal("no usage chunk")
		}
		if !strings.Contains(res.raw[len(res.raw)-1], `"choices":[]`) {
			t.Fatalf("usage chunk: %s", res.raw[len(res.raw)-1])
		}
		checkUsageArithmetic(t, *res.usage)
		want, err := ExpectedUsage([]byte(body))
		if err != nil || *res.usage != want {
			t.Fatalf("usage %+v, want %+v (%v)", *res.usage, want, err)
		}
		if res.usage.CompletionTokens != 8 {
			t.Fatalf("completion tokens %d", res.usage.CompletionTokens)
		}
	})

	t.Run("no include_usage", func(t *testing.T) {
		res := parseStream(t, post(t, srv, "/v1/chat/completions", chatBody(t, "grok-4.3", prompt, true, false)))
		if res.usage != nil {
			t.Fatal("usage without include_usage")
		}
		for _, ev := range res.raw {
			if strings.Contains(ev, `"usage"`) {
				t.Fatalf("usage key in %s", ev)
			}
		}
		if !strings.HasPrefix(res.raw[0], `{"id":`) || !strings.Contains(res.raw[0], `"delta":{"content":`) {
			t.Fatalf("first chunk: %s", res.raw[0])
		}
	})

	t.Run("reasoning alias", func(t *testing.T) {
		body := chatBody(t, "grok-4-fast-reasoning", prompt, true, true)
		res := parseStream(t, post(t, srv, "/v1/chat/completions", body))
		if res.chunks[0].Model != "grok-4.20-0309-reasoning" {
			t.Fatalf("model %q", res.chunks[0].Model)
		}
		if res.chunks[0].Choices[0].Delta.ReasoningContent == nil {
			t.Fatal("first delta is not reasoning")
		}
		if res.reasoning == "" || res.content != strings.Join(Reply(prompt, 8), "") {
			t.Fatalf("reasoning %q content %q", res.reasoning, res.content)
		}
		if got := res.usage.CompletionTokensDetails.ReasoningTokens; got != 2 {
			t.Fatalf("reasoning tokens %d", got)
		}
		checkUsageArithmetic(t, *res.usage)
	})
}

type testCompletion struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Created int64  `json:"created"`
	Model   string `json:"model"`
	Choices []struct {
		Index   int `json:"index"`
		Message struct {
			Role    string          `json:"role"`
			Content string          `json:"content"`
			Refusal json.RawMessage `json:"refusal"`
		} `json:"message"`
		FinishReason string `json:"finish_reason"`
	} `json:"choices"`
	Usage             Usage  `json:"usage"`
	SystemFingerprint string `json:"system_fingerprint"`
}

func decodeCompletion(t *testing.T, resp *http.Response) testCompletion {
	t.Helper()
	b := readBody(t, resp)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, b)
	}
	var c testCompletion
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatalf("%v: %s", err, b)
	}
	return c
}

func TestNonStreaming(t *testing.T) {
	t.Parallel()
	fixed := time.Unix(1773345550, 0)
	_, srv := newServer(t, Options{Now: func() time.Time { return fixed }})
	const prompt = "What is the capital of France?"
	body := chatBody(t, "grok-4.20-0309-non-reasoning", prompt, false, false)
	resp := post(t, srv, "/v1/chat/completions", body)
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type %q", ct)
	}
	c := decodeCompletion(t, resp)
	if c.ID == "" || c.Object != "chat.completion" || c.Created != fixed.Unix() ||
		c.Model != "grok-4.20-0309-non-reasoning" || c.SystemFingerprint == "" || len(c.Choices) != 1 {
		t.Fatalf("envelope %+v", c)
	}
	ch := c.Choices[0]
	if ch.Message.Role != "assistant" || string(ch.Message.Refusal) != "null" || ch.FinishReason != "stop" {
		t.Fatalf("choice %+v", ch)
	}
	if ch.Message.Content != strings.Join(Reply(prompt, 8), "") {
		t.Fatalf("content %q", ch.Message.Content)
	}
	checkUsageArithmetic(t, c.Usage)
	if want, _ := ExpectedUsage([]byte(body)); c.Usage != want {
		t.Fatalf("usage %+v want %+v", c.Usage, want)
	}
	// Two messages: 3 overhead each + ceil(14/4) + ceil(30/4).
	if c.Usage.PromptTokens != 3+4+3+8 {
		t.Fatalf("prompt tokens %d", c.Usage.PromptTokens)
	}
}

func TestAliases(t *testing.T) {
	t.Parallel()
	_, srv := newServer(t, Options{})
	for asked, want := range map[string]string{
		"grok-4-1-fast-reasoning":      "grok-4.3",
		"grok-4-1-fast-non-reasoning":  "grok-4.3",
		"grok-4-fast-reasoning":        "grok-4.20-0309-reasoning",
		"grok-4-fast-non-reasoning":    "grok-4.20-0309-non-reasoning",
		"grok-4-0709":                  "grok-4.20-0309-reasoning",
		"grok-code-fast-1":             "grok-code-fast-1",
		"grok-3":                       "grok-3",
		"grok-3-mini":                  "grok-3-mini",
		"grok-4.6":                     "grok-4.6",
		"grok-4.20-0309-non-reasoning": "grok-4.20-0309-non-reasoning",
	} {
		c := decodeCompletion(t, post(t, srv, "/v1/chat/completions", chatBody(t, asked, "hi", false, false)))
		if c.Model != want {
			t.Errorf("%s resolved to %s, want %s", asked, c.Model, want)
		}
		if got, ok := ResolveModel(asked); !ok || got != want {
			t.Errorf("ResolveModel(%s) = %s, %v", asked, got, ok)
		}
	}
}

func imageChatBody(model string) string {
	return `{"model":"` + model + `","messages":[{"role":"user","content":[{"type":"text","text":"What is in this picture?"},` +
		`{"type":"image_url","image_url":{"url":"data:image/png;base64,iVBORw0KGgo=","detail":"high"}}]}]}`
}

func TestErrors(t *testing.T) {
	t.Parallel()
	_, srv := newServer(t, Options{APIKey: testKey})
	okBody := chatBody(t, "grok-4.3", "hi", false, false)
	cases := []struct {
		name, method, path, auth, body string
		status                         int
		code, msgHas                   string
	}{
		{"no auth", "POST", "/v1/chat/completions", "", okBody, 401, "The request does not have valid authentication credentials", "API key"},
		{"malformed auth", "POST", "/v1/chat/completions", "Basic abc", okBody, 401, "", ""},
		{"empty bearer", "POST", "/v1/chat/completions", "Bearer ", okBody, 401, "", ""},
		{"wrong key", "POST", "/v1/chat/completions", "Bearer xai-wrong-secret-key-yz", okBody, 400,
			"Client specified an invalid argument", "Incorrect API key provided: xa***yz. You can obtain an API key from https://console.x.ai."},
		{"unknown model", "POST", "/v1/chat/completions", "", `{"model":"grok-9","messages":[{"role":"user","content":"x"}]}`, 404,
			"Some requested entity was not found", "The model grok-9 does not exist or your team "},
		{"empty messages", "POST", "/v1/chat/completions", "", `{"model":"grok-4.3","messages":[]}`, 400, "Client specified an invalid argument", "essages"},
		{"missing messages", "POST", "/v1/chat/completions", "", `{"model":"grok-4.3"}`, 400, "Client specified an invalid argument", ""},
		{"search_parameters", "POST", "/v1/chat/completions", "", `{"model":"grok-4.3","messages":[{"role":"user","content":"x"}],"search_parameters":{"mode":"auto"}}`, 410, "", "search"},
		{"image to grok-3", "POST", "/v1/chat/completions", "", imageChatBody("grok-3"), 400, "Client specified an invalid argument", "Image"},
		{"image to grok-code-fast-1", "POST", "/v1/chat/completions", "", imageChatBody("grok-code-fast-1"), 400, "", "Image"},
		{"image to grok-3-mini", "POST", "/v1/chat/completions", "", imageChatBody("grok-3-mini"), 400, "", "Image"},
		{"zero max tokens", "POST", "/v1/chat/completions", "", `{"model":"grok-4.3","messages":[{"role":"user","content":"x"}],"max_completion_tokens":0}`, 400, "", ""},
		{"unknown path", "GET", "/v1/nope", "", "", 404, "Some requested entity was not found", ""},
		{"wrong method", "GET", "/v1/chat/completions", "", "", 405, "", ""},
		{"wrong method models", "POST", "/v1/models", "", "", 405, "", ""},
		{"models need auth", "GET", "/v1/models", "", "", 401, "", ""},
		{"image model unknown", "POST", "/v1/images/generations", "", `{"prompt":"x","model":"grok-2-image"}`, 404, "", "grok-2-image"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, srv.URL+tc.path, strings.NewReader(tc.body))
			switch {
			case tc.auth != "":
				req.Header.Set("Authorization", tc.auth)
			case !strings.HasPrefix(tc.name, "no auth") && tc.name != "models need auth":
				req.Header.Set("Authorization", "Bearer "+testKey)
			}
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b := readBody(t, resp)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.status, b)
			}
			var e map[string]any
			if err := json.Unmarshal(b, &e); err != nil || len(e) != 2 {
				t.Fatalf("not a flat xAI error body: %s", b)
			}
			code, _ := e["code"].(string)
			msg, _ := e["error"].(string)
			if code == "" || msg == "" || (tc.code != "" && code != tc.code) || !strings.Contains(msg, tc.msgHas) {
				t.Fatalf("body %s", b)
			}
			if strings.Contains(string(b), "wrong-secret") {
				t.Fatalf("key echoed: %s", b)
			}
		})
	}

	t.Run("invalid json", func(t *testing.T) {
		for _, body := range []string{`{"model":`, `[1,2]`, `{"model":"grok-4.3","messages":[{"role":"user","content":42}]}`} {
			resp := post(t, srv, "/v1/chat/completions", body)
			b := readBody(t, resp)
			if resp.StatusCode != 422 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") || json.Valid(b) {
				t.Fatalf("%s: status %d %q: %s", body, resp.StatusCode, resp.Header.Get("Content-Type"), b)
			}
		}
	})

	t.Run("any key without APIKey", func(t *testing.T) {
		_, open := newServer(t, Options{})
		resp := do(t, context.Background(), open, "POST", "/v1/chat/completions", "anything", okBody)
		if resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
	})
}

func TestVisionChat(t *testing.T) {
	t.Parallel()
	_, srv := newServer(t, Options{})
	body := imageChatBody("grok-4.3")
	c := decodeCompletion(t, post(t, srv, "/v1/chat/completions", body))
	if c.Choices[0].Message.Content != strings.Join(Reply("What is in this picture?", 8), "") {
		t.Fatalf("content %q", c.Choices[0].Message.Content)
	}
	if c.Usage.PromptTokensDetails.ImageTokens != 256 || c.Usage.PromptTokens != 256+3+6 {
		t.Fatalf("usage %+v", c.Usage)
	}
	checkUsageArithmetic(t, c.Usage)
}

func TestDirectiveStatus(t *testing.T) {
	t.Parallel()
	_, srv := newServer(t, Options{})
	for _, stream := range []bool{false, true} {
		resp := post(t, srv, "/v1/chat/completions",
			chatBody(t, "grok-4.3", `hi #sim{"status":503,"retry_after":7}`, stream, true))
		b := readBody(t, resp)
		if resp.StatusCode != 503 || resp.Header.Get("Retry-After") != "7" {
			t.Fatalf("status %d retry-after %q", resp.StatusCode, resp.Header.Get("Retry-After"))
		}
		want := `{"code":"The service is currently unavailable","error":"Simulated upstream error (status 503)"}`
		if string(b) != want {
			t.Fatalf("body %s", b)
		}
	}
	resp := post(t, srv, "/v1/chat/completions", chatBody(t, "grok-4.3", `#sim{"status":429}`, false, false))
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") != "" {
		t.Fatalf("status %d", resp.StatusCode)
	}
}

func TestDirectiveErrorAfter(t *testing.T) {
	t.Parallel()
	sim, srv := newServer(t, Options{})
	resp := post(t, srv, "/v1/chat/completions", chatBody(t, "grok-4.3", `#sim{"error_after":3} go`, true, true))
	events := splitEvents(t, readBody(t, resp))
	if len(events) != 4 {
		t.Fatalf("events %q", events)
	}
	if events[3] != `{"code":"Internal error","error":"Simulated error after 3 chunks"}` {
		t.Fatalf("error event %s", events[3])
	}
	for _, ev := range events[:3] {
		if !strings.Contains(ev, `"content"`) {
			t.Fatalf("not content: %s", ev)
		}
	}
	if st := sim.Stats(); st.StreamsStarted != 1 || st.StreamsCompleted != 0 || st.StreamsCanceled != 0 {
		t.Fatalf("stats %+v", st)
	}
	resp = post(t, srv, "/v1/chat/completions", chatBody(t, "grok-4.3", `#sim{"error_after":3} go`, false, false))
	if b := readBody(t, resp); resp.StatusCode != 500 || !strings.Contains(string(b), "Simulated error after 3 chunks") {
		t.Fatalf("non-stream: %d %s", resp.StatusCode, b)
	}
}

func TestDirectiveCutAfter(t *testing.T) {
	t.Parallel()
	_, srv := newServer(t, Options{})
	resp := post(t, srv, "/v1/chat/completions", chatBody(t, "grok-4.3", `#sim{"cut_after":2}`, true, true))
	b, err := io.ReadAll(resp.Body)
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("err = %v, want unexpected EOF", err)
	}
	events := splitEvents(t, b)
	if len(events) != 2 || strings.Contains(string(b), "[DONE]") || strings.Contains(string(b), "finish_reason") {
		t.Fatalf("events %q", events)
	}
	// Non-streaming: the connection drops before any response.
	req, _ := http.NewRequest("POST", srv.URL+"/v1/chat/completions",
		strings.NewReader(chatBody(t, "grok-4.3", `#sim{"cut_after":2}`, false, false)))
	req.Header.Set("Authorization", "Bearer k")
	if resp, err := srv.Client().Do(req); err == nil {
		resp.Body.Close()
		t.Fatalf("non-stream cut answered %d", resp.StatusCode)
	}
}

func waitStats(t *testing.T, sim *Simulator, ok func(Stats) bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !ok(sim.Stats()) {
		if time.Now().After(deadline) {
			t.Fatalf("stats never matched: %+v", sim.Stats())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestDirectiveHang(t *testing.T) {
	t.Parallel()
	sim, srv := newServer(t, Options{})
	for _, stream := range []bool{true, false} {
		ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
		req, _ := http.NewRequestWithContext(ctx, "POST", srv.URL+"/v1/chat/completions",
			strings.NewReader(chatBody(t, "grok-4.3", `#sim{"hang":true}`, stream, false)))
		req.Header.Set("Authorization", "Bearer k")
		resp, err := srv.Client().Do(req)
		cancel()
		if err == nil {
			resp.Body.Close()
			t.Fatalf("hang answered %d", resp.StatusCode)
		}
	}
	waitStats(t, sim, func(s Stats) bool { return s.StreamsCanceled == 1 })
	if st := sim.Stats(); st.StreamsStarted != 1 || st.StreamsCompleted != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestDirectiveJSONError(t *testing.T) {
	t.Parallel()
	_, srv := newServer(t, Options{})
	resp := post(t, srv, "/v1/chat/completions", chatBody(t, "grok-4.3", `#sim{"json_error":true}`, true, true))
	b := readBody(t, resp)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" ||
		string(b) != `{"code":"The service is currently unavailable","error":"Timed out waiting for first token"}` {
		t.Fatalf("%d %q %s", resp.StatusCode, resp.Header.Get("Content-Type"), b)
	}
}

func TestDirectiveTiming(t *testing.T) {
	t.Parallel()
	sim, srv := newServer(t, Options{})

	// Headers come at once even with a long ttft; leaving during it cancels the stream.
	ctx, cancel := context.WithCancel(context.Background())
	resp := do(t, ctx, srv, "POST", "/v1/chat/completions", "k",
		chatBody(t, "grok-4.3", `#sim{"ttft_ms":600000}`, true, false))
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("status %d", resp.StatusCode)
	}
	cancel()
	waitStats(t, sim, func(s Stats) bool { return s.StreamsCanceled == 1 })

	const ttft, delay = 120 * time.Millisecond, 40 * time.Millisecond
	body := chatBody(t, "grok-4.3", `#sim{"ttft_ms":120,"delay_ms":40,"chunks":4}`, true, false)
	start := time.Now()
	resp = post(t, srv, "/v1/chat/completions", body)
	buf := make([]byte, 1)
	if _, err := io.ReadFull(resp.Body, buf); err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el < ttft {
		t.Fatalf("first byte after %v, want >= %v", el, ttft)
	}
	rest := readBody(t, resp)
	if el := time.Since(start); el < ttft+3*delay {
		t.Fatalf("stream took %v, want >= %v", el, ttft+3*delay)
	}
	if n := strings.Count(string(rest), `"content"`); n != 4 {
		t.Fatalf("%d content chunks", n)
	}

	start = time.Now()
	decodeCompletion(t, post(t, srv, "/v1/chat/completions",
		chatBody(t, "grok-4.3", `#sim{"ttft_ms":120,"delay_ms":40,"chunks":4}`, false, false)))
	if el := time.Since(start); el < ttft+3*delay {
		t.Fatalf("non-stream took %v", el)
	}
}

func TestDirectiveShaping(t *testing.T) {
	t.Parallel()
	_, srv := newServer(t, Options{})

	t.Run("chunks and cached", func(t *testing.T) {
		body := chatBody(t, "grok-4.3", `Hello  #sim{"chunks":3,"cached_tokens":5,"unknown":{"x":"}"}} there`, true, true)
		res := parseStream(t, post(t, srv, "/v1/chat/completions", body))
		if res.content != strings.Join(Reply("Hello   there", 3), "") || res.usage.CompletionTokens != 3 {
			t.Fatalf("content %q usage %+v", res.content, res.usage)
		}
		if res.usage.PromptTokensDetails.CachedTokens != 5 {
			t.Fatalf("cached %+v", res.usage.PromptTokensDetails)
		}
		checkUsageArithmetic(t, *res.usage)
	})

	t.Run("max tokens", func(t *testing.T) {
		for _, field := range []string{"max_completion_tokens", "max_tokens"} {
			body := `{"model":"grok-4.3","messages":[{"role":"user","content":"long answer please"}],"` + field + `":5}`
			c := decodeCompletion(t, post(t, srv, "/v1/chat/completions", body))
			if c.Choices[0].FinishReason != "length" || c.Usage.CompletionTokens != 5 ||
				c.Choices[0].Message.Content != strings.Join(Reply("long answer please", 8)[:5], "") {
				t.Fatalf("%s: %+v", field, c)
			}
		}
		body := `{"model":"grok-4.3","messages":[{"role":"user","content":"x"}],"max_tokens":5,"stream":true}`
		if res := parseStream(t, post(t, srv, "/v1/chat/completions", body)); res.finish != "length" {
			t.Fatalf("finish %q", res.finish)
		}
	})

	t.Run("reasoning chunks", func(t *testing.T) {
		body := chatBody(t, "grok-4.20-0309-reasoning", `#sim{"reasoning_chunks":5,"chunks":1}`, true, true)
		res := parseStream(t, post(t, srv, "/v1/chat/completions", body))
		if len(res.chunks) != 5+1+2 || res.usage.CompletionTokensDetails.ReasoningTokens != 5 ||
			res.usage.TotalTokens != res.usage.PromptTokens+1+5 {
			t.Fatalf("chunks %d usage %+v", len(res.chunks), res.usage)
		}
	})

	t.Run("zero chunks", func(t *testing.T) {
		res := parseStream(t, post(t, srv, "/v1/chat/completions", chatBody(t, "grok-4.3", `#sim{"chunks":0}`, true, false)))
		if res.content != "" || len(res.chunks) != 2 {
			t.Fatalf("%+v", res)
		}
	})

	t.Run("malformed is text", func(t *testing.T) {
		for _, p := range []string{`hi #sim{"chunks":`, `#sim{"chunks":"3"}`, `#sim{chunks:3}`} {
			c := decodeCompletion(t, post(t, srv, "/v1/chat/completions", chatBody(t, "grok-4.3", p, false, false)))
			if c.Choices[0].Message.Content != strings.Join(Reply(p, 8), "") {
				t.Fatalf("%s: content %q", p, c.Choices[0].Message.Content)
			}
		}
	})

	t.Run("last user message and parts", func(t *testing.T) {
		body := `{"model":"grok-4.3","messages":[{"role":"user","content":"#sim{\"status\":500}"},` +
			`{"role":"assistant","content":"ok"},{"role":"user","content":[{"type":"text","text":"a #sim{\"chunks\":2}"},{"type":"text","text":"b"}]}]}`
		c := decodeCompletion(t, post(t, srv, "/v1/chat/completions", body))
		if c.Choices[0].Message.Content != strings.Join(Reply("a \nb", 2), "") {
			t.Fatalf("content %q", c.Choices[0].Message.Content)
		}
	})
}

func TestCostArithmetic(t *testing.T) {
	t.Parallel()
	// docs/wire-format.md's recorded usage at grok-4-fast prices (= grok-4.3 here).
	m, _ := findChatModel(chatModels(), "grok-4.3")
	if got := int64(165-164)*m.promptPrice + 164*m.cachedPrice + (2+129)*m.outputPrice; got != 739000 {
		t.Fatalf("cost %d", got)
	}
	u, err := ExpectedUsage([]byte(`{"model":"grok-4.3","messages":[{"role":"user","content":"abcdefgh #sim{\"chunks\":2,\"cached_tokens\":4}"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	// text: 3 + ceil(44/4) = 14; cost (14-4)*2000 + 4*500 + 2*5000.
	if u.PromptTokens != 14 || u.CostInUSDTicks != 10*2000+4*500+2*5000 {
		t.Fatalf("%+v", u)
	}
	if _, err := ExpectedUsage([]byte(`{"model":"nope","messages":[]}`)); err == nil {
		t.Fatal("no error for an unknown model")
	}
}

func TestModelsEndpoints(t *testing.T) {
	t.Parallel()
	_, srv := newServer(t, Options{})
	get := func(path string, v any) {
		t.Helper()
		resp := do(t, context.Background(), srv, "GET", path, "k", "")
		b := readBody(t, resp)
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d %s", path, resp.StatusCode, b)
		}
		if err := json.Unmarshal(b, v); err != nil {
			t.Fatal(err)
		}
	}
	var list struct {
		Object string `json:"object"`
		Data   []struct {
			ID, Object, OwnedBy string
			Created             int64
		} `json:"data"`
	}
	get("/v1/models", &list)
	if list.Object != "list" || len(list.Data) != 11 || list.Data[0].ID != "grok-4.3" || list.Data[0].Object != "model" {
		t.Fatalf("%+v", list)
	}
	type lm struct {
		ID               string   `json:"id"`
		Aliases          []string `json:"aliases"`
		InputModalities  []string `json:"input_modalities"`
		OutputModalities []string `json:"output_modalities"`
		PromptPrice      int64    `json:"prompt_text_token_price"`
		CompletionPrice  int64    `json:"completion_text_token_price"`
		ImagePrice       int64    `json:"image_price"`
	}
	var langs struct{ Models []lm }
	get("/v1/language-models", &langs)
	inputs := map[string][]string{}
	for _, m := range langs.Models {
		inputs[m.ID] = m.InputModalities
		if m.PromptPrice <= 0 || m.CompletionPrice <= 0 || !reflect.DeepEqual(m.OutputModalities, []string{"text"}) {
			t.Fatalf("%+v", m)
		}
	}
	if len(inputs) != 8 || len(inputs["grok-4.6"]) != 2 || len(inputs["grok-3"]) != 1 || len(inputs["grok-code-fast-1"]) != 1 {
		t.Fatalf("%v", inputs)
	}
	var imgs struct{ Models []lm }
	get("/v1/image-generation-models", &imgs)
	if len(imgs.Models) != 3 || imgs.Models[0].OutputModalities[0] != "image" || imgs.Models[0].ImagePrice <= 0 {
		t.Fatalf("%+v", imgs)
	}
	var one lm
	get("/v1/language-models/grok-4-1-fast-reasoning", &one)
	if one.ID != "grok-4.3" || len(one.Aliases) != 2 {
		t.Fatalf("%+v", one)
	}
}

type testImages struct {
	Data  []map[string]any `json:"data"`
	Usage struct {
		Cost int64 `json:"cost_in_usd_ticks"`
	} `json:"usage"`
}

func generate(t *testing.T, srv *httptest.Server, body string) testImages {
	t.Helper()
	resp := post(t, srv, "/v1/images/generations", body)
	b := readBody(t, resp)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, b)
	}
	var out testImages
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestImages(t *testing.T) {
	t.Parallel()
	sim, srv := newServer(t, Options{})

	t.Run("url", func(t *testing.T) {
		out := generate(t, srv, `{"prompt":"a red fox","n":3,"aspect_ratio":"16:9"}`)
		if len(out.Data) != 3 || out.Usage.Cost != 3*200_000_000 {
			t.Fatalf("%+v", out)
		}
		seen := map[string]bool{}
		for _, item := range out.Data {
			url, _ := item["url"].(string)
			if !strings.HasPrefix(url, srv.URL+"/sim/images/") || item["mime_type"] != "image/png" ||
				item["revised_prompt"] != "" || seen[url] {
				t.Fatalf("%v", item)
			}
			if _, ok := item["b64_json"]; ok {
				t.Fatalf("b64_json with url format: %v", item)
			}
			seen[url] = true
			resp, err := http.Get(url)
			if err != nil {
				t.Fatal(err)
			}
			img, err := png.Decode(resp.Body)
			resp.Body.Close()
			if err != nil || resp.Header.Get("Content-Type") != "image/png" {
				t.Fatalf("decode: %v", err)
			}
			if b := img.Bounds(); b.Dx() != 64 || b.Dy() != 36 {
				t.Fatalf("bounds %v", b)
			}
		}
	})

	t.Run("b64_json", func(t *testing.T) {
		out := generate(t, srv, `{"prompt":"a fox","model":"grok-imagine-image-quality","response_format":"b64_json","resolution":"2k","aspect_ratio":"2:3"}`)
		s, _ := out.Data[0]["b64_json"].(string)
		raw, err := base64.StdEncoding.DecodeString(s)
		if err != nil || strings.HasPrefix(s, "data:") {
			t.Fatalf("b64: %v", err)
		}
		img, err := png.Decode(bytes.NewReader(raw))
		if err != nil {
			t.Fatal(err)
		}
		if b := img.Bounds(); b.Dx() != 85 || b.Dy() != 128 {
			t.Fatalf("bounds %v", b)
		}
		if out.Usage.Cost != 2*700_000_000 {
			t.Fatalf("cost %d", out.Usage.Cost)
		}
		again := generate(t, srv, `{"prompt":"a fox","model":"grok-imagine-image-quality","response_format":"b64_json","resolution":"2k","aspect_ratio":"2:3"}`)
		if again.Data[0]["b64_json"] != s {
			t.Fatal("image not deterministic")
		}
	})

	t.Run("moderation", func(t *testing.T) {
		before := sim.Stats().ImagesGenerated
		out := generate(t, srv, `{"prompt":"#sim{\"moderate\":true} bad","n":2}`)
		for _, item := range out.Data {
			if v, ok := item["url"]; !ok || v != nil || item["respect_moderation"] != false {
				t.Fatalf("%v", item)
			}
		}
		if sim.Stats().ImagesGenerated != before {
			t.Fatal("moderated images counted")
		}
	})

	t.Run("errors", func(t *testing.T) {
		for body, status := range map[string]int{
			`{"prompt":"x","n":11}`:                  400,
			`{"prompt":"x","n":0}`:                   400,
			`{"n":1}`:                                400,
			`{"prompt":"x","response_format":"gif"}`: 400,
			`{"prompt":"x","aspect_ratio":"5:1"}`:    400,
			`{"prompt":"x","resolution":"4k"}`:       400,
			`{"prompt":"x","size":"1024x1024"}`:      400,
			`{"prompt":"x","model":"grok-4.3"}`:      404,
			`{"prompt":"#sim{\"status\":503} x"}`:    503,
			`{"prompt":`:                             422,
		} {
			resp := post(t, srv, "/v1/images/generations", body)
			if resp.StatusCode != status {
				t.Fatalf("%s: %d", body, resp.StatusCode)
			}
		}
		resp := do(t, context.Background(), srv, "GET", "/sim/images/nope.png", "", "")
		if resp.StatusCode != 404 {
			t.Fatalf("missing image %d", resp.StatusCode)
		}
	})
}

func TestStats(t *testing.T) {
	t.Parallel()
	_, srv := newServer(t, Options{})
	decodeCompletion(t, post(t, srv, "/v1/chat/completions", chatBody(t, "grok-4.3", "a", false, false)))
	parseStream(t, post(t, srv, "/v1/chat/completions", chatBody(t, "grok-4.3", "b", true, false)))
	generate(t, srv, `{"prompt":"c","n":2,"response_format":"b64_json"}`)
	resp := do(t, context.Background(), srv, "GET", "/sim/stats", "", "")
	b := readBody(t, resp)
	want := `{"requests":3,"streams_started":1,"streams_completed":1,"streams_canceled":0,"requests_canceled":0,"images_generated":2}`
	if resp.StatusCode != 200 || string(b) != want {
		t.Fatalf("%d %s", resp.StatusCode, b)
	}
}

func TestReply(t *testing.T) {
	t.Parallel()
	a, b := Reply("x", 5), Reply("x", 5)
	if !reflect.DeepEqual(a, b) || len(a) != 5 || reflect.DeepEqual(a, Reply("y", 5)) {
		t.Fatalf("%q %q", a, Reply("y", 5))
	}
	if strings.HasPrefix(a[0], " ") || !strings.HasPrefix(a[1], " ") || !strings.HasSuffix(a[4], ".") {
		t.Fatalf("%q", a)
	}
	if len(Reply("x", 0)) != 0 {
		t.Fatal("chunks 0")
	}
}
