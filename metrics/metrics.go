// Package metrics exposes grokgate's Prometheus metrics. It implements the
// observer interfaces that package gateway and package xai declare, on a
// registry it is given: there is no global state, so tests and several
// servers in one process each have their own.
package metrics

import (
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/grokgate/grokgate/gateway"
)

// Options tunes the metrics. The zero value is the default.
type Options struct {
	// KeyLabels adds a key_id label (the gateway key's id, never its secret)
	// to the per-key metrics. Off by default: every key multiplies the
	// series (GROKGATE_METRICS_KEY_LABELS=1).
	KeyLabels bool
	// MaxModels bounds the distinct values of the model label; models past it
	// are counted as "other". Clients choose the model string, so without a
	// bound anyone with a key could make series without end. 0 means 100.
	MaxModels int
}

// Latency buckets: gateway answers take milliseconds, reasoning models
// minutes.
var (
	durationBuckets = []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600}
	overheadBuckets = []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, 1}
	gapBuckets      = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 15, 60}
)

// Metrics holds every grokgate metric.
type Metrics struct {
	opts Options

	requests    *prometheus.CounterVec
	duration    *prometheus.HistogramVec
	upstream    *prometheus.HistogramVec
	overhead    *prometheus.HistogramVec
	ttft        *prometheus.HistogramVec
	gap         *prometheus.HistogramVec
	openStreams *prometheus.GaugeVec
	upErrors    *prometheus.CounterVec
	rateLimited *prometheus.CounterVec
	tokens      *prometheus.CounterVec
	fallbacks   *prometheus.CounterVec
	reg         prometheus.Registerer
	modelsMu    sync.Mutex
	models      map[string]struct{}
}

// New registers grokgate's metrics on reg.
func New(reg prometheus.Registerer, opts Options) (*Metrics, error) {
	if opts.MaxModels <= 0 {
		opts.MaxModels = 100
	}
	withKey := func(labels ...string) []string {
		if opts.KeyLabels {
			return append(labels, "key_id")
		}
		return labels
	}
	m := &Metrics{opts: opts, reg: reg, models: map[string]struct{}{}}
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "grokgate_requests_total",
		Help: "Requests answered, by route, requested model, status class (2xx, 4xx, 5xx; 499 is a client that left) and stream flag.",
	}, withKey("route", "model", "status_class", "stream"))
	m.duration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "grokgate_request_duration_seconds", Buckets: durationBuckets,
		Help: "Time from a request's arrival to its last byte, by route, requested model and stream flag.",
	}, []string{"route", "model", "stream"})
	m.upstream = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "grokgate_upstream_duration_seconds", Buckets: durationBuckets,
		Help: "Time spent on the xAI exchange of a request (retries included), from sending it to reading the last byte of xAI's answer, by route and requested model.",
	}, []string{"route", "model"})
	m.overhead = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "grokgate_gateway_overhead_seconds", Buckets: overheadBuckets,
		Help: "Time a request that called xAI spent in grokgate itself: its duration minus the xAI exchange.",
	}, []string{"route"})
	m.ttft = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "grokgate_time_to_first_token_seconds", Buckets: durationBuckets,
		Help: "For relayed streams: time from the request's arrival to the first xAI event reaching the client, by requested model.",
	}, []string{"model"})
	m.gap = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "grokgate_stream_chunk_gap_seconds", Buckets: gapBuckets,
		Help: "For relayed streams: time between consecutive xAI events, by requested model.",
	}, []string{"model"})
	m.openStreams = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "grokgate_open_streams",
		Help: "xAI streams being relayed right now, by requested model.",
	}, []string{"model"})
	m.upErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "grokgate_upstream_errors_total",
		Help: "Failed xAI exchanges by kind: connect (no answer: connection failed or broke), status (each attempt xAI answered with 429, 5xx, a rejected upstream key, or its 200 with a JSON error), timeout (xAI did not answer or went silent within the gateway's timeouts), mid_stream (a stream xAI began ended with an error event or without [DONE]).",
	}, []string{"kind"})
	m.rateLimited = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "grokgate_rate_limit_refusals_total",
		Help: "Requests refused for a rate limit: source=gateway for grokgate's own limits (limit names which), source=upstream for each 429 from xAI (limit=upstream).",
	}, withKey("limit", "source"))
	m.tokens = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "grokgate_tokens_total",
		Help: "Tokens of chat requests by kind (prompt, completion, reasoning, cached; cached is part of prompt) and requested model; estimated=true where xAI's usage never came and grokgate estimated it.",
	}, withKey("kind", "model", "estimated"))
	m.fallbacks = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "grokgate_stream_fallbacks_total",
		Help: "Stream requests answered without an upstream stream (image input, GROKGATE_VISION_STREAM emulate or json), by route and requested model.",
	}, []string{"route", "model"})
	for _, c := range []prometheus.Collector{m.requests, m.duration, m.upstream, m.overhead, m.ttft, m.gap,
		m.openStreams, m.upErrors, m.rateLimited, m.tokens, m.fallbacks} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	// Make the error kinds and sources visible at zero, so rate() and
	// alerts work before the first failure.
	for _, k := range []string{"connect", "status", "timeout", "mid_stream"} {
		m.upErrors.WithLabelValues(k)
	}
	return m, nil
}

// UsageQueue reports the usage recorder's state; package usage's Recorder
// has it through a small adapter in main.
type UsageQueue interface {
	// Depth is the number of records waiting to be written.
	Depth() int64
	// Dropped is the number of records dropped since the start.
	Dropped() int64
}

// WatchUsage exports the usage recorder's queue depth and dropped records,
// read at scrape time.
func (m *Metrics) WatchUsage(q UsageQueue) error {
	if err := m.reg.Register(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "grokgate_usage_queue_depth",
		Help: "Usage records waiting to be written to the database.",
	}, func() float64 { return float64(q.Depth()) })); err != nil {
		return err
	}
	return m.reg.Register(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "grokgate_usage_records_dropped_total",
		Help: "Usage records dropped because the queue stayed full or the recorder was closed (each is logged in full).",
	}, func() float64 { return float64(q.Dropped()) }))
}

// UsageSpool reports the usage recorder's spool: records written to local
// disk because the database did not take them, replayed from there, and
// refused by the database as invalid (dead letters).
type UsageSpool interface {
	Spooled() int64
	Replayed() int64
	DeadLettered() int64
	// SpoolPending is the number of records waiting in the spool now.
	SpoolPending() int64
}

// WatchSpool exports the usage spool's counters, read at scrape time.
func (m *Metrics) WatchSpool(s UsageSpool) error {
	for _, c := range []struct {
		name, help string
		f          func() int64
	}{
		{"grokgate_usage_spooled_records_total", "Usage records written to the local spool because the database did not take them.", s.Spooled},
		{"grokgate_usage_replayed_records_total", "Usage records written from the local spool to the database.", s.Replayed},
		{"grokgate_usage_dead_letter_records_total", "Usage records the database refused as invalid, kept in the spool's dead-letter file.", s.DeadLettered},
	} {
		f := c.f
		if err := m.reg.Register(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: c.name, Help: c.help},
			func() float64 { return float64(f()) })); err != nil {
			return err
		}
	}
	return m.reg.Register(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "grokgate_usage_spool_pending_records",
		Help: "Usage records waiting in the local spool for the database.",
	}, func() float64 { return float64(s.SpoolPending()) }))
}

// model bounds the model label's values. A model gets a series of its own
// only once upstream has known it (known: it answered a request for it);
// until then it is "unknown", so junk names, which xAI refuses, never take
// the slots that new real models need. Past MaxModels known models, the
// rest are "other".
func (m *Metrics) model(name string, known bool) string {
	m.modelsMu.Lock()
	defer m.modelsMu.Unlock()
	if _, ok := m.models[name]; ok || name == "" {
		return name
	}
	if !known {
		return "unknown"
	}
	if len(m.models) >= m.opts.MaxModels {
		return "other"
	}
	m.models[name] = struct{}{}
	return name
}

func (m *Metrics) keyed(keyID string, labels ...string) []string {
	if m.opts.KeyLabels {
		return append(labels, keyID)
	}
	return labels
}

func statusClass(status int) string {
	if status < 100 || status > 599 {
		return "other"
	}
	return strconv.Itoa(status/100) + "xx"
}

// Request implements gateway.Observer.
func (m *Metrics) Request(st gateway.RequestStats) {
	model := m.model(st.Model, st.Status >= 200 && st.Status < 300)
	stream := strconv.FormatBool(st.Stream)
	m.requests.WithLabelValues(m.keyed(st.KeyID, st.Route, model, statusClass(st.Status), stream)...).Inc()
	m.duration.WithLabelValues(st.Route, model, stream).Observe(st.Duration.Seconds())
	if st.CalledUpstream {
		m.upstream.WithLabelValues(st.Route, model).Observe(st.Upstream.Seconds())
		m.overhead.WithLabelValues(st.Route).Observe(max(st.Duration-st.Upstream, 0).Seconds())
	}
	if st.Fallback {
		m.fallbacks.WithLabelValues(st.Route, model).Inc()
	}
	if u := st.Usage; u != nil {
		est := strconv.FormatBool(u.Estimated)
		for _, t := range []struct {
			kind string
			n    int64
		}{{"prompt", u.PromptTokens}, {"completion", u.CompletionTokens}, {"reasoning", u.ReasoningTokens}, {"cached", u.CachedTokens}} {
			if t.n > 0 {
				m.tokens.WithLabelValues(m.keyed(st.KeyID, t.kind, model, est)...).Add(float64(t.n))
			}
		}
	}
}

// UpstreamError implements gateway.Observer.
func (m *Metrics) UpstreamError(kind string) { m.upErrors.WithLabelValues(kind).Inc() }

// RateLimited implements gateway.Observer: a refusal by grokgate's own
// limiter, limit naming which limit refused.
func (m *Metrics) RateLimited(limit, keyID string) {
	m.rateLimited.WithLabelValues(m.keyed(keyID, limit, "gateway")...).Inc()
}

// AttemptFailed implements xai.Observer: one upstream attempt that failed
// on xAI's side (kind connect or status).
func (m *Metrics) AttemptFailed(kind string, status int) {
	m.upErrors.WithLabelValues(kind).Inc()
	if status == 429 {
		// The xai client does not know the gateway key; upstream limits
		// are per xAI key anyway.
		m.rateLimited.WithLabelValues(m.keyed("", "upstream", "upstream")...).Inc()
	}
}

// Stream implements gateway.Observer. The label lookups happen here, once
// per stream, so the per-event calls only touch atomics.
func (m *Metrics) Stream(model string) gateway.StreamObserver {
	model = m.model(model, true) // xAI began streaming an answer
	open := m.openStreams.WithLabelValues(model)
	open.Inc()
	return &stream{ttft: m.ttft.WithLabelValues(model), gap: m.gap.WithLabelValues(model), open: open}
}

type stream struct {
	ttft, gap prometheus.Observer
	open      prometheus.Gauge
}

func (s *stream) FirstEvent(d time.Duration) { s.ttft.Observe(d.Seconds()) }
func (s *stream) Event(gap time.Duration)    { s.gap.Observe(gap.Seconds()) }
func (s *stream) End()                       { s.open.Dec() }
