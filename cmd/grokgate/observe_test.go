package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// secretWord is in every prompt of the mix; it must never reach the log.
const secretWord = "ultramarine-walrus-5521"

// scrape reads url's metrics with the Prometheus text parser.
func scrape(t *testing.T, url, key string) map[string]*dto.MetricFamily {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, b)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return fams
}

// sample returns the value of the series of family name whose labels
// include want (a counter or gauge value, a histogram's count), or -1.
func sample(fams map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
	f := fams[name]
	if f == nil {
		return -1
	}
	total, found := 0.0, false
next:
	for _, m := range f.Metric {
		for k, v := range want {
			ok := false
			for _, l := range m.Label {
				if l.GetName() == k && l.GetValue() == v {
					ok = true
				}
			}
			if !ok {
				continue next
			}
		}
		found = true
		switch {
		case m.Counter != nil:
			total += m.Counter.GetValue()
		case m.Gauge != nil:
			total += m.Gauge.GetValue()
		case m.Histogram != nil:
			total += float64(m.Histogram.GetSampleCount())
		}
	}
	if !found {
		return -1
	}
	return total
}

type usageBody struct {
	Prompt     int64 `json:"prompt_tokens"`
	Completion int64 `json:"completion_tokens"`
	PromptDet  struct {
		Cached int64 `json:"cached_tokens"`
	} `json:"prompt_tokens_details"`
	CompletionDet struct {
		Reasoning int64 `json:"reasoning_tokens"`
	} `json:"completion_tokens_details"`
}

func (u *usageBody) add(o usageBody) {
	u.Prompt += o.Prompt
	u.Completion += o.Completion
	u.PromptDet.Cached += o.PromptDet.Cached
	u.CompletionDet.Reasoning += o.CompletionDet.Reasoning
}

// usageOf finds the usage object in a JSON answer or an SSE body.
func usageOf(t *testing.T, body []byte) usageBody {
	t.Helper()
	var u struct {
		Usage *usageBody `json:"usage"`
	}
	for _, part := range strings.Split(string(body), "\n\n") {
		part = strings.TrimPrefix(strings.TrimSpace(part), "data: ")
		if json.Unmarshal([]byte(part), &u) == nil && u.Usage != nil {
			return *u.Usage
		}
	}
	t.Fatalf("no usage in %s", body)
	return usageBody{}
}

func mixBody(prompt string, stream bool) string {
	b, _ := json.Marshal(map[string]any{"model": "grok-4.3", "stream": stream,
		"stream_options": map[string]any{"include_usage": true},
		"messages":       []map[string]any{{"role": "user", "content": secretWord + " " + prompt}}})
	if !stream {
		b, _ = json.Marshal(map[string]any{"model": "grok-4.3",
			"messages": []map[string]any{{"role": "user", "content": secretWord + " " + prompt}}})
	}
	return string(b)
}

// TestObservabilityMix drives a scripted mix of requests through a real
// grokgate and its simulator and checks the metrics, the access log and
// where /metrics and pprof are served.
func TestObservabilityMix(t *testing.T) {
	g := startGW(t, map[string]string{
		"GROKGATE_METRICS_ADDR":      "127.0.0.1:0",
		"GROKGATE_UPSTREAM_ATTEMPTS": "1", // one attempt: error counts are per attempt
		"GROKGATE_LOG_FORMAT":        "json",
	})
	metricsURL := g.MetricsURL
	if metricsURL == "" || !strings.Contains(g.stdout(), "metrics and pprof on "+metricsURL+" ") {
		t.Fatalf("no metrics listener announced:\n%s", g.stdout())
	}
	key := g.AdminKey
	const chatPath = "/api/v1/chat/completions"
	var want usageBody
	ids := map[string]int{} // X-Request-Id → expected status

	read := func(resp *http.Response) []byte {
		t.Helper()
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		ids[resp.Header.Get("X-Request-Id")] = resp.StatusCode
		return b
	}
	expect := func(resp *http.Response, status int) []byte {
		t.Helper()
		b := read(resp)
		if resp.StatusCode != status {
			t.Fatalf("status %d, want %d: %s", resp.StatusCode, status, b)
		}
		return b
	}

	// ok
	want.add(usageOf(t, expect(g.post(t, chatPath, key, mixBody(`hello #sim{"cached_tokens":5}`, false)), 200)))
	// stream
	want.add(usageOf(t, expect(g.post(t, chatPath, key, mixBody("stream to me", true)), 200)))
	// fallback: a streaming vision request is answered from one
	// non-streaming upstream call
	resp := g.post(t, "/api/v1/vision/analyze", key,
		`{"image_url":"https://example.com/cat.png","stream":true,"stream_options":{"include_usage":true},"prompt":"`+secretWord+`"}`)
	if resp.Header.Get("X-Stream-Fallback") != "true" {
		t.Fatalf("no fallback: %v", resp.Header)
	}
	want.add(usageOf(t, expect(resp, 200)))
	// upstream errors: 503 and 429
	expect(g.post(t, chatPath, key, mixBody(`#sim{"status":503}`, false)), 503)
	expect(g.post(t, chatPath, key, mixBody(`#sim{"status":429}`, false)), 429)
	// a stream that breaks after two chunks
	if b := expect(g.post(t, chatPath, key, mixBody(`#sim{"error_after":2}`, true)), 200); !strings.Contains(string(b), `"error"`) {
		t.Fatalf("no error event: %s", b)
	}
	// refused: a bad key
	expect(g.post(t, chatPath, "gg-"+strings.Repeat("x", 43), mixBody("hi", false)), 401)
	// cancelled: the client leaves a slow stream after its first event
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, g.URL+chatPath,
		strings.NewReader(mixBody(`#sim{"chunks":40,"delay_ms":50}`, true)))
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	ids[resp.Header.Get("X-Request-Id")] = 499
	if _, err := bufio.NewReader(resp.Body).ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	cancel()
	resp.Body.Close()
	const requests = 8

	var fams map[string]*dto.MetricFamily
	eventually(t, 10*time.Second, "all requests counted and streams closed", func() bool {
		fams = scrape(t, metricsURL+"/metrics", "")
		return sample(fams, "grokgate_requests_total", nil) == requests &&
			sample(fams, "grokgate_open_streams", nil) == 0
	})
	chat := map[string]string{"route": "/chat/completions", "model": "grok-4.3"}
	with := func(base map[string]string, kv ...string) map[string]string {
		out := map[string]string{}
		for k, v := range base {
			out[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			out[kv[i]] = kv[i+1]
		}
		return out
	}
	checks := []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"grokgate_requests_total", with(chat, "status_class", "2xx", "stream", "false"), 1},
		{"grokgate_requests_total", with(chat, "status_class", "2xx", "stream", "true"), 2},
		{"grokgate_requests_total", with(chat, "status_class", "4xx", "stream", "true"), 1},
		{"grokgate_requests_total", with(chat, "status_class", "5xx", "stream", "false"), 1},
		{"grokgate_requests_total", with(chat, "status_class", "4xx", "stream", "false"), 1},
		{"grokgate_requests_total", map[string]string{"route": "/chat/completions", "model": "", "status_class": "4xx"}, 1},
		{"grokgate_requests_total", map[string]string{"route": "/vision/analyze", "model": "grok-4.3", "status_class": "2xx", "stream": "true"}, 1},
		{"grokgate_request_duration_seconds", nil, requests},
		{"grokgate_upstream_duration_seconds", nil, requests - 1}, // all but the refused one
		{"grokgate_gateway_overhead_seconds", nil, requests - 1},
		{"grokgate_time_to_first_token_seconds", map[string]string{"model": "grok-4.3"}, 3},
		{"grokgate_stream_chunk_gap_seconds", map[string]string{"model": "grok-4.3"}, -2}, // > 0, checked below
		{"grokgate_open_streams", map[string]string{"model": "grok-4.3"}, 0},
		{"grokgate_upstream_errors_total", map[string]string{"kind": "status"}, 2},
		{"grokgate_upstream_errors_total", map[string]string{"kind": "mid_stream"}, 1},
		{"grokgate_upstream_errors_total", map[string]string{"kind": "connect"}, 0},
		{"grokgate_upstream_errors_total", map[string]string{"kind": "timeout"}, 0},
		{"grokgate_rate_limit_refusals_total", map[string]string{"limit": "upstream", "source": "upstream"}, 1},
		{"grokgate_rate_limit_refusals_total", map[string]string{"source": "gateway"}, -1}, // no series at all
		{"grokgate_stream_fallbacks_total", map[string]string{"route": "/vision/analyze", "model": "grok-4.3"}, 1},
		{"grokgate_stream_fallbacks_total", nil, 1},
		{"grokgate_tokens_total", map[string]string{"kind": "prompt", "estimated": "false"}, float64(want.Prompt)},
		{"grokgate_tokens_total", map[string]string{"kind": "completion", "estimated": "false"}, float64(want.Completion)},
		{"grokgate_tokens_total", map[string]string{"kind": "reasoning", "estimated": "false"}, float64(want.CompletionDet.Reasoning)},
		{"grokgate_tokens_total", map[string]string{"kind": "cached", "estimated": "false"}, float64(want.PromptDet.Cached)},
		{"grokgate_usage_queue_depth", nil, -2},
		{"grokgate_usage_records_dropped_total", nil, 0},
	}
	for _, c := range checks {
		got := sample(fams, c.name, c.labels)
		if got == -1 && c.want == 0 && c.name == "grokgate_tokens_total" {
			got = 0 // a token kind never seen has no series
		}
		if c.want == -2 {
			if got <= 0 && c.name != "grokgate_usage_queue_depth" || got < 0 {
				t.Errorf("%s%v = %v, want a value", c.name, c.labels, got)
			}
			continue
		}
		if got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	// The two streams xAI did not finish (broken, cancelled) carry estimates.
	if got := sample(fams, "grokgate_tokens_total", map[string]string{"kind": "prompt", "estimated": "true"}); got <= 0 {
		t.Errorf("estimated prompt tokens %v, want > 0", got)
	}
	if fams["go_goroutines"] == nil {
		t.Error("no Go runtime metrics")
	}
	for _, l := range fams["grokgate_requests_total"].Metric[0].Label {
		if l.GetName() == "key_id" {
			t.Error("key_id label without GROKGATE_METRICS_KEY_LABELS")
		}
	}

	// Log lines are written in batches, within the flush interval.
	eventually(t, 5*time.Second, "an access-log line for every request", func() bool {
		log := g.Log.String()
		for id := range ids {
			if !strings.Contains(log, id) {
				return false
			}
		}
		return true
	})
	checkAccessLog(t, g.Log.String(), ids, key)

	// /metrics on the main listener: admin keys only.
	if r, _ := http.Get(g.URL + "/metrics"); r.StatusCode != 401 {
		t.Errorf("GET /metrics without a key: %d", r.StatusCode)
	}
	user := createKey(t, g, key)
	req, _ = http.NewRequest(http.MethodGet, g.URL+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+user)
	if r, _ := http.DefaultClient.Do(req); r.StatusCode != 403 {
		t.Errorf("GET /metrics with a user key: %d", r.StatusCode)
	}
	if f := scrape(t, g.URL+"/metrics", key); f["grokgate_requests_total"] == nil {
		t.Error("admin scrape of the main listener has no requests metric")
	}
	// pprof: on the metrics listener only.
	if r, _ := http.Get(metricsURL + "/debug/pprof/"); r.StatusCode != 200 {
		t.Errorf("pprof on the metrics listener: %d", r.StatusCode)
	}
	for _, k := range []string{"", key} {
		req, _ := http.NewRequest(http.MethodGet, g.URL+"/debug/pprof/", nil)
		if k != "" {
			req.Header.Set("Authorization", "Bearer "+k)
		}
		if r, _ := http.DefaultClient.Do(req); r.StatusCode != 404 {
			t.Errorf("pprof on the main listener: %d", r.StatusCode)
		}
	}
}

// checkAccessLog: one JSON line per request, with the documented fields,
// and neither the key nor the prompt anywhere in the log.
func checkAccessLog(t *testing.T, log string, ids map[string]int, secret string) {
	t.Helper()
	if strings.Contains(log, secret) || strings.Contains(log, secretWord) {
		t.Errorf("the log holds a key or prompt text")
	}
	lines := map[string]map[string]any{}
	for _, line := range strings.Split(log, "\n") {
		var e map[string]any
		if json.Unmarshal([]byte(line), &e) != nil || e["msg"] != "request" {
			continue
		}
		id, _ := e["request_id"].(string)
		if _, dup := lines[id]; dup {
			t.Errorf("two lines for %s", id)
		}
		lines[id] = e
	}
	if len(lines) != len(ids) {
		t.Errorf("%d access-log lines, want %d", len(lines), len(ids))
	}
	for id, status := range ids {
		e := lines[id]
		if e == nil {
			t.Errorf("no line for %s", id)
			continue
		}
		if e["status"] != float64(status) {
			t.Errorf("%s: status %v, want %d", id, e["status"], status)
		}
		fields := []string{"route", "outcome", "duration_ms", "bytes"}
		if status != 401 {
			fields = append(fields, "key_id", "key_prefix", "model", "stream", "fallback",
				"prompt_tokens", "completion_tokens", "reasoning_tokens", "cached_tokens", "upstream_ms")
		}
		if status == 200 {
			fields = append(fields, "upstream_id")
		}
		for _, f := range fields {
			if _, ok := e[f]; !ok {
				t.Errorf("%s (status %d) lacks %s: %v", id, status, f, e)
			}
		}
		if e["stream"] == true && status == 200 && e["fallback"] == false {
			if _, ok := e["ttfb_ms"]; !ok {
				t.Errorf("stream line lacks ttfb_ms: %v", e)
			}
		}
	}
}

// createKey makes a user key through the admin API.
func createKey(t *testing.T, g *gw, admin string) string {
	t.Helper()
	resp := g.post(t, "/admin/v1/keys", admin, `{"name":"metrics-reader"}`)
	defer resp.Body.Close()
	var k struct {
		Key string `json:"key"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&k); err != nil || k.Key == "" {
		t.Fatalf("create key: %d %v", resp.StatusCode, err)
	}
	return k.Key
}

// TestTracingExport: with the standard OTLP variable set, serve exports the
// spans of its requests over OTLP/HTTP (flushed at the latest on stop),
// and without it sends no traceparent upstream.
func TestTracingExport(t *testing.T) {
	got := make(chan string, 16)
	collector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- r.Method + " " + r.URL.Path
		io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusOK)
	}))
	defer collector.Close()
	g := startGW(t, map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": collector.URL})
	expectOK(t, g.post(t, "/api/v1/chat/completions", g.AdminKey, mixBody("hi", false)))
	if err := g.stop(t); err != nil {
		t.Fatal(err)
	}
	select {
	case req := <-got:
		if req != "POST /v1/traces" {
			t.Errorf("collector got %s", req)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no spans exported")
	}
}

func expectOK(t *testing.T, resp *http.Response) {
	t.Helper()
	defer resp.Body.Close()
	if b, _ := io.ReadAll(resp.Body); resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, b)
	}
}

// TestMetricsJunkModelsUnknown: over the running server, models xAI does
// not know are counted as "unknown" and take no model series, so a real
// model answered after a flood of junk names still gets its own.
func TestMetricsJunkModelsUnknown(t *testing.T) {
	g := startGW(t, nil)
	for i := range 120 {
		resp := g.post(t, "/api/v1/chat/completions", g.AdminKey, chatBodyModel("junk-"+strconv.Itoa(i)))
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	okBody(t, g.post(t, "/api/v1/chat/completions", g.AdminKey, chatBodyModel("grok-4.3")))
	fams := scrape(t, g.URL+"/metrics", g.AdminKey)
	models := map[string]float64{}
	for _, m := range fams["grokgate_requests_total"].GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == "model" {
				models[l.GetValue()] += m.GetCounter().GetValue()
			}
		}
	}
	if models["unknown"] != 120 || models["grok-4.3"] != 1 || models["other"] != 0 {
		t.Errorf("requests by model label: %v", models)
	}
}

func chatBodyModel(model string) string {
	return `{"model":"` + model + `","messages":[{"role":"user","content":"hi"}]}`
}
