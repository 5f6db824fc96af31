package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/grokgate/grokgate"
	"github.com/grokgate/grokgate/internal/logtest"
	"github.com/grokgate/grokgate/xai"
)

// panickyUpstream panics in Do on its first call and answers JSON after.
type panickyUpstream struct {
	calls atomic.Int32
	json  jsonUpstream
}

func (u *panickyUpstream) Do(ctx context.Context, req xai.Request) (*http.Response, error) {
	if u.calls.Add(1) == 1 {
		panic("upstream client bug")
	}
	return u.json.Do(ctx, req)
}

// panicAfterEvent is a stream body that delivers one event, then panics.
type panicAfterEvent struct{ sent bool }

func (b *panicAfterEvent) Read(p []byte) (int, error) {
	if !b.sent {
		b.sent = true
		return copy(p, "data: {\"id\":\"a\",\"object\":\"chat.completion.chunk\",\"model\":\"grok-4.3\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"}}]}\n\n"), nil
	}
	panic("stream reader bug")
}

func (b *panicAfterEvent) Close() error { return nil }

type panickyStream struct{}

func (panickyStream) Do(context.Context, xai.Request) (*http.Response, error) {
	return &http.Response{StatusCode: http.StatusOK, Header: http.Header{"Content-Type": {"text/event-stream"}},
		ContentLength: -1, Body: &panicAfterEvent{}}, nil
}

func recoverServer(t *testing.T, up Upstream) (*httptest.Server, *logtest.Buffer, *records) {
	t.Helper()
	logs, recs := &logtest.Buffer{}, &records{}
	key := &grokgate.Key{ID: "key_1", Prefix: "gg-abc", Role: grokgate.RoleUser}
	srv := httptest.NewServer(NewServer(slog.New(slog.NewJSONHandler(logs, nil)), Config{Usage: recs}, fixedAuth{key}, up))
	t.Cleanup(srv.Close)
	return srv, logs, recs
}

func postChat(t *testing.T, url, body string) (*http.Response, []byte, error) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url+"/v1/chat/completions", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer gg-test")
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp, b, err
}

// accessLine returns the access-log line of the request with this id.
func accessLine(t *testing.T, log, id string) map[string]any {
	t.Helper()
	for _, line := range strings.Split(log, "\n") {
		var e map[string]any
		if json.Unmarshal([]byte(line), &e) == nil && e["msg"] == "request" && e["request_id"] == id {
			return e
		}
	}
	t.Fatalf("no access-log line for %s in:\n%s", id, log)
	return nil
}

func TestPanicBeforeTheAnswerIsA500AndTheServerGoesOn(t *testing.T) {
	up := &panickyUpstream{json: jsonUpstream{header: http.Header{"Content-Type": {"application/json"}}, body: []byte(benchAnswer)}}
	srv, logs, recs := recoverServer(t, up)

	resp, body, err := postChat(t, srv.URL, benchChatBody)
	if err != nil {
		t.Fatal(err)
	}
	var env struct {
		Error struct{ Code, Message string }
	}
	if resp.StatusCode != http.StatusInternalServerError || json.Unmarshal(body, &env) != nil || env.Error.Code != "internal_error" {
		t.Fatalf("%d %s, want a 500 internal_error envelope", resp.StatusCode, body)
	}
	id := resp.Header.Get("X-Request-Id")
	if id == "" || !strings.Contains(env.Error.Message, "X-Request-Id") {
		t.Errorf("X-Request-Id %q, message %q: the client needs the id to report", id, env.Error.Message)
	}
	if line := accessLine(t, logs.String(), id); line["status"] != float64(500) {
		t.Errorf("access log status %v, want 500", line["status"])
	}
	if !strings.Contains(logs.String(), "upstream client bug") {
		t.Error("the panic value is not logged")
	}
	if recs := recs.wait(t, 1); recs[0].RequestID != id || recs[0].Status != 500 {
		t.Errorf("usage record %+v, want the failed request's, status 500", recs[0])
	}

	if resp, _, err := postChat(t, srv.URL, benchChatBody); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("the next request: %v %v, want 200", resp, err)
	}
}

func TestPanicMidStreamCutsTheConnectionAndIsStillLogged(t *testing.T) {
	srv, logs, recs := recoverServer(t, panickyStream{})
	resp, body, err := postChat(t, srv.URL, `{"model":"grok-4.3","stream":true,"messages":[{"role":"user","content":"hi"}]}`)
	if resp == nil {
		t.Fatalf("no response: %v", err)
	}
	if err == nil {
		t.Fatalf("the stream ended cleanly (%q); a panic after the first byte must cut the connection", body)
	}
	if !bytes.Contains(body, []byte(`"content":"hi"`)) {
		t.Errorf("body %q, want the event sent before the panic", body)
	}
	id := resp.Header.Get("X-Request-Id")
	accessLine(t, logs.String(), id)
	if recs := recs.wait(t, 1); recs[0].RequestID != id {
		t.Errorf("usage record %+v, want one for %s", recs[0], id)
	}
}
