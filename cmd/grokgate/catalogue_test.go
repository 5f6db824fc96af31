package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestBadInputCatalogue sends hostile and malformed requests, each with its
// documented status and a message that says what to fix; after all of them
// the server still answers a good request.
func TestBadInputCatalogue(t *testing.T) {
	g := startGW(t, nil, "--max-body-bytes", "65536", "--body-read-timeout", "500ms")
	key := g.AdminKey
	msg := func(content string) string {
		return `{"model":"grok-4.3","messages":[{"role":"user","content":` + content + `}]}`
	}
	parts := make([]string, 10000)
	for i := range parts {
		parts[i] = `{"type":"text","text":"p"}`
	}
	type tc struct {
		name, method, path, auth, ctype, body string
		status                                int
		contains                              string
	}
	bearer := "Bearer " + key
	j := "application/json"
	chat := "/api/v1/chat/completions"
	cases := []tc{
		{"truncated json", "POST", chat, bearer, j, `{"model":"grok-4.3","messages":[`, 400, "not valid JSON"},
		{"trailing garbage", "POST", chat, bearer, j, msg(`"x"`) + `}`, 400, "not valid JSON"},
		{"single quotes", "POST", chat, bearer, j, `{'model':'grok-4.3'}`, 400, "not valid JSON"},
		{"json array body", "POST", chat, bearer, j, `[]`, 400, "JSON object"},
		{"json string body", "POST", chat, bearer, j, `"hi"`, 400, "JSON object"},
		{"json null body", "POST", chat, bearer, j, `null`, 400, "JSON object"},
		{"whitespace body", "POST", chat, bearer, j, "  \n ", 400, "empty"},
		{"model is number", "POST", chat, bearer, j, `{"model":4,"messages":[]}`, 400, "'model'"},
		{"model is null", "POST", chat, bearer, j, `{"model":null,"messages":[{"role":"user","content":"x"}]}`, 400, "'model'"},
		{"model with a NUL", "POST", chat, bearer, j, `{"model":"grok\u0000","messages":[{"role":"user","content":"x"}]}`, 400, "control character U+0000"},
		{"model with a newline", "POST", chat, bearer, j, `{"model":"grok\n4","messages":[{"role":"user","content":"x"}]}`, 400, "control character U+000A"},
		{"model of 10 KB", "POST", chat, bearer, j, `{"model":"` + strings.Repeat("m", 10<<10) + `","messages":[{"role":"user","content":"x"}]}`, 400, "at most 256"},
		{"responses model with a NUL", "POST", "/api/v1/responses", bearer, j, `{"model":"grok\u0000","input":"x"}`, 400, "control character"},
		{"images model with a NUL", "POST", "/api/v1/images/generations", bearer, j, `{"model":"grok\u0000","prompt":"x"}`, 400, "control character"},
		{"messages is object", "POST", chat, bearer, j, `{"model":"grok-4.3","messages":{"role":"user"}}`, 400, "'messages'"},
		{"messages is null", "POST", chat, bearer, j, `{"model":"grok-4.3","messages":null}`, 400, "'messages'"},
		{"messages empty", "POST", chat, bearer, j, `{"model":"grok-4.3","messages":[]}`, 400, "at least one"},
		{"message is string", "POST", chat, bearer, j, `{"model":"grok-4.3","messages":["hi"]}`, 400, "messages"},
		{"role missing", "POST", chat, bearer, j, `{"model":"grok-4.3","messages":[{"content":"x"}]}`, 400, "role"},
		{"role number", "POST", chat, bearer, j, `{"model":"grok-4.3","messages":[{"role":1,"content":"x"}]}`, 400, "role"},
		{"content number", "POST", chat, bearer, j, msg(`42`), 400, "content"},
		{"content part without type", "POST", chat, bearer, j, msg(`[{"text":"x"}]`), 400, "type"},
		{"content part not object", "POST", chat, bearer, j, msg(`["x"]`), 400, "content part"},
		{"stream is string", "POST", chat, bearer, j, `{"model":"grok-4.3","stream":"true","messages":[{"role":"user","content":"x"}]}`, 400, "'stream'"},
		{"temperature string", "POST", chat, bearer, j, `{"model":"grok-4.3","temperature":"hot","messages":[{"role":"user","content":"x"}]}`, 400, "temperature"},
		{"temperature too high", "POST", chat, bearer, j, `{"model":"grok-4.3","temperature":9,"messages":[{"role":"user","content":"x"}]}`, 400, "temperature"},
		{"n zero", "POST", chat, bearer, j, `{"model":"grok-4.3","n":0,"messages":[{"role":"user","content":"x"}]}`, 400, "'n'"},
		{"n negative", "POST", chat, bearer, j, `{"model":"grok-4.3","n":-5,"messages":[{"role":"user","content":"x"}]}`, 400, "'n'"},
		{"n absurd", "POST", chat, bearer, j, `{"model":"grok-4.3","n":1000000000,"messages":[{"role":"user","content":"x"}]}`, 400, "'n'"},
		{"max_tokens negative", "POST", chat, bearer, j, `{"model":"grok-4.3","max_tokens":-1,"messages":[{"role":"user","content":"x"}]}`, 400, "max_tokens"},
		{"max_tokens overflow", "POST", chat, bearer, j, `{"model":"grok-4.3","max_tokens":1e30,"messages":[{"role":"user","content":"x"}]}`, 400, "max_tokens"},
		{"max_tokens fractional", "POST", chat, bearer, j, `{"model":"grok-4.3","max_completion_tokens":2.5,"messages":[{"role":"user","content":"x"}]}`, 400, "max_completion_tokens"},
		{"duplicate model key", "POST", chat, bearer, j, `{"model":"grok-4.3","messages":[{"role":"user","content":"x"}],"model":"grok-3"}`, 400, "more than once"},
		{"escaped duplicate key", "POST", chat, bearer, j, `{"model":"grok-4.3","messages":[{"role":"user","content":"x"}],"mod\u0065l":"grok-3"}`, 400, "more than once"},
		{"nested duplicate key", "POST", chat, bearer, j, `{"model":"grok-4.3","messages":[{"role":"user","content":"x","content":[{"type":"text","text":"y"}]}]}`, 400, "'messages[0].content' more than once"},
		{"model in another case", "POST", chat, bearer, j, `{"MODEL":"grok-4.3","messages":[{"role":"user","content":"x"}]}`, 400, "'MODEL', which differs only in case from 'model'"},
		{"invalid utf-8", "POST", chat, bearer, j, msg("\"\xff\xfe\""), 400, "UTF-8"},
		{"deeply nested", "POST", chat, bearer, j, `{"model":"grok-4.3","x":` + strings.Repeat("[", 20000) + strings.Repeat("]", 20000) + `,"messages":[{"role":"user","content":"x"}]}`, 400, "not valid JSON"},
		{"body over limit", "POST", chat, bearer, j, msg(`"` + strings.Repeat("a", 70000) + `"`), 413, "64 KiB"},
		{"enormous message", "POST", chat, bearer, j, `{"model":"grok-4.3","messages":[` + strings.Repeat(`{"role":"user","content":"x"},`, 5000) + `{"role":"user","content":"x"}]}`, 413, "limit"},
		{"form content type", "POST", chat, bearer, "multipart/form-data; boundary=x", "--x--", 415, "application/json"},
		{"xml content type", "POST", chat, bearer, "application/xml", "<a/>", 415, "application/json"},
		{"malformed content type", "POST", chat, bearer, "application/json; ===", msg(`"x"`), 415, "Content-Type"},
		{"get on chat", "GET", chat, bearer, "", "", 405, "use POST"},
		{"put on chat", "PUT", chat, bearer, j, msg(`"x"`), 405, "use POST"},
		{"delete on models", "DELETE", "/api/v1/models", bearer, "", "", 405, "use GET"},
		{"unknown route", "POST", "/api/v2/chat/completions", bearer, j, msg(`"x"`), 404, "/api/v1"},
		{"dot-dot path", "POST", "/api/v1/../v1/chat/completions", bearer, j, msg(`"x"`), 404, "Unknown request URL"},
		{"double slash path", "POST", "/api/v1//chat/completions", bearer, j, msg(`"x"`), 404, "Unknown request URL"},
		{"encoded dot-dot", "POST", "/api/v1/%2e%2e/v1/chat/completions", bearer, j, msg(`"x"`), 404, "Unknown request URL"},
		{"trailing slash", "POST", chat + "/", bearer, j, msg(`"x"`), 404, "Unknown request URL"},
		{"no auth header", "POST", chat, "", j, msg(`"x"`), 401, "Missing API key"},
		{"empty bearer", "POST", chat, "Bearer ", j, msg(`"x"`), 401, "Authorization: Bearer"},
		{"bearer word only", "POST", chat, "Bearer", j, msg(`"x"`), 401, "Authorization"},
		{"basic auth", "POST", chat, "Basic dXNlcjpwYXNz", j, msg(`"x"`), 401, "Bearer"},
		{"key with spaces", "POST", chat, "Bearer gg- abc def", j, msg(`"x"`), 401, "Invalid API key"},
		{"very long key", "POST", chat, "Bearer gg-" + strings.Repeat("A", 8000), j, msg(`"x"`), 401, "Invalid API key"},
		{"unicode key", "POST", chat, "Bearer gg-ключключключключключключключключключключ", j, msg(`"x"`), 401, "Invalid API key"},
		{"key one char off", "POST", chat, "Bearer " + key[:len(key)-1] + flip(key[len(key)-1]), j, msg(`"x"`), 401, "Invalid API key"},
		{"xai key as gateway key", "POST", chat, "Bearer xai-" + strings.Repeat("z", 60), j, msg(`"x"`), 401, "Invalid API key"},
		{"10000-part content", "POST", chat, bearer, j, msg(`[` + strings.Join(parts, ",") + `]`), 413, "limit"},
		{"model and MODEL", "POST", chat, bearer, j, `{"model":"grok-4.3","MODEL":"grok-3","messages":[{"role":"user","content":"x"}]}`, 400, "'MODEL', which differs only in case from 'model'"},
		{"STREAM in capitals", "POST", chat, bearer, j, `{"model":"grok-4.3","STREAM":true,"messages":[{"role":"user","content":"x"}]}`, 400, "'STREAM', which differs only in case"},
		{"role in another case", "POST", chat, bearer, j, `{"model":"grok-4.3","messages":[{"Role":"system","role":"user","content":"x"}]}`, 400, "'messages[0].Role'"},
		{"images Model", "POST", "/api/v1/images/generations", bearer, j, `{"prompt":"p","Model":"grok-imagine-image-quality"}`, 400, "'Model', which differs only in case"},
		{"responses Model", "POST", "/api/v1/responses", bearer, j, `{"model":"grok-4.3","Model":"grok-3","input":"x"}`, 400, "'Model', which differs only in case"},
		{"vision temperature NaN", "POST", "/api/v1/vision/analyze", bearer, "multipart/form-data; boundary=b", "--b\r\nContent-Disposition: form-data; name=\"image_url\"\r\n\r\nhttps://example.com/a.png\r\n--b\r\nContent-Disposition: form-data; name=\"temperature\"\r\n\r\nNaN\r\n--b--\r\n", 400, "'temperature'"},
		{"vision temperature Inf", "POST", "/api/v1/vision/analyze", bearer, "multipart/form-data; boundary=b", "--b\r\nContent-Disposition: form-data; name=\"image_url\"\r\n\r\nhttps://example.com/a.png\r\n--b\r\nContent-Disposition: form-data; name=\"temperature\"\r\n\r\n-Inf\r\n--b--\r\n", 400, "'temperature'"},
		{"admin duplicate role", "POST", "/admin/v1/keys", bearer, j, `{"name":"x","role":"user","role":"admin"}`, 400, "'role' more than once"},
		{"admin invalid utf-8", "POST", "/admin/v1/keys", bearer, j, "{\"name\":\"\xff\"}", 400, "UTF-8"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req, err := http.NewRequest(c.method, g.URL+c.path, strings.NewReader(c.body))
			if err != nil {
				t.Fatal(err)
			}
			if c.path != "" && strings.Contains(c.path, "%2e") {
				req.URL.RawPath = c.path
			}
			if c.ctype != "" {
				req.Header.Set("Content-Type", c.ctype)
			}
			if c.auth != "" {
				req.Header.Set("Authorization", c.auth)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			m, _ := readError(t, resp, c.status)
			if !strings.Contains(m, c.contains) {
				t.Errorf("message %q lacks %q", m, c.contains)
			}
			if strings.Contains(m, key) {
				t.Errorf("message echoes the key")
			}
		})
	}

	t.Run("10000-part content within the limit reaches xAI", func(t *testing.T) {
		g2 := startGW(t, nil)
		resp := g2.post(t, chat, g2.AdminKey, msg(`[`+strings.Join(parts, ",")+`]`))
		okBody(t, resp)
	})

	t.Run("body that never ends", func(t *testing.T) {
		conn, err := net.Dial("tcp", strings.TrimPrefix(g.URL, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: x\r\nAuthorization: %s\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"model\":", chat, bearer)
		conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatalf("no answer to a stalled body: %v", err)
		}
		readError(t, resp, 408)
	})

	t.Run("huge headers", func(t *testing.T) {
		req, _ := http.NewRequest("POST", g.URL+chat, strings.NewReader(msg(`"x"`)))
		req.Header.Set("Authorization", bearer)
		req.Header.Set("X-Junk", strings.Repeat("j", 80<<10))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		// net/http answers this one itself, before any handler runs.
		if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
			t.Fatalf("status %d", resp.StatusCode)
		}
	})

	t.Run("still serving", func(t *testing.T) {
		okBody(t, g.post(t, chat, key, chatBody("after all that", true)))
	})
}

// flip changes a base64url character to another valid one.
func flip(c byte) string {
	if c == 'A' {
		return "B"
	}
	return "A"
}
