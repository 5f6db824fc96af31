package console

import (
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Live serves the Overview's live counters (GET /admin/v1/live) from the
// server's own Prometheus metrics: open streams now, and requests per
// second and the share of them answered 5xx since the previous call a
// second or more ago (the page polls every few seconds). Nothing is
// counted for it on the request path.
func Live(g prometheus.Gatherer, now func() time.Time) http.Handler {
	return &live{g: g, now: now}
}

type live struct {
	g   prometheus.Gatherer
	now func() time.Time

	mu   sync.Mutex
	prev sample
}

type sample struct {
	at             time.Time
	requests, errs float64
}

func (l *live) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	fams, err := l.g.Gather()
	if err != nil {
		http.Error(w, `{"error":{"message":"metrics unavailable","type":"api_error","param":null,"code":"metrics_unavailable"}}`, http.StatusServiceUnavailable)
		return
	}
	cur := sample{at: l.now()}
	var open float64
	for _, f := range fams {
		switch f.GetName() {
		case "grokgate_open_streams":
			for _, m := range f.GetMetric() {
				open += m.GetGauge().GetValue()
			}
		case "grokgate_requests_total":
			for _, m := range f.GetMetric() {
				v := m.GetCounter().GetValue()
				cur.requests += v
				for _, lp := range m.GetLabel() {
					if lp.GetName() == "status_class" && strings.HasPrefix(lp.GetValue(), "5") {
						cur.errs += v
					}
				}
			}
		}
	}
	l.mu.Lock()
	prev := l.prev
	if prev.at.IsZero() || cur.at.Sub(prev.at) >= time.Second {
		l.prev = cur
	}
	l.mu.Unlock()
	var rps, errRate float64
	if !prev.at.IsZero() {
		if d := cur.at.Sub(prev.at).Seconds(); d > 0 {
			rps = (cur.requests - prev.requests) / d
		}
		if n := cur.requests - prev.requests; n > 0 {
			errRate = (cur.errs - prev.errs) / n
		}
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{"object": "live", "open_streams": open, "requests_per_second": rps,
		"error_rate": errRate, "requests_total": cur.requests, "errors_total": cur.errs})
}
