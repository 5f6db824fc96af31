package metrics

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/grokgate/grokgate"
	"github.com/grokgate/grokgate/gateway"
)

func TestKeyLabelsAndModelBound(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := New(reg, Options{KeyLabels: true, MaxModels: 2})
	if err != nil {
		t.Fatal(err)
	}
	for _, model := range []string{"a", "b", "c", "d", "a"} {
		m.Request(gateway.RequestStats{Route: "/chat/completions", Model: model, KeyID: "key_1", Status: 200,
			Duration: time.Millisecond, Usage: &grokgate.Record{PromptTokens: 3}})
	}
	// 100 junk names xAI refused take no slot: a real model answered
	// after them still gets its own series once there is room.
	for i := range 100 {
		m.Request(gateway.RequestStats{Route: "/chat/completions", Model: "junk-" + strconv.Itoa(i), KeyID: "key_1", Status: 404,
			Duration: time.Millisecond, Usage: &grokgate.Record{PromptTokens: 1}})
	}
	m.RateLimited("requests", "key_1")
	want := `
# HELP grokgate_tokens_total Tokens of chat requests by kind (prompt, completion, reasoning, cached; cached is part of prompt) and requested model; estimated=true where xAI's usage never came and grokgate estimated it.
# TYPE grokgate_tokens_total counter
grokgate_tokens_total{estimated="false",key_id="key_1",kind="prompt",model="a"} 6
grokgate_tokens_total{estimated="false",key_id="key_1",kind="prompt",model="b"} 3
grokgate_tokens_total{estimated="false",key_id="key_1",kind="prompt",model="other"} 6
grokgate_tokens_total{estimated="false",key_id="key_1",kind="prompt",model="unknown"} 100
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "grokgate_tokens_total"); err != nil {
		t.Error(err)
	}
	if n := testutil.ToFloat64(m.rateLimited.WithLabelValues("requests", "gateway", "key_1")); n != 1 {
		t.Errorf("gateway refusals %v", n)
	}
	// A second registration on the same registry fails instead of
	// silently sharing state.
	if _, err := New(reg, Options{}); err == nil {
		t.Error("registering twice succeeded")
	}
}

// TestJunkModelsTakeNoSlot: model names upstream refused are counted as
// "unknown"; a real model answered after 100 of them still gets its own
// series, with MaxModels slots for 2.
func TestJunkModelsTakeNoSlot(t *testing.T) {
	m, err := New(prometheus.NewRegistry(), Options{MaxModels: 2})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		m.Request(gateway.RequestStats{Route: "/chat/completions", Model: "junk-" + strconv.Itoa(i), Status: 404, Duration: time.Millisecond})
	}
	m.Request(gateway.RequestStats{Route: "/chat/completions", Model: "grok-9", Status: 200, Duration: time.Millisecond})
	m.Request(gateway.RequestStats{Route: "/chat/completions", Model: "grok-9", Status: 400, Duration: time.Millisecond})
	if n := testutil.ToFloat64(m.requests.WithLabelValues("/chat/completions", "unknown", "4xx", "false")); n != 100 {
		t.Errorf("unknown: %v requests, want 100", n)
	}
	if n := testutil.ToFloat64(m.requests.WithLabelValues("/chat/completions", "grok-9", "2xx", "false")) +
		testutil.ToFloat64(m.requests.WithLabelValues("/chat/completions", "grok-9", "4xx", "false")); n != 2 {
		t.Errorf("grok-9: %v requests, want 2 in its own series", n)
	}
}

type spoolCounts struct{ spooled, replayed, dead, pending int64 }

func (s spoolCounts) Spooled() int64      { return s.spooled }
func (s spoolCounts) Replayed() int64     { return s.replayed }
func (s spoolCounts) DeadLettered() int64 { return s.dead }
func (s spoolCounts) SpoolPending() int64 { return s.pending }

// TestWatchSpool: the spool's counters are exported as they are at scrape
// time.
func TestWatchSpool(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := New(reg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.WatchSpool(spoolCounts{spooled: 7, replayed: 5, dead: 1, pending: 2}); err != nil {
		t.Fatal(err)
	}
	want := `
# HELP grokgate_usage_dead_letter_records_total Usage records the database refused as invalid, kept in the spool's dead-letter file.
# TYPE grokgate_usage_dead_letter_records_total counter
grokgate_usage_dead_letter_records_total 1
# HELP grokgate_usage_replayed_records_total Usage records written from the local spool to the database.
# TYPE grokgate_usage_replayed_records_total counter
grokgate_usage_replayed_records_total 5
# HELP grokgate_usage_spool_pending_records Usage records waiting in the local spool for the database.
# TYPE grokgate_usage_spool_pending_records gauge
grokgate_usage_spool_pending_records 2
# HELP grokgate_usage_spooled_records_total Usage records written to the local spool because the database did not take them.
# TYPE grokgate_usage_spooled_records_total counter
grokgate_usage_spooled_records_total 7
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "grokgate_usage_dead_letter_records_total",
		"grokgate_usage_replayed_records_total", "grokgate_usage_spool_pending_records", "grokgate_usage_spooled_records_total"); err != nil {
		t.Fatal(err)
	}
}
