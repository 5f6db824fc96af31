package xai

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

// TestRetryPolicy checks which upstream failures each policy repeats: a
// call that creates a stored object is repeated only when xAI surely did
// not take it.
func TestRetryPolicy(t *testing.T) {
	cases := []struct {
		status int
		policy RetryPolicy
		calls  int32
	}{
		{http.StatusInternalServerError, RetryUnanswered, 3},
		{http.StatusBadGateway, RetryUnanswered, 3},
		{http.StatusServiceUnavailable, RetryUnanswered, 3},
		{http.StatusInternalServerError, RetryNotTaken, 1},
		{http.StatusBadGateway, RetryNotTaken, 1},
		{http.StatusServiceUnavailable, RetryNotTaken, 3},
		{http.StatusTooManyRequests, RetryNotTaken, 3},
		{http.StatusBadRequest, RetryUnanswered, 1},
	}
	for _, tc := range cases {
		var calls atomic.Int32
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			calls.Add(1)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(tc.status)
			io.WriteString(w, `{"code":"x","error":"failed"}`)
		}))
		c := NewClient(srv.URL, "k1", http.DefaultTransport, Retry{BaseBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond},
			slog.New(slog.DiscardHandler), time.Now)
		resp, err := c.Do(context.Background(), Request{Method: http.MethodPost, Path: "/responses", Body: []byte(`{}`), Retry: tc.policy})
		if err != nil {
			t.Fatalf("status %d policy %d: %v", tc.status, tc.policy, err)
		}
		resp.Body.Close()
		if got := calls.Load(); got != tc.calls {
			t.Errorf("status %d policy %d: %d upstream calls, want %d", tc.status, tc.policy, got, tc.calls)
		}
		srv.Close()
	}
}

// TestRequestQueryAndHeader checks that a Request's query and extra headers
// reach xAI.
func TestRequestQueryAndHeader(t *testing.T) {
	var gotURL, gotHeader string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotURL, gotHeader = r.URL.RequestURI(), r.Header.Get("X-Test")
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{}`)
	}))
	defer srv.Close()
	c := NewClient(srv.URL+"/v1", "k1", http.DefaultTransport, Retry{}, slog.New(slog.DiscardHandler), time.Now)
	resp, err := c.Do(context.Background(), Request{Method: http.MethodGet, Path: "/responses/abc", Query: "stream=true",
		Header: http.Header{"X-Test": {"yes"}}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if gotURL != "/v1/responses/abc?stream=true" || gotHeader != "yes" {
		t.Fatalf("upstream saw %q with X-Test %q", gotURL, gotHeader)
	}
}

// TestRefusedConnectionRetried checks that a connection never made is
// repeated under either policy.
func TestRefusedConnectionRetried(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens: every dial is refused
	var dials atomic.Int32
	tr := &http.Transport{DialContext: func(ctx context.Context, network, a string) (net.Conn, error) {
		dials.Add(1)
		return (&net.Dialer{}).DialContext(ctx, network, a)
	}}
	c := NewClient("http://"+addr, "k1", tr, Retry{BaseBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond},
		slog.New(slog.DiscardHandler), time.Now)
	if _, err := c.Do(context.Background(), Request{Method: http.MethodPost, Path: "/responses", Body: []byte(`{}`), Retry: RetryNotTaken}); err == nil {
		t.Fatal("no error from an address nothing listens on")
	}
	if n := dials.Load(); n != 3 {
		t.Fatalf("%d dials, want 3", n)
	}
}
