package gateway

import (
	"context"
	"net/http"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/grokgate/grokgate/usage"
)

// Tracing: with Config.Tracer set, every request gets a server span (which
// continues the caller's trace when it sends traceparent) and every xAI
// exchange a client span under it, with OpenTelemetry's GenAI attributes.
// With no tracer nothing here runs: no middleware, no spans.

// GenAI semantic-convention attribute keys.
const (
	attrGenAISystem       = attribute.Key("gen_ai.system")
	attrGenAIOperation    = attribute.Key("gen_ai.operation.name")
	attrGenAIRequestModel = attribute.Key("gen_ai.request.model")
	attrGenAIRespModel    = attribute.Key("gen_ai.response.model")
	attrGenAIRespID       = attribute.Key("gen_ai.response.id")
	attrGenAIInputTokens  = attribute.Key("gen_ai.usage.input_tokens")
	attrGenAIOutputTokens = attribute.Key("gen_ai.usage.output_tokens")
)

// withTracing starts each request's server span; installed only with a
// tracer.
func (s *Server) withTracing(next http.Handler) http.Handler {
	prop := propagation.TraceContext{}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := prop.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
		ctx, span := s.cfg.Tracer.Start(ctx, r.Method, trace.WithSpanKind(trace.SpanKindServer),
			trace.WithAttributes(attribute.String("http.request.method", r.Method), attribute.String("url.path", r.URL.Path)))
		defer span.End()
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// genAIOperation names the GenAI operation of an upstream path, "" for
// paths that are none.
func genAIOperation(path string) string {
	switch path {
	case "/chat/completions", "/vision/analyze":
		return "chat"
	case "/images/generations":
		return "generate_content"
	}
	return ""
}

// endServerSpan names the server span after its route and adds what the
// request learned; the span itself ends in withTracing.
func (s *Server) endServerSpan(ctx context.Context, method string, info *requestInfo, st RequestStats) {
	span := trace.SpanFromContext(ctx)
	span.SetName(method + " " + st.Route)
	attrs := []attribute.KeyValue{
		attribute.String("http.route", st.Route),
		attribute.Int("http.response.status_code", st.Status),
		attribute.String("grokgate.request_id", info.id),
		attribute.String("grokgate.outcome", string(st.Outcome)),
	}
	if st.KeyID != "" {
		attrs = append(attrs, attribute.String("grokgate.key_id", st.KeyID))
	}
	if info.model != "" {
		attrs = append(attrs, attrGenAISystem.String("xai"), attrGenAIRequestModel.String(info.model),
			attribute.Bool("grokgate.stream", st.Stream), attribute.Bool("grokgate.fallback", st.Fallback))
		if op := genAIOperation(st.Route); op != "" {
			attrs = append(attrs, attrGenAIOperation.String(op))
		}
	}
	if rec := info.rec; rec != nil {
		if rec.Model != "" {
			attrs = append(attrs, attrGenAIRespModel.String(rec.Model))
		}
		if rec.UpstreamID != "" {
			attrs = append(attrs, attrGenAIRespID.String(rec.UpstreamID))
		}
		if rec.PromptTokens > 0 || rec.CompletionTokens > 0 || rec.ReasoningTokens > 0 {
			attrs = append(attrs, attrGenAIInputTokens.Int64(rec.PromptTokens),
				attrGenAIOutputTokens.Int64(rec.CompletionTokens+rec.ReasoningTokens),
				attribute.Bool("grokgate.tokens_estimated", rec.Estimated))
		}
	}
	span.SetAttributes(attrs...)
	if st.Status >= 500 {
		span.SetStatus(codes.Error, info.errMsg)
	}
}

// clientSpan is the span of one upstream exchange; its zero value (tracing
// off) does nothing.
type clientSpan struct{ span trace.Span }

// spanEnd is what the exchange learned by the time its body was closed.
type spanEnd struct {
	status int
	m      *meter
}

func (s *Server) startClientSpan(ctx context.Context, method, path string, info *requestInfo) (context.Context, clientSpan) {
	if s.cfg.Tracer == nil {
		return ctx, clientSpan{}
	}
	name := method + " " + path
	attrs := []attribute.KeyValue{attribute.String("http.request.method", method), attribute.String("url.path", path),
		attrGenAISystem.String("xai")}
	if op := genAIOperation(path); op != "" {
		name = op
		attrs = append(attrs, attrGenAIOperation.String(op))
		if info.model != "" {
			name += " " + info.model
			attrs = append(attrs, attrGenAIRequestModel.String(info.model))
		}
	}
	ctx, span := s.cfg.Tracer.Start(ctx, name, trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(attrs...))
	return ctx, clientSpan{span: span}
}

func (c clientSpan) end(e *spanEnd, err error) {
	if c.span == nil {
		return
	}
	defer c.span.End()
	if err != nil {
		c.span.RecordError(err)
		c.span.SetStatus(codes.Error, err.Error())
		return
	}
	c.span.SetAttributes(attribute.Int("http.response.status_code", e.status))
	if e.status >= 400 {
		c.span.SetStatus(codes.Error, http.StatusText(e.status))
	}
	if model, id, u, ok := e.m.reported(); ok {
		c.span.SetAttributes(attrGenAIRespModel.String(model), attrGenAIRespID.String(id),
			attrGenAIInputTokens.Int64(u.Prompt), attrGenAIOutputTokens.Int64(u.Completion+u.Reasoning))
	}
}

// reported returns the usage xAI reported for the request, if it did.
func (m *meter) reported() (model, id string, u usage.Usage, ok bool) {
	if m == nil {
		return "", "", u, false
	}
	if res := m.d.result(); res.haveUsage {
		return res.model, res.id, res.usage, true
	}
	if m.hasBodyUsage {
		return m.model, m.id, m.bodyUsage, true
	}
	return "", "", u, false
}
