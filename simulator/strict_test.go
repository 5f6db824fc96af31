package simulator

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestUnknownContentPartRefused: a content part of a type xAI does not know
// is xAI's 422, as the real API answers, not silently skipped: 10,000
// {"type":"bogus"} parts were answered 200.
func TestUnknownContentPartRefused(t *testing.T) {
	srv := httptest.NewServer(New(Options{}))
	defer srv.Close()
	for body, want := range map[string]int{
		`{"model":"grok-4.3","messages":[{"role":"user","content":[{"type":"bogus"}]}]}`:                            422,
		`{"model":"grok-4.3","messages":[{"role":"user","content":[{"type":"text","text":"hi"},{"type":"Text"}]}]}`: 422,
		`{"model":"grok-4.3","messages":[{"role":"wizard","content":"hi"}]}`:                                        422,
		`{"model":"grok-4.3","messages":[{"role":"user","content":[{"type":"text","text":"hi"}]}]}`:                 200,
	} {
		req, _ := http.NewRequest("POST", srv.URL+"/v1/chat/completions", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer k")
		req.Header.Set("Content-Type", "application/json")
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("%s: %d, want %d", body, resp.StatusCode, want)
		}
	}
}
