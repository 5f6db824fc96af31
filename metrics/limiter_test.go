package metrics

import (
	"os"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestLimiterBreaker: the breaker gauge shows exactly the current state and
// each opening is counted.
func TestLimiterBreaker(t *testing.T) {
	reg := prometheus.NewRegistry()
	l, err := NewLimiter(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"open", "half_open", "open", "half_open", "closed"} {
		l.LimiterBreaker(s)
	}
	l.LimiterBreaker("open")
	for state, want := range map[string]float64{"closed": 0, "open": 1, "half_open": 0} {
		if got := testutil.ToFloat64(l.state.WithLabelValues(state)); got != want {
			t.Errorf("state %s: %v, want %v", state, got, want)
		}
	}
	if got := testutil.ToFloat64(l.opens); got != 3 {
		t.Errorf("opens %v, want 3", got)
	}
}

// TestLimiterDocs: the limiter's metrics are in the metric table of
// docs/observability.md.
func TestLimiterDocs(t *testing.T) {
	reg := prometheus.NewRegistry()
	if _, err := NewLimiter(reg); err != nil {
		t.Fatal(err)
	}
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile("../docs/observability.md")
	if err != nil {
		t.Fatal(err)
	}
	if len(fams) != 2 {
		t.Fatalf("%d metrics registered, want 2", len(fams))
	}
	for _, f := range fams {
		if !strings.Contains(string(doc), "| `"+f.GetName()+"` |") {
			t.Errorf("docs/observability.md's metric table lacks %s", f.GetName())
		}
	}
}
