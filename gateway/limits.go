package gateway

import (
	"context"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/grokgate/grokgate"
	"github.com/grokgate/grokgate/apierror"
)

// Limiter decides per-key limits; package ratelimit (one replica) and
// package redis (many) implement it.
type Limiter interface {
	// Admit checks every limit of a.Limits and, if all allow, takes the
	// request's share of each, atomically.
	Admit(ctx context.Context, a grokgate.Admission) (grokgate.Verdict, error)
	// Settle ends an admitted request: its reservation becomes its real
	// usage, its stream slot is freed, its cost counts against the budgets.
	Settle(ctx context.Context, a grokgate.Admission, s grokgate.Settlement) error
}

// LimitPolicy says what happens when the limiter fails (Redis unreachable).
type LimitPolicy string

const (
	// LimitAllow lets requests through unlimited while the limiter fails.
	LimitAllow LimitPolicy = "allow"
	// LimitDeny refuses them with 503 limiter_unavailable.
	LimitDeny LimitPolicy = "deny"
)

// limitState is one limited request's admission, and what it used, filled
// by the meter's settle.
type limitState struct {
	admitted bool
	detached bool // a runner releases it when its generation ends (runner.go)
	adm      grokgate.Admission
	used     grokgate.Settlement
}

func limitFrom(ctx context.Context) *limitState { return infoFrom(ctx).limit }

// record takes the real usage from the request's usage record.
func (st *limitState) record(rec grokgate.Record) {
	if st != nil {
		st.used = grokgate.Settlement{Tokens: rec.PromptTokens + rec.CompletionTokens + rec.ReasoningTokens, CostTicks: rec.CostTicks}
	}
}

// limiterHealth counts limiter failures and logs when they start and stop,
// not once per request.
type limiterHealth struct {
	failing  atomic.Bool
	failures atomic.Int64
}

// limitChecker is a Limiter that can tell, taking nothing, whether a
// key's request would be refused by the parts of its limits that do not
// depend on the body (requests per minute, budgets): package ratelimit.
type limitChecker interface {
	Check(ctx context.Context, a grokgate.Admission) (grokgate.Verdict, error)
}

// precheck refuses, before its body is read, a request of a route admitted
// late whose key is already over its requests-per-minute limit or budget;
// it answers 429 itself and returns false. Without it a key over its limit
// still had every body read, decoded and re-encoded before the refusal.
func (s *Server) precheck(w http.ResponseWriter, r *http.Request) bool {
	lc, ok := s.cfg.Limiter.(limitChecker)
	info := infoFrom(r.Context())
	if !ok || info.key == nil {
		return true
	}
	lim := info.key.Limits.Resolve(s.cfg.DefaultLimits)
	if lim.RPM <= 0 && lim.BudgetTicksPerDay <= 0 && lim.BudgetTicksPerMonth <= 0 {
		return true
	}
	v, err := lc.Check(r.Context(), grokgate.Admission{Key: info.key.ID, ID: info.id, Limits: lim})
	if err != nil || v.Allowed {
		return true // Admit decides, and applies the failure policy
	}
	w.Header().Set("Retry-After", strconv.FormatInt(int64((v.RetryAfter+time.Second-1)/time.Second), 10))
	if r.ContentLength != 0 {
		w.Header().Set("Connection", "close") // the body is not read
	}
	s.rateLimited(string(v.Refused), info.key)
	s.fail(w, r, refusal(lim, v), nil)
	return false
}

// admitChat admits a parsed chat request, reserving its worst case
// (chatNeed): the prompt estimate (made by parseChat) plus n times its
// completion cap and reasoning allowance, in tokens and in cost. An output
// cap over the model's context window is refused with 400 first.
func (s *Server) admitChat(w http.ResponseWriter, r *http.Request, req parsedChat) bool {
	m := s.modelPrices(req.model)
	if e := outputTooLarge(m, req.model, req.maxParam, req.maxTokens); e != nil {
		s.fail(w, r, e, nil)
		return false
	}
	return s.admit(w, r, req.stream, func() (int64, int64) { return chatNeed(m, req, s.cfg.ReasoningTokens) })
}

// admit asks the limiter; on refusal it answers 429 itself and returns false.
// need, the request's worst case in tokens and in cost, is called only when
// the key has a token limit or a budget.
func (s *Server) admit(w http.ResponseWriter, r *http.Request, stream bool, need func() (tokens, cost int64)) bool {
	st := limitFrom(r.Context())
	info := infoFrom(r.Context())
	if st == nil || info.key == nil {
		return true
	}
	lim := info.key.Limits.Resolve(s.cfg.DefaultLimits)
	if !lim.Any() {
		return true
	}
	a := grokgate.Admission{Key: info.key.ID, ID: info.id, Limits: lim, Stream: stream}
	budget := lim.BudgetTicksPerDay > 0 || lim.BudgetTicksPerMonth > 0
	if (lim.TPM > 0 || budget) && need != nil {
		tokens, cost := need()
		if lim.TPM > 0 {
			a.Tokens = tokens
		}
		if budget {
			a.Cost = cost
		}
	}
	v, err := s.cfg.Limiter.Admit(r.Context(), a)
	if err != nil {
		s.limiterFailed(err)
		if s.cfg.LimitOnError == LimitDeny {
			w.Header().Set("Retry-After", "1")
			s.fail(w, r, &apierror.Error{Status: http.StatusServiceUnavailable, Type: apierror.TypeAPI, Code: "limiter_unavailable",
				Message: "grokgate cannot check this key's rate limits right now; try again shortly"}, err)
			return false
		}
		// allow: unlimited, but settled all the same, so the limiter
		// can count the cost once it works again.
		st.admitted, st.adm = true, a
		return true
	}
	s.limiterOK()
	setLimitHeaders(w.Header(), lim, v)
	if !v.Allowed {
		w.Header().Set("Retry-After", strconv.FormatInt(int64((v.RetryAfter+time.Second-1)/time.Second), 10))
		e := refusal(lim, v)
		s.rateLimited(string(v.Refused), info.key)
		s.fail(w, r, e, nil)
		return false
	}
	st.admitted, st.adm = true, a
	return true
}

// release settles an admitted request. It runs after the handler, on every
// path: done, upstream error, client gone, panic.
func (s *Server) release(r *http.Request, st *limitState) {
	if !st.detached {
		s.releaseAdmitted(r, st)
	}
}

// releaseAdmitted is release, also for a detached request's runner.
func (s *Server) releaseAdmitted(r *http.Request, st *limitState) {
	if !st.admitted {
		return
	}
	if err := s.cfg.Limiter.Settle(r.Context(), st.adm, st.used); err != nil {
		// Redis slots expire on their own; the usage is lost to the window.
		s.limiterFailed(err)
	} else {
		s.limiterOK()
	}
}

func (s *Server) limiterFailed(err error) {
	n := s.limits.failures.Add(1)
	if !s.limits.failing.Swap(true) {
		s.log.Error("rate limiter unavailable; applying GROKGATE_RATELIMIT_ON_ERROR", "policy", string(s.cfg.LimitOnError),
			"err", err, "failures_total", n)
	}
}

func (s *Server) limiterOK() {
	if s.limits.failing.Load() && s.limits.failing.Swap(false) {
		s.log.Info("rate limiter recovered", "failures_total", s.limits.failures.Load())
	}
}

// setLimitHeaders writes OpenAI's x-ratelimit-* headers for the limits the
// key has.
//
// The values are cut from one string and the header slices from one array
// (each header gets a full slice expression of its own element, so an Add
// copies), since every limited request pays for them.
func setLimitHeaders(h http.Header, lim grokgate.Limits, v grokgate.Verdict) {
	var (
		buf  [160]byte
		ends [6]int
		keys [6]string
		n    int
	)
	b := buf[:0]
	group := func(limitKey, remainingKey, resetKey string, limit, remaining int64, reset time.Duration) {
		b = strconv.AppendInt(b, limit, 10)
		keys[n], ends[n] = limitKey, len(b)
		b = strconv.AppendInt(b, remaining, 10)
		keys[n+1], ends[n+1] = remainingKey, len(b)
		b = appendReset(b, reset)
		keys[n+2], ends[n+2] = resetKey, len(b)
		n += 3
	}
	if lim.RPM > 0 {
		group("X-Ratelimit-Limit-Requests", "X-Ratelimit-Remaining-Requests", "X-Ratelimit-Reset-Requests",
			lim.RPM, v.RequestsRemaining, v.RequestsReset)
	}
	if lim.TPM > 0 {
		group("X-Ratelimit-Limit-Tokens", "X-Ratelimit-Remaining-Tokens", "X-Ratelimit-Reset-Tokens",
			lim.TPM, v.TokensRemaining, v.TokensReset)
	}
	if n == 0 {
		return
	}
	all := string(b)
	vals := make([]string, n)
	start := 0
	for i := range n {
		vals[i] = all[start:ends[i]]
		start = ends[i]
		h[keys[i]] = vals[i : i+1 : i+1]
	}
}

// resetText formats a reset as OpenAI does ("1s", "6m0s", "20ms"): Go's
// duration syntax, rounded up to the millisecond.
func resetText(d time.Duration) string {
	return string(appendReset(nil, d))
}

func appendReset(b []byte, d time.Duration) []byte {
	if d <= 0 {
		return append(b, "0s"...)
	}
	// String is inlined, so appending it allocates nothing.
	return append(b, ((d + time.Millisecond - 1) / time.Millisecond * time.Millisecond).String()...)
}

// refusal is the 429 for a limit; its code says which limit, and always
// starts with rate_limit_ or is budget_exceeded, unlike xAI's own 429s.
func refusal(lim grokgate.Limits, v grokgate.Verdict) *apierror.Error {
	e := &apierror.Error{Status: http.StatusTooManyRequests, Type: apierror.TypeRateLimit}
	wait := resetText(v.RetryAfter)
	switch v.Refused {
	case grokgate.LimitRequests:
		e.Code = "rate_limit_requests"
		e.Message = "Rate limit reached for this key: " + itoa(lim.RPM) + " requests per minute. Try again in " + wait + "."
	case grokgate.LimitTokens:
		e.Code = "rate_limit_tokens"
		e.Message = "Rate limit reached for this key: " + itoa(lim.TPM) + " tokens per minute (a request reserves its prompt plus max_tokens, and a reasoning allowance on reasoning models, until it ends). Try again in " + wait + ", or lower max_tokens."
	case grokgate.LimitConcurrency:
		e.Code = "rate_limit_concurrency"
		e.Message = "This key already has " + itoa(lim.MaxStreams) + " streams open, its limit. Try again when one has ended."
	default:
		e.Code = "budget_exceeded"
		e.Message = "This key has spent its budget for the period. Try again in " + wait + ", or ask the grokgate operator to raise it."
	}
	return e
}
