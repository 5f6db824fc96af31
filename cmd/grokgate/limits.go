package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/grokgate/grokgate"
	"github.com/grokgate/grokgate/gateway"
	"github.com/grokgate/grokgate/metrics"
	"github.com/grokgate/grokgate/ratelimit"
	"github.com/grokgate/grokgate/redis"
)

// limitConfig is the limits part of `grokgate serve`'s configuration.
type limitConfig struct {
	defaults grokgate.Limits
	redisURL string
	// redisPrefix starts every Redis key grokgate writes (GROKGATE_REDIS_PREFIX);
	// replicas that share limits and streams share it.
	redisPrefix string
	timeout     time.Duration
	onError     string
}

// limitFlags binds the server-wide defaults (GROKGATE_DEFAULT_RPM, ...),
// GROKGATE_REDIS_URL and GROKGATE_RATELIMIT_ON_ERROR.
func limitFlags(s *settings, c *limitConfig) {
	for _, f := range c.defaults.Fields() {
		name := strings.ReplaceAll(f.Name, "_", "-")
		s.Int64(f.V, "default-"+name, "GROKGATE_DEFAULT_"+strings.ToUpper(f.Name), 0,
			"limit for keys that set no "+f.Name+" of their own; 0 is unlimited")
	}
	// The URL may carry a password: env only, like XAI_API_KEY.
	c.redisURL = strings.TrimSpace(s.getenv("GROKGATE_REDIS_URL"))
	s.String(&c.redisPrefix, "redis-prefix", "GROKGATE_REDIS_PREFIX", "grokgate:",
		"start of every Redis key grokgate writes; replicas that share limits and streams use the same")
	s.Duration(&c.timeout, "redis-timeout", "GROKGATE_REDIS_TIMEOUT", time.Second,
		"longest one limiter call to Redis may take before GROKGATE_RATELIMIT_ON_ERROR decides")
	s.String(&c.onError, "ratelimit-on-error", "GROKGATE_RATELIMIT_ON_ERROR", string(gateway.LimitAllow),
		"when Redis cannot be reached: allow (unlimited) or deny (503)")
}

func (c *limitConfig) check(s *settings) {
	for _, f := range c.defaults.Fields() {
		s.check(*f.V >= 0, "GROKGATE_DEFAULT_%s must be 0 (unlimited) or more, got %d", strings.ToUpper(f.Name), *f.V)
	}
	s.check(c.timeout > 0, "GROKGATE_REDIS_TIMEOUT/--redis-timeout must be positive, got %s", c.timeout)
	s.check(c.onError == string(gateway.LimitAllow) || c.onError == string(gateway.LimitDeny),
		"GROKGATE_RATELIMIT_ON_ERROR/--ratelimit-on-error must be allow or deny, got %q", c.onError)
	if c.redisURL != "" && redis.ParseURL(c.redisURL) != nil {
		s.errs = append(s.errs, errors.New("GROKGATE_REDIS_URL is not a valid Redis URL; write it like redis://HOST:6379/0"))
	}
}

// newLimiter returns the Redis limiter when GROKGATE_REDIS_URL is set, the
// in-memory one otherwise, and what closes it. Both take budgets from
// ledger where they have none (a restart; Redis lost them); the Redis one
// reports its circuit breaker's state as metrics on reg (nil: no metrics).
func newLimiter(ctx context.Context, c limitConfig, log *slog.Logger, ledger redis.Ledger, reg prometheus.Registerer) (gateway.Limiter, func(), error) {
	if c.redisURL == "" {
		return ratelimit.New(time.Now, 0).WithLedger(ledger), func() {}, nil
	}
	opt := redis.Options{Prefix: c.redisPrefix + "rl:", Timeout: c.timeout, Ledger: ledger, Log: log}
	if reg != nil {
		m, err := metrics.NewLimiter(reg)
		if err != nil {
			return nil, nil, err
		}
		opt.Observer = m
	}
	l, err := redis.New(c.redisURL, opt)
	if err != nil {
		return nil, nil, err
	}
	// Not fatal: the failure policy covers a Redis that is down at start.
	if err := l.Ping(ctx); err != nil {
		log.Warn("Redis does not answer yet; GROKGATE_RATELIMIT_ON_ERROR applies until it does", "policy", c.onError, "err", err)
	} else {
		log.Info("rate limits shared through Redis")
	}
	return l, func() { l.Close() }, nil
}

// describeKeyLimits renders a key's own limits for the CLI.
func describeKeyLimits(l grokgate.Limits) string {
	var b strings.Builder
	for _, f := range l.Fields() {
		switch {
		case *f.V > 0:
			fmt.Fprintf(&b, ", %s %d", f.Name, *f.V)
		case *f.V == grokgate.NoLimit:
			fmt.Fprintf(&b, ", %s none", f.Name)
		}
	}
	return b.String()
}
