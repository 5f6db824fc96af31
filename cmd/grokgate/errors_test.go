package main

import (
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
)

// TestErrorContract walks every error a client can get before the first byte
// and checks status, envelope and message; then the server still serves.
func TestErrorContract(t *testing.T) {
	// One attempt: with retries, the jittered backoffs of a 429 or 503 could
	// outlast the short first-byte timeout the timeout cases need.
	g := startGW(t, nil, "--max-body-bytes", "4096", "--first-byte-timeout", "500ms", "--upstream-attempts", "1")
	key := g.AdminKey
	const chat = "/api/v1/chat/completions"
	cases := []struct {
		name     string
		method   string
		path     string
		key      string
		body     string
		status   int
		code     string
		contains string
	}{
		{"invalid json", "POST", chat, key, `{"model":`, 400, "invalid_json", "not valid JSON"},
		{"not an object", "POST", chat, key, `[1,2]`, 400, "invalid_request", "JSON object"},
		{"empty body", "POST", chat, key, ``, 400, "invalid_request", "empty"},
		{"model wrong type", "POST", chat, key, `{"model":5,"messages":[{"role":"user","content":"x"}]}`, 400, "invalid_type", "'model'"},
		{"messages wrong type", "POST", chat, key, `{"model":"grok-4.3","messages":"hi"}`, 400, "invalid_type", "'messages'"},
		{"stream wrong type", "POST", chat, key, `{"model":"grok-4.3","stream":"yes","messages":[{"role":"user","content":"x"}]}`, 400, "invalid_type", "'stream'"},
		{"missing model", "POST", chat, key, `{"messages":[{"role":"user","content":"x"}]}`, 400, "invalid_request", "'model'"},
		{"missing messages", "POST", chat, key, `{"model":"grok-4.3"}`, 400, "invalid_request", "'messages'"},
		{"empty messages", "POST", chat, key, `{"model":"grok-4.3","messages":[]}`, 400, "invalid_request", "at least one"},
		{"bad role", "POST", chat, key, `{"model":"grok-4.3","messages":[{"role":"robot","content":"x"}]}`, 400, "invalid_request", "messages[0].role"},
		{"missing content", "POST", chat, key, `{"model":"grok-4.3","messages":[{"role":"user"}]}`, 400, "invalid_request", "messages[0].content"},
		{"bad max_tokens", "POST", chat, key, `{"model":"grok-4.3","max_tokens":-1,"messages":[{"role":"user","content":"x"}]}`, 400, "invalid_request", "max_tokens"},
		{"wrong method", "GET", chat, key, ``, 405, "method_not_allowed", "use POST"},
		{"unknown route", "POST", "/api/v1/nope", key, `{}`, 404, "unknown_url", "/api/v1/nope"},
		{"too large", "POST", chat, key, `{"model":"grok-4.3","messages":[{"role":"user","content":"` + strings.Repeat("x", 5000) + `"}]}`, 413, "request_too_large", "4 KiB"},
		{"missing key", "POST", chat, "", `{}`, 401, "missing_api_key", "Authorization: Bearer"},
		{"invalid key", "POST", chat, "gg-" + strings.Repeat("A", 43), `{}`, 401, "invalid_api_key", "Invalid API key"},
		{"foreign key", "POST", chat, "xai-abc", `{}`, 401, "invalid_api_key", "Invalid API key"},
		{"unsupported content type", "POST", chat, key, `<xml/>`, 415, "unsupported_content_type", "application/json"},
		{"upstream 503", "POST", chat, key, chatBody(`x #sim{"status":503}`, false), 503, "", "Simulated upstream error"},
		{"upstream 503 on a stream", "POST", chat, key, chatBody(`x #sim{"status":503}`, true), 503, "", "Simulated upstream error"},
		{"upstream 429", "POST", chat, key, chatBody(`x #sim{"status":429}`, true), 429, "", "Simulated upstream error"},
		{"upstream 500 becomes 502", "POST", chat, key, chatBody(`x #sim{"status":500}`, false), 502, "", "Simulated upstream error"},
		{"unknown model", "POST", chat, key, `{"model":"grok-9","messages":[{"role":"user","content":"x"}]}`, 404, "", "grok-9"},
		{"200 with JSON error on a stream", "POST", chat, key, chatBody(`x #sim{"json_error":true}`, true), 503, "", "Timed out waiting for first token"},
		{"upstream timeout", "POST", chat, key, chatBody(`x #sim{"hang":true}`, true), 504, "upstream_timeout", "in time"},
		{"first event too slow", "POST", chat, key, chatBody(`x #sim{"ttft_ms":3000}`, true), 504, "upstream_timeout", "in time"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, g.URL+tc.path, strings.NewReader(tc.body))
			ct := "application/json"
			if tc.name == "unsupported content type" {
				ct = "application/xml"
			}
			req.Header.Set("Content-Type", ct)
			if tc.key != "" {
				req.Header.Set("Authorization", "Bearer "+tc.key)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			msg, code := readError(t, resp, tc.status)
			if tc.code != "" && code != tc.code {
				t.Errorf("code %q, want %q", code, tc.code)
			}
			if !strings.Contains(msg, tc.contains) {
				t.Errorf("message %q does not mention %q", msg, tc.contains)
			}
			if tc.status == 405 && resp.Header.Get("Allow") != "POST" {
				t.Errorf("Allow %q", resp.Header.Get("Allow"))
			}
		})
	}

	t.Run("too large without Content-Length", func(t *testing.T) {
		pr, pw := io.Pipe()
		go func() {
			io.WriteString(pw, `{"model":"grok-4.3","messages":[{"role":"user","content":"`+strings.Repeat("y", 8000)+`"}]}`)
			pw.Close()
		}()
		req, _ := http.NewRequest("POST", g.URL+chat, pr)
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		readError(t, resp, 413)
	})

	t.Run("still serving", func(t *testing.T) {
		resp := g.post(t, chat, key, chatBody("still there?", false))
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(body), `"chat.completion"`) {
			t.Fatalf("%d %s", resp.StatusCode, body)
		}
	})
}

// TestUpstreamUnreachable: nothing listens at XAI_BASE_URL, so 502.
func TestUpstreamUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	g := startGW(t, map[string]string{"XAI_API_KEY": "xai-test", "XAI_BASE_URL": "http://" + addr + "/v1"})
	for _, stream := range []bool{false, true} {
		msg, code := readError(t, g.post(t, "/api/v1/chat/completions", g.AdminKey, chatBody("x", stream)), 502)
		if code != "upstream_unreachable" || !strings.Contains(msg, "xAI") {
			t.Fatalf("code %q message %q", code, msg)
		}
	}
}

// TestUpstreamAuthFailure: xAI refusing grokgate's own key is the operator's
// problem, so the caller gets 502, not a 401 that blames its gateway key.
func TestUpstreamAuthFailure(t *testing.T) {
	sim := startSimulatorForTest(t, "xai-right")
	g := startGW(t, map[string]string{"XAI_API_KEY": "xai-wrong", "XAI_BASE_URL": sim + "/v1"})
	msg, code := readError(t, g.post(t, "/api/v1/chat/completions", g.AdminKey, chatBody("x", false)), 502)
	if code != "upstream_auth_failed" || strings.Contains(msg, "xai-wrong") {
		t.Fatalf("code %q message %q", code, msg)
	}
	g2 := startGW(t, map[string]string{"XAI_API_KEY": "xai-right", "XAI_BASE_URL": sim + "/v1"})
	resp := g2.post(t, "/api/v1/chat/completions", g2.AdminKey, chatBody("x", false))
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("right key: status %d", resp.StatusCode)
	}
}

func TestHealth(t *testing.T) {
	g := startGW(t, nil)
	for _, path := range []string{"/healthz", "/readyz"} {
		resp, err := http.Get(g.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(body), `"status"`) {
			t.Fatalf("%s: %d %s", path, resp.StatusCode, body)
		}
	}
}

// TestStreamErrorFormatSetting: GROKGATE_STREAM_ERROR_FORMAT (or its flag)
// reaches the gateway, and a bad value is refused before anything starts.
func TestStreamErrorFormatSetting(t *testing.T) {
	t.Parallel()
	if _, err := parseServe([]string{"--stream-error-format", "json"}, func(string) string { return "" }, io.Discard); err == nil ||
		!strings.Contains(err.Error(), `GROKGATE_STREAM_ERROR_FORMAT/--stream-error-format must be string or openai, got "json"`) {
		t.Fatalf("bad format accepted: %v", err)
	}
	for _, c := range []struct {
		env  map[string]string
		args []string
		want string
	}{
		{nil, nil, `data: {"error":"API error: Simulated error after 1 chunks"}`},
		{map[string]string{"GROKGATE_STREAM_ERROR_FORMAT": "openai"}, nil,
			`data: {"error":{"message":"API error: Simulated error after 1 chunks","type":"upstream_error","param":null,"code":"Internal error"}}`},
		{map[string]string{"GROKGATE_STREAM_ERROR_FORMAT": "openai"}, []string{"--stream-error-format", "string"},
			`data: {"error":"API error: Simulated error after 1 chunks"}`},
	} {
		g := startGW(t, c.env, c.args...)
		resp := g.post(t, "/api/v1/chat/completions", g.AdminKey,
			`{"model":"grok-4.3","stream":true,"messages":[{"role":"user","content":"hi #sim{\"error_after\":1}"}]}`)
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.HasSuffix(string(body), "\n\n"+c.want+"\n\n") {
			t.Fatalf("env %v args %v: stream\n%s\ndoes not end with\n%s", c.env, c.args, body, c.want)
		}
	}
}
