package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/grokgate/grokgate/metrics"
	ledger "github.com/grokgate/grokgate/usage"
)

// obsConfig is the observability part of `grokgate serve`'s settings.
type obsConfig struct {
	metrics     bool   // GROKGATE_METRICS: serve metrics at all
	metricsAddr string // GROKGATE_METRICS_ADDR: separate listener for /metrics and pprof
	keyLabels   bool   // GROKGATE_METRICS_KEY_LABELS: key_id labels
	// The OTLP endpoint, from the standard OpenTelemetry variables; ""
	// leaves tracing off.
	otlpEndpoint string
	serviceName  string
}

func (s *settings) Bool(p *bool, flagName, envName string, def bool, help string) {
	v := def
	if raw := s.getenv(envName); raw != "" {
		b, err := strconv.ParseBool(raw)
		if err != nil {
			s.errs = append(s.errs, fmt.Errorf("%s=%q is not a boolean; write 1 or 0", envName, raw))
		} else {
			v = b
		}
	}
	s.fs.BoolVar(p, flagName, v, help+envHelp(envName))
}

func parseObs(s *settings, c *obsConfig) {
	s.Bool(&c.metrics, "metrics", "GROKGATE_METRICS", true, "serve Prometheus metrics (GET /metrics for admin keys, and on --metrics-addr)")
	s.String(&c.metricsAddr, "metrics-addr", "GROKGATE_METRICS_ADDR", "", "separate HOST:PORT serving /metrics without auth and /debug/pprof; keep it private")
	s.Bool(&c.keyLabels, "metrics-key-labels", "GROKGATE_METRICS_KEY_LABELS", false, "label per-key metrics with the key id (one series set per key)")
	// OpenTelemetry's own variables, so the usual deployment recipes work.
	if s.getenv("OTEL_SDK_DISABLED") != "true" && s.getenv("OTEL_TRACES_EXPORTER") != "none" {
		if ep := s.getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"); ep != "" {
			c.otlpEndpoint = ep // used as given, path included
		} else if ep := s.getenv("OTEL_EXPORTER_OTLP_ENDPOINT"); ep != "" {
			c.otlpEndpoint = strings.TrimRight(ep, "/") + "/v1/traces"
		}
	}
	c.serviceName = s.env("OTEL_SERVICE_NAME", "grokgate")
}

func (c *obsConfig) check(s *settings) {
	if c.metricsAddr != "" {
		_, port, err := net.SplitHostPort(c.metricsAddr)
		s.check(err == nil && port != "", "GROKGATE_METRICS_ADDR/--metrics-addr %q must be HOST:PORT, such as 127.0.0.1:9090", c.metricsAddr)
		s.check(c.metrics, "GROKGATE_METRICS_ADDR/--metrics-addr is set but metrics are off (GROKGATE_METRICS=0)")
	}
}

// usageQueue shows the usage recorder to the metrics.
type usageQueue struct{ r *ledger.Recorder }

func (q usageQueue) Depth() int64   { return q.r.Stats().Queued }
func (q usageQueue) Dropped() int64 { return q.r.Stats().Dropped }

func (q usageQueue) Spooled() int64      { return q.r.Stats().Spooled }
func (q usageQueue) Replayed() int64     { return q.r.Stats().Replayed }
func (q usageQueue) DeadLettered() int64 { return q.r.Stats().DeadLettered }
func (q usageQueue) SpoolPending() int64 { return q.r.Stats().SpoolPending }

// newMetrics makes the registry and metrics of one server, with the Go and
// process collectors beside grokgate's own.
func newMetrics(c obsConfig, recorder *ledger.Recorder) (*prometheus.Registry, *metrics.Metrics, error) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m, err := metrics.New(reg, metrics.Options{KeyLabels: c.keyLabels})
	if err != nil {
		return nil, nil, err
	}
	if err := m.WatchUsage(usageQueue{recorder}); err != nil {
		return nil, nil, err
	}
	if err := m.WatchSpool(usageQueue{recorder}); err != nil {
		return nil, nil, err
	}
	return reg, m, nil
}

// serveMetrics runs the metrics listener: /metrics without auth and the
// pprof handlers, so a live instance can be profiled without a restart.
// pprof is never on the main listener: profiles expose internals and cost
// CPU, so they belong on an address only operators reach.
// It returns the listener's origin (http://HOST:PORT).
func serveMetrics(ctx context.Context, addr string, metricsHandler http.Handler, stdout io.Writer, log *slog.Logger) (origin string, stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", nil, fmt.Errorf("listen on %s: %w (set GROKGATE_METRICS_ADDR or --metrics-addr to a free HOST:PORT)", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", metricsHandler)
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	fmt.Fprintf(stdout, "grokgate metrics and pprof on http://%s (/metrics, /debug/pprof/)\n", ln.Addr())
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics listener stopped", "err", err)
		}
	}()
	return "http://" + ln.Addr().String(), func() { srv.Close() }, nil
}

// newTracer sets up OTLP/HTTP trace export when an endpoint is configured.
// It returns a nil tracer otherwise, which turns tracing off in the gateway
// at no cost. shutdown flushes the spans still buffered.
func newTracer(ctx context.Context, c obsConfig) (trace.Tracer, func(context.Context) error, error) {
	if c.otlpEndpoint == "" {
		return nil, func(context.Context) error { return nil }, nil
	}
	exp, err := otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(c.otlpEndpoint))
	if err != nil {
		return nil, nil, fmt.Errorf("OpenTelemetry exporter for %s: %w", c.otlpEndpoint, err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp),
		sdktrace.WithResource(resource.NewSchemaless(attribute.String("service.name", c.serviceName))))
	return tp.Tracer("github.com/grokgate/grokgate"), tp.Shutdown, nil
}

// injectTraceparent is the xai client's header hook: it carries the current
// span to xAI as a W3C traceparent header.
func injectTraceparent(ctx context.Context, h http.Header) {
	propagation.TraceContext{}.Inject(ctx, propagation.HeaderCarrier(h))
}
