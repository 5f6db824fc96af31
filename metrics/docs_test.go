package metrics

import (
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/grokgate/grokgate"
	"github.com/grokgate/grokgate/gateway"
)

type fixedQueue struct{}

func (fixedQueue) Depth() int64   { return 0 }
func (fixedQueue) Dropped() int64 { return 0 }

func (fixedQueue) Spooled() int64      { return 0 }
func (fixedQueue) Replayed() int64     { return 0 }
func (fixedQueue) DeadLettered() int64 { return 0 }
func (fixedQueue) SpoolPending() int64 { return 0 }

// TestDocsAndDashboard keeps the metric table of docs/observability.md and the Grafana
// dashboard in step with the metrics registered.
func TestDocsAndDashboard(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := New(reg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.WatchUsage(fixedQueue{}); err != nil {
		t.Fatal(err)
	}
	if err := m.WatchSpool(fixedQueue{}); err != nil {
		t.Fatal(err)
	}
	// Touch every vector so Gather lists it.
	m.Request(gatewayStatsForDocs())
	m.Stream("x").End()
	m.RateLimited("requests", "")
	m.AttemptFailed("status", 429)
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	registered := map[string]bool{}
	for _, f := range fams {
		registered[f.GetName()] = true
	}
	for _, name := range []string{"grokgate_time_to_first_token_seconds", "grokgate_stream_chunk_gap_seconds"} {
		registered[name] = true // histograms without observations are not gathered
	}

	doc, err := os.ReadFile("../docs/observability.md")
	if err != nil {
		t.Fatal(err)
	}
	for name := range registered {
		if !strings.Contains(string(doc), "| `"+name+"` |") {
			t.Errorf("docs/observability.md's metric table lacks %s", name)
		}
	}

	raw, err := os.ReadFile("../deploy/grafana-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(raw, &dash); err != nil || len(dash.Panels) == 0 {
		t.Fatalf("dashboard: %v", err)
	}
	suffix := regexp.MustCompile(`_(bucket|sum|count)$`)
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			for _, name := range regexp.MustCompile(`grokgate_[a-z_]+`).FindAllString(tg.Expr, -1) {
				if !registered[name] && !registered[suffix.ReplaceAllString(name, "")] {
					t.Errorf("dashboard queries unknown metric %s", name)
				}
			}
		}
	}
}

func gatewayStatsForDocs() gateway.RequestStats {
	return gateway.RequestStats{Route: "/chat/completions", Model: "m", Status: 200, Stream: true, Fallback: true,
		CalledUpstream: true, Usage: &grokgate.Record{PromptTokens: 1}}
}
