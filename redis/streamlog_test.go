package redis_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/grokgate/grokgate"
	"github.com/grokgate/grokgate/eventlogtest"
	"github.com/grokgate/grokgate/internal/faultproxy"
	"github.com/grokgate/grokgate/internal/redistest"
	"github.com/grokgate/grokgate/redis"
)

// streamLogs opens stream logs sharing one fresh prefix, as replicas would.
func streamLogs(tb testing.TB, url string, opt redis.StreamLogOptions) func() *redis.StreamLog {
	if opt.Prefix == "" {
		opt.Prefix = redistest.Prefix()
	}
	if opt.Timeout == 0 {
		opt.Timeout = 5 * time.Second // generous: -race on a busy 2-core machine
	}
	return func() *redis.StreamLog {
		l, err := redis.NewStreamLog(url, opt)
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { l.Close() })
		return l
	}
}

func TestStreamLogConformance(t *testing.T) {
	running := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, running) })
	url := redistest.URL(t)
	// Redis's clock cannot be moved, so retention is short and real.
	const retention = 2 * time.Second
	eventlogtest.Run(t, func(t *testing.T, b eventlogtest.Bounds) eventlogtest.Env {
		open := streamLogs(t, url, redis.StreamLogOptions{Retention: retention,
			MaxStreamBytes: b.MaxStreamBytes, MaxBytes: b.MaxBytes, MaxStreams: b.MaxStreams})
		return eventlogtest.Env{
			L:          open(),
			Replica:    func() eventlogtest.Log { return open() },
			Retention:  retention,
			Advance:    time.Sleep,
			Resolution: time.Millisecond,
		}
	})
}

// TestStreamLogRoundTrips: every call is one round trip to Redis, and a
// read that waits for its event two (look, XREAD).
func TestStreamLogRoundTrips(t *testing.T) {
	url := redistest.URL(t)
	open := streamLogs(t, url, redis.StreamLogOptions{})
	l, r := open(), open()
	ctx := context.Background()
	// Load every script once (the first EVALSHA of each is refused).
	for _, x := range []*redis.StreamLog{l, r} {
		id := eventlogtest.NewID()
		must(t, x.Create(ctx, id, grokgate.StreamMeta{}))
		_, err := x.Append(ctx, id, []byte("x"))
		must(t, err)
		_, _, err = x.Read(ctx, id, 0, 10, 0)
		must(t, err)
		_, _, err = x.Read(ctx, id, 1, 10, 10*time.Millisecond) // opens a connection to wait on
		must(t, err)
		_, err = x.Renew(ctx, id)
		must(t, err)
		must(t, x.Cancel(ctx, id))
		must(t, x.Finish(ctx, id, "completed"))
	}
	trips := func(x *redis.StreamLog, what string, want int64, f func() error) {
		t.Helper()
		before := x.RoundTrips()
		if err := f(); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if got := x.RoundTrips() - before; got != want {
			t.Errorf("%s took %d round trips, want %d", what, got, want)
		}
	}
	id := eventlogtest.NewID()
	trips(l, "Create", 1, func() error { return l.Create(ctx, id, grokgate.StreamMeta{}) })
	trips(l, "100 Appends", 100, func() error {
		for range 100 {
			if _, err := l.Append(ctx, id, []byte("data: {}\n\n")); err != nil {
				return err
			}
		}
		return nil
	})
	trips(r, "Read of 100 events", 1, func() error { _, _, err := r.Read(ctx, id, 0, 0, time.Second); return err })
	trips(r, "Read of nothing without a wait", 1, func() error { _, _, err := r.Read(ctx, id, 100, 0, 0); return err })
	trips(l, "Renew", 1, func() error { _, err := l.Renew(ctx, id); return err })
	trips(r, "State", 1, func() error { _, err := r.State(ctx, id); return err })
	trips(r, "Cancel", 1, func() error { return r.Cancel(ctx, id) })
	prev, err := l.State(ctx, id)
	must(t, err)
	time.Sleep(2 * time.Millisecond) // ReadSeen has millisecond resolution
	done := make(chan int64)
	go func() {
		before := r.RoundTrips()
		evs, _, err := r.Read(ctx, id, 100, 0, time.Minute)
		if err != nil || len(evs) != 1 {
			t.Errorf("waiting read: %v %v", evs, err)
		}
		done <- r.RoundTrips() - before
	}()
	// Once the reader has looked (ReadSeen moves), the append wakes it
	// wherever it is: blocked in XREAD, or about to be.
	deadline := time.Now().Add(10 * time.Second)
	for st, _ := l.State(ctx, id); !st.ReadSeen.After(prev.ReadSeen); st, _ = l.State(ctx, id) {
		if time.Now().After(deadline) {
			t.Fatal("the reader never read")
		}
		time.Sleep(time.Millisecond)
	}
	_, err = l.Append(ctx, id, []byte("late"))
	must(t, err)
	if n := <-done; n != 2 {
		t.Errorf("a waiting read took %d round trips, want 2", n)
	}
	trips(l, "Finish", 1, func() error { return l.Finish(ctx, id, "completed") })
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestStreamLogKeysExpire: Redis drops a stream's keys when its retention
// ends, with no replica running, and the next Create takes its bytes off
// the shared count.
func TestStreamLogKeysExpire(t *testing.T) {
	url := redistest.URL(t)
	prefix := redistest.Prefix()
	l := streamLogs(t, url, redis.StreamLogOptions{Prefix: prefix, Retention: 300 * time.Millisecond})()
	ro, _ := goredis.ParseURL(url)
	raw := goredis.NewClient(ro)
	defer raw.Close()
	ctx := context.Background()
	id := eventlogtest.NewID()
	must(t, l.Create(ctx, id, grokgate.StreamMeta{Owner: "k"}))
	_, err := l.Append(ctx, id, make([]byte, 1000))
	must(t, err)
	must(t, l.Finish(ctx, id, "completed"))
	keys := []string{prefix + "{" + id + "}:m", prefix + "{" + id + "}:e"}
	if n, err := raw.Exists(ctx, keys...).Result(); err != nil || n != 2 {
		t.Fatalf("the stream's keys: %d exist (%v), want 2", n, err)
	}
	if b, err := raw.Get(ctx, prefix+"bytes").Int64(); err != nil || b != 1000 {
		t.Fatalf("bytes held: %d %v", b, err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		n, err := raw.Exists(ctx, keys...).Result()
		must(t, err)
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("Redis kept the keys past the retention")
		}
		time.Sleep(20 * time.Millisecond)
	}
	other := eventlogtest.NewID()
	must(t, l.Create(ctx, other, grokgate.StreamMeta{}))
	if b, err := raw.Get(ctx, prefix+"bytes").Int64(); err != nil || b != 0 {
		t.Fatalf("bytes held after the sweep: %d %v, want 0", b, err)
	}
	if n, _ := raw.ZCard(ctx, prefix+"live").Result(); n != 1 {
		t.Fatalf("%d live streams, want 1", n)
	}
	if ok, _ := raw.HExists(ctx, prefix+"sizes", id).Result(); ok {
		t.Fatal("the expired stream's share is still counted")
	}
}

// TestStreamLogWaitingBounded: with every waiting slot taken, a read does
// not block in Redis (nor take a connection): it waits here and returns the
// event when its wait ends. A reader that leaves gives its slot back at
// once, though its wait had a minute to run.
func TestStreamLogWaitingBounded(t *testing.T) {
	url := redistest.URL(t)
	l := streamLogs(t, url, redis.StreamLogOptions{MaxWaiting: 1})()
	ctx := context.Background()
	a, b := eventlogtest.NewID(), eventlogtest.NewID()
	must(t, l.Create(ctx, a, grokgate.StreamMeta{}))
	must(t, l.Create(ctx, b, grokgate.StreamMeta{}))
	// readSince waits until id has been read after the read at since.
	readSince := func(id string, since time.Time) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for st, _ := l.State(ctx, id); !st.ReadSeen.After(since); st, _ = l.State(ctx, id) {
			if time.Now().After(deadline) {
				t.Fatalf("%s was never read", id)
			}
			time.Sleep(time.Millisecond)
		}
	}
	actx, cancel := context.WithCancel(ctx)
	defer cancel()
	aDone := make(chan error, 1)
	go func() { _, _, err := l.Read(actx, a, 0, 0, time.Minute); aDone <- err }()
	readSince(a, time.Time{})
	time.Sleep(50 * time.Millisecond) // a takes the slot right after its look
	// read starts a read of b after seq after and returns once it has
	// looked, with when it began.
	read := func(after int64, wait time.Duration) (<-chan []grokgate.StreamEvent, time.Time) {
		ch := make(chan []grokgate.StreamEvent, 1)
		prev, err := l.State(ctx, b)
		must(t, err)
		time.Sleep(2 * time.Millisecond) // ReadSeen has millisecond resolution
		start := time.Now()
		go func() {
			evs, _, err := l.Read(ctx, b, after, 0, wait)
			if err != nil {
				t.Error(err)
			}
			ch <- evs
		}()
		readSince(b, prev.ReadSeen)
		return ch, start
	}
	const wait = 500 * time.Millisecond
	bDone, start := read(0, wait)
	_, err := l.Append(ctx, b, []byte("for b"))
	must(t, err)
	evs := <-bDone
	if len(evs) != 1 || string(evs[0].Data) != "for b" {
		t.Fatalf("b's read: %+v", evs)
	}
	if d := time.Since(start); d < wait-20*time.Millisecond {
		t.Fatalf("b's read returned after %v, before its wait of %v: it was woken, so it took a slot that a holds", d, wait)
	}
	// a leaves: its slot is free at once, so the next read is woken.
	cancel()
	select {
	case err := <-aDone:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("reader a: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("reader a did not return when it left")
	}
	must(t, l.Finish(ctx, a, "completed"))
	const long = 30 * time.Second
	cDone, start := read(1, long)
	time.Sleep(50 * time.Millisecond) // c takes the slot right after its look
	_, err = l.Append(ctx, b, []byte("for c"))
	must(t, err)
	evs = <-cDone
	if d := time.Since(start); d > long/2 {
		t.Fatalf("the next read waited %v: a's slot was not given back", d)
	}
	if len(evs) != 1 || string(evs[0].Data) != "for c" {
		t.Fatalf("c's read: %+v", evs)
	}
}

// TestStreamLogRedisHangs: a Redis that stops answering is an error within
// the timeout for a call, and within the wait plus the timeout for a
// waiting read, never a hang; once it answers again the log works.
func TestStreamLogRedisHangs(t *testing.T) {
	url := redistest.URL(t)
	ro, _ := goredis.ParseURL(url)
	p := faultproxy.Start(t, ro.Addr)
	const timeout = 300 * time.Millisecond
	l := streamLogs(t, "redis://"+p.Addr()+"/0", redis.StreamLogOptions{Timeout: timeout})()
	ctx := context.Background()
	id := eventlogtest.NewID()
	must(t, l.Create(ctx, id, grokgate.StreamMeta{}))
	const wait = 500 * time.Millisecond
	waiting := make(chan error, 1)
	go func() { _, _, err := l.Read(ctx, id, 0, 0, wait); waiting <- err }()
	deadline := time.Now().Add(10 * time.Second)
	for st, _ := l.State(ctx, id); st.ReadSeen.IsZero(); st, _ = l.State(ctx, id) {
		if time.Now().After(deadline) {
			t.Fatal("the reader never read")
		}
		time.Sleep(time.Millisecond)
	}
	must(t, p.Set(faultproxy.Hang))
	start := time.Now()
	if _, err := l.Append(ctx, id, []byte("x")); err == nil || errors.Is(err, grokgate.ErrStreamLogFull) {
		t.Fatalf("Append to a hung Redis: %v", err)
	}
	if d := time.Since(start); d > 5*timeout {
		t.Fatalf("Append to a hung Redis took %v", d)
	}
	select {
	case err := <-waiting:
		// Blocked in XREAD or about to, the read cannot end well.
		if err == nil {
			t.Fatal("a read waiting on a hung Redis returned no error")
		}
	case <-time.After(wait + 5*timeout):
		t.Fatal("the waiting read hung with Redis")
	}
	must(t, p.Set(faultproxy.Pass))
	deadline = time.Now().Add(10 * time.Second)
	for {
		_, err := l.Append(ctx, id, []byte("y"))
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the log did not recover: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	evs, _, err := l.Read(ctx, id, 0, 0, 0)
	must(t, err)
	// The hung Append may or may not have reached Redis, and if it did, it
	// may have landed after the later one: the bytes it sent were held on
	// the path, as a stalled network holds them, and delivered when it
	// cleared. Nothing else was lost or doubled.
	var got []string
	for _, e := range evs {
		got = append(got, string(e.Data))
	}
	switch strings.Join(got, ",") {
	case "y", "x,y", "y,x":
	default:
		t.Fatalf("events after recovery: %q", got)
	}
}

// BenchmarkStreamLog reports the stream log's cost per event against a
// baseline in the same run: one plain XADD of the same event per event, the
// least any Redis-backed log could do.
func BenchmarkStreamLog(b *testing.B) {
	url := redistest.URL(b)
	b.Run("BaselineXADD", func(b *testing.B) {
		ro, _ := goredis.ParseURL(url)
		raw := goredis.NewClient(ro)
		defer raw.Close()
		ctx := context.Background()
		key := redistest.Prefix() + "baseline"
		defer raw.Del(ctx, key)
		ev := bytes.Repeat([]byte{'x'}, eventlogtest.BenchEventSize)
		b.SetBytes(eventlogtest.BenchEventSize)
		b.ReportAllocs()
		for b.Loop() {
			if err := raw.XAdd(ctx, &goredis.XAddArgs{Stream: key, Values: []any{"d", ev}}).Err(); err != nil {
				b.Fatal(err)
			}
		}
	})
	var l *redis.StreamLog
	eventlogtest.Bench(b, func(b *testing.B) eventlogtest.Log {
		l = streamLogs(b, url, redis.StreamLogOptions{Retention: time.Minute, MaxStreamBytes: 1 << 40, MaxBytes: 1 << 40})()
		return l
	}, func() int64 { return l.RoundTrips() })
}
