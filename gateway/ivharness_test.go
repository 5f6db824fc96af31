package gateway_test

// The harness for the image and vision tests: the real gateway and the real
// simulator on loopback sockets, with a recorder in between that keeps every
// request the gateway sent upstream. Names carry an "iv" prefix so they do
// not collide with other test files of the package.

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/grokgate/grokgate"
	"github.com/grokgate/grokgate/gateway"
	"github.com/grokgate/grokgate/keys"
	"github.com/grokgate/grokgate/simulator"
	"github.com/grokgate/grokgate/xai"
)

const ivKey = "gg-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"

type ivAuth struct{}

func (ivAuth) Authenticate(_ context.Context, secret string) (*grokgate.Key, error) {
	if secret != ivKey {
		return nil, keys.ErrInvalid
	}
	return &grokgate.Key{ID: "key_iv", Prefix: secret[:9], Role: grokgate.RoleUser}, nil
}

// ivUpReq is one request the gateway sent to the upstream.
type ivUpReq struct {
	method, path string
	body         []byte
}

// ivOverride may answer an upstream request itself (returning true) instead
// of the simulator, to produce answers the simulator cannot.
type ivOverride func(w http.ResponseWriter, r *http.Request, body []byte) bool

type ivEnv struct {
	gw  *httptest.Server
	sim *httptest.Server

	mu   sync.Mutex
	reqs []ivUpReq
}

func newIV(t *testing.T, cfg gateway.Config, override ivOverride) *ivEnv {
	t.Helper()
	e := &ivEnv{}
	sim := simulator.New(simulator.Options{})
	e.sim = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if strings.HasPrefix(r.URL.Path, "/v1/") {
			e.mu.Lock()
			e.reqs = append(e.reqs, ivUpReq{r.Method, strings.TrimPrefix(r.URL.Path, "/v1"), body})
			e.mu.Unlock()
		}
		if override != nil && override(w, r, body) {
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		sim.ServeHTTP(w, r)
	}))
	t.Cleanup(e.sim.Close)
	log := slog.New(slog.DiscardHandler)
	up := xai.NewClient(e.sim.URL+"/v1", "xai-test-key", e.sim.Client().Transport, xai.Retry{MaxAttempts: 1}, log, time.Now) // retries are xai's concern, tested there
	e.gw = httptest.NewServer(gateway.NewServer(log, cfg, ivAuth{}, up))
	t.Cleanup(e.gw.Close)
	return e
}

// upstream returns the requests sent upstream to path so far.
func (e *ivEnv) upstream(path string) []ivUpReq {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []ivUpReq
	for _, r := range e.reqs {
		if r.path == path {
			out = append(out, r)
		}
	}
	return out
}

// lastUpstream decodes the body of the last request sent upstream to path.
func (e *ivEnv) lastUpstream(t *testing.T, path string) map[string]any {
	t.Helper()
	rs := e.upstream(path)
	if len(rs) == 0 {
		t.Fatalf("nothing was sent upstream to %s", path)
	}
	var m map[string]any
	if err := json.Unmarshal(rs[len(rs)-1].body, &m); err != nil {
		t.Fatalf("upstream body of %s: %v", path, err)
	}
	return m
}

// post sends body to the gateway with the test key and returns the
// response with its body read.
func (e *ivEnv) post(t *testing.T, path, contentType string, body io.Reader) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, e.gw.URL+path, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+ivKey)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := e.gw.Client().Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("POST %s: reading the answer: %v", path, err)
	}
	return resp, b
}

func (e *ivEnv) postJSON(t *testing.T, path, body string) (*http.Response, []byte) {
	t.Helper()
	return e.post(t, path, "application/json", strings.NewReader(body))
}

// ivEnvelope is the OpenAI error envelope.
type ivEnvelope struct {
	Error struct {
		Message string  `json:"message"`
		Type    string  `json:"type"`
		Param   *string `json:"param"`
		Code    *string `json:"code"`
	} `json:"error"`
}

// ivWantError checks an error answer: status, code and a part of the message.
func ivWantError(t *testing.T, resp *http.Response, body []byte, status int, code, msgPart string) {
	t.Helper()
	if resp.StatusCode != status {
		t.Fatalf("status %d, want %d: %s", resp.StatusCode, status, body)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("error Content-Type %q", ct)
	}
	var env ivEnvelope
	if err := json.Unmarshal(body, &env); err != nil || env.Error.Message == "" || env.Error.Type == "" {
		t.Fatalf("not an OpenAI error envelope: %s", body)
	}
	if code != "" && (env.Error.Code == nil || *env.Error.Code != code) {
		t.Fatalf("code %v, want %q: %s", env.Error.Code, code, body)
	}
	if !strings.Contains(env.Error.Message, msgPart) {
		t.Fatalf("message %q does not contain %q", env.Error.Message, msgPart)
	}
}

// ivCompletion is the part of a chat.completion the tests look at.
type ivCompletion struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Model   string `json:"model"`
	Choices []struct {
		Message struct {
			Role    string `json:"role"`
			Content string `json:"content"`
		} `json:"message"`
		FinishReason string `json:"finish_reason"`
	} `json:"choices"`
	Usage struct {
		PromptTokens        int `json:"prompt_tokens"`
		PromptTokensDetails struct {
			ImageTokens int `json:"image_tokens"`
		} `json:"prompt_tokens_details"`
	} `json:"usage"`
}

func ivDecodeCompletion(t *testing.T, resp *http.Response, body []byte) ivCompletion {
	t.Helper()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	var c ivCompletion
	if err := json.Unmarshal(body, &c); err != nil {
		t.Fatalf("not a completion: %v: %s", err, body)
	}
	if c.Object != "chat.completion" || len(c.Choices) != 1 || c.Choices[0].Message.Role != "assistant" {
		t.Fatalf("not a chat.completion: %s", body)
	}
	return c
}

// ivSimAnswer is the text the simulator answers to prompt.
func ivSimAnswer(prompt string) string { return strings.Join(simulator.Reply(prompt, 8), "") }
