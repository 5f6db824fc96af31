package redis_test

import (
	"context"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/grokgate/grokgate"
	"github.com/grokgate/grokgate/internal/redistest"
	"github.com/grokgate/grokgate/ratelimit"
	"github.com/grokgate/grokgate/ratelimittest"
	"github.com/grokgate/grokgate/redis"
)

func TestConformance(t *testing.T) {
	url := redistest.URL(t)
	ratelimittest.Run(t, func(t *testing.T) ratelimittest.Env {
		// Every replica of one test shares a prefix and a clock offset.
		prefix := redistest.Prefix()
		var offset atomic.Int64
		open := func() *redis.Limiter {
			// A generous timeout: 200 callers on a 2-core machine under -race.
			l, err := redis.New(url, redis.Options{Prefix: prefix, Timeout: 5 * time.Second,
				Offset: func() time.Duration { return time.Duration(offset.Load()) }})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { l.Close() })
			return l
		}
		return ratelimittest.Env{
			L:       open(),
			Replica: func() ratelimittest.Limiter { return open() },
			Advance: func(d time.Duration) { offset.Add(int64(d)) },
			Window:  ratelimit.DefaultWindow,
			SlotTTL: redis.DefaultSlotTTL,
		}
	})
}

// TestLiveSlotsRefreshed: an open stream keeps its slot past the TTL while
// its replica lives, and loses it a TTL after the replica stops.
func TestLiveSlotsRefreshed(t *testing.T) {
	url := redistest.URL(t)
	prefix := redistest.Prefix()
	// Redis's clock moves only when the test says (Offset), and replica a
	// refreshes only when it is ticked, so nothing depends on timing. The
	// TTL is long enough that Redis's own key expiry never comes into it.
	const ttl = time.Minute
	var offset atomic.Int64
	tick := make(chan time.Time)
	open := func(refresh <-chan time.Time) *redis.Limiter {
		l, err := redis.New(url, redis.Options{Prefix: prefix, SlotTTL: ttl, Refresh: refresh,
			Offset: func() time.Duration { return time.Duration(offset.Load()) }})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
		return l
	}
	a, b := open(tick), open(make(chan time.Time))
	// refresh has a refresh slots as of now and waits until it is done: the
	// second send is taken only once the first refresh has run.
	refresh := func() { tick <- time.Time{}; tick <- time.Time{} }
	advance := func(d time.Duration) { offset.Add(int64(d)) }
	lim := grokgate.Limits{MaxStreams: 1}
	ctx := context.Background()
	if v, err := a.Admit(ctx, grokgate.Admission{Key: "k", ID: "s1", Limits: lim, Stream: true}); err != nil || !v.Allowed {
		t.Fatal(v, err)
	}
	for range 3 {
		advance(ttl / 2)
		refresh()
	}
	advance(ttl / 2) // 2 TTLs after admission, half a TTL after the last refresh
	if v, err := b.Admit(ctx, grokgate.Admission{Key: "k", ID: "s2", Limits: lim, Stream: true}); err != nil || v.Allowed {
		t.Fatalf("the live stream's slot expired: %+v %v", v, err)
	}
	a.Abandon()
	advance(ttl)
	if v, err := b.Admit(ctx, grokgate.Admission{Key: "k", ID: "s3", Limits: lim, Stream: true}); err != nil || !v.Allowed {
		t.Fatalf("the stopped replica's slot did not expire: %+v %v", v, err)
	}
}

// TestUnreachable: a Redis that is not there is an error, quickly, and the
// same limiter works once it is reachable again (go-redis redials).
func TestUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	l, err := redis.New("redis://"+addr+"/0", redis.Options{Timeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	start := time.Now()
	if _, err := l.Admit(context.Background(), grokgate.Admission{Key: "k", ID: "x", Limits: grokgate.Limits{RPM: 1}}); err == nil {
		t.Fatal("no error from an unreachable Redis")
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("the failure took %v", d)
	}
}
