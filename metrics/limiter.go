package metrics

import "github.com/prometheus/client_golang/prometheus"

// Limiter holds the shared (Redis) limiter's metrics; it implements the
// redis package's Observer.
type Limiter struct {
	state *prometheus.GaugeVec
	opens prometheus.Counter
}

// breakerStates are the states of the limiter's circuit breaker.
var breakerStates = []string{"closed", "open", "half_open"}

// NewLimiter registers the limiter's metrics on reg.
func NewLimiter(reg prometheus.Registerer) (*Limiter, error) {
	l := &Limiter{
		state: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "grokgate_ratelimit_breaker_state",
			Help: "The Redis limiter's circuit breaker: 1 for its current state (closed: Redis is called; open: calls fail at once and GROKGATE_RATELIMIT_ON_ERROR decides; half_open: a probe is asking Redis), 0 for the others.",
		}, []string{"state"}),
		opens: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "grokgate_ratelimit_breaker_opens_total",
			Help: "Times the Redis limiter's circuit breaker opened after Redis failed.",
		}),
	}
	for _, c := range []prometheus.Collector{l.state, l.opens} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	l.LimiterBreaker("closed")
	return l, nil
}

// LimiterBreaker implements redis.Observer.
func (l *Limiter) LimiterBreaker(state string) {
	for _, s := range breakerStates {
		v := 0.0
		if s == state {
			v = 1
		}
		l.state.WithLabelValues(s).Set(v)
	}
	if state == "open" {
		l.opens.Inc()
	}
}
