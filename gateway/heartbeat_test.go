package gateway

import (
	"bytes"
	"context"
	"net/http"
	"testing"
	"time"
)

// TestHeartbeatOnlyInSilence: heartbeats fill upstream silence and nothing
// else. Events that keep coming, each sooner than the heartbeat interval
// but together over many intervals, get none; a pause longer than the
// interval between two events gets one.
func TestHeartbeatOnlyInSilence(t *testing.T) {
	// Margins are wide: a loaded machine may delay an event by tens of ms.
	const beat = 200 * time.Millisecond
	h := newHarnessConfig(t, func(c *Config) { c.Heartbeat = beat })
	for _, c := range []struct {
		name       string
		directive  string
		heartbeats bool
	}{
		// 16 chunks 40 ms apart: over three intervals of events, none a
		// heartbeat apart.
		{"events keep coming", `#sim{"chunks":16,"delay_ms":40}`, false},
		{"a pause of three intervals", `#sim{"chunks":3,"delay_ms":600}`, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			resp, body := h.do(t, context.Background(), http.MethodPost, "/v1/chat/completions", h.user,
				chat("grok-4.3", "Hi "+c.directive, true, false))
			if resp == nil || resp.StatusCode != http.StatusOK || !bytes.HasSuffix(body, []byte("data: [DONE]\n\n")) {
				t.Fatalf("stream did not complete: %v %q", resp, body)
			}
			first := bytes.Index(body, []byte("data: "))
			got := bytes.Count(body, []byte(": keep-alive\n\n"))
			switch {
			case bytes.Contains(body[:first], []byte(": keep-alive")):
				t.Fatalf("a heartbeat before the first event of a fast stream: %q", body)
			case c.heartbeats && got == 0:
				t.Fatalf("no heartbeat during a pause of %v: %q", 3*beat, body)
			case !c.heartbeats && got > 0:
				t.Fatalf("%d heartbeats while events kept coming: %q", got, body)
			}
		})
	}
}
