package main

import (
	"math"
	"slices"
	"time"
)

// samples holds every latency observed, in nanoseconds. A few hundred
// thousand int64 per run is cheap, and keeping them all makes percentiles
// exact and the chart honest about the tail.
type samples []int64

// sorted returns a sorted copy.
func (s samples) sorted() samples {
	c := slices.Clone(s)
	slices.Sort(c)
	return c
}

// pct returns the q-quantile (0..1) of sorted samples by the nearest-rank
// method, as a duration; NaN-free: 0 when empty.
func (s samples) pct(q float64) time.Duration {
	if len(s) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(s)))) - 1
	i = max(0, min(i, len(s)-1))
	return time.Duration(s[i])
}

// ms formats a duration in milliseconds with precision that suits it.
func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
