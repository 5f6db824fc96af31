package ratelimit_test

import (
	"sync"
	"testing"
	"time"

	"github.com/grokgate/grokgate/ratelimit"
	"github.com/grokgate/grokgate/ratelimittest"
)

// clock is a test clock that only moves when told.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func TestConformance(t *testing.T) {
	ratelimittest.Run(t, func(t *testing.T) ratelimittest.Env {
		c := &clock{t: time.Date(2026, 11, 3, 22, 30, 0, 0, time.UTC)}
		return ratelimittest.Env{L: ratelimit.New(c.now, 0), Advance: c.advance, Window: ratelimit.DefaultWindow}
	})
}
