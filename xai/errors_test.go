package xai

import (
	"net/http"
	"strings"
	"testing"
)

func TestStatusError(t *testing.T) {
	cases := []struct {
		status     int
		body       string
		wantStatus int
		wantCode   string
		wantMsg    string
	}{
		{400, `{"code":"Client specified an invalid argument","error":"bad temperature"}`, 400, "Client specified an invalid argument", "bad temperature"},
		{404, `{"code":"Some requested entity was not found","error":"The model grok-9 does not exist"}`, 404, "Some requested entity was not found", "grok-9"},
		{400, `{"code":"Client specified an invalid argument","error":"Incorrect API key provided: xa***yz."}`, 502, "upstream_auth_failed", "XAI_API_KEY"},
		{401, `{"code":"Unauthenticated","error":"no key"}`, 502, "upstream_auth_failed", "XAI_API_KEY"},
		{403, `{"code":"permission-denied","error":"no credits"}`, 502, "upstream_auth_failed", "XAI_API_KEY"},
		{422, `Failed to deserialize the JSON body`, 400, "", "could not decode"},
		{429, `{"code":"Some resource has been exhausted","error":"rate limit"}`, 429, "Some resource has been exhausted", "rate limit"},
		{500, `{"code":"Internal error","error":"boom"}`, 502, "Internal error", "boom"},
		{503, `{"code":"The service is currently unavailable","error":"busy"}`, 503, "The service is currently unavailable", "busy"},
		{200, `{"code":"The service is currently unavailable","error":"Timed out waiting for first token"}`, 503, "The service is currently unavailable", "Timed out"},
		{502, `<html>bad gateway</html>`, 502, "upstream_error", "bad gateway"},
		{500, ``, 502, "upstream_error", "Internal Server Error"},
		{400, `{"error":{"message":"openai style","code":"x"}}`, 400, "x", "openai style"},
	}
	for _, c := range cases {
		e := StatusError(c.status, []byte(c.body))
		if e.Status != c.wantStatus || e.Code != c.wantCode || !strings.Contains(e.Message, c.wantMsg) {
			t.Errorf("%d %s: got %d %q %q", c.status, c.body, e.Status, e.Code, e.Message)
		}
		if strings.Contains(e.Message, "xa***yz") && e.Status == http.StatusBadGateway {
			t.Errorf("upstream key hint leaked to the client: %q", e.Message)
		}
	}
}

func TestParseErrorRejectsNonErrors(t *testing.T) {
	for _, body := range []string{`{"id":"x","choices":[]}`, `{"error":null}`, `[]`, `data: x`, ``} {
		if _, _, ok := ParseError([]byte(body)); ok {
			t.Errorf("ParseError(%q) = ok", body)
		}
	}
}
