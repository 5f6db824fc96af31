package redis_test

import (
	"testing"
	"time"

	"github.com/grokgate/grokgate/eventlogtest"
	"github.com/grokgate/grokgate/internal/redistest"
	"github.com/grokgate/grokgate/redis"
)

// openStreamLog returns a stream log on the test Redis and a function that
// opens another replica sharing it.
func openStreamLog(tb testing.TB, b eventlogtest.Bounds, retention time.Duration) (*redis.StreamLog, func() *redis.StreamLog) {
	url := redistest.URL(tb)
	prefix := redistest.Prefix()
	open := func() *redis.StreamLog {
		l, err := redis.NewStreamLog(url, redis.StreamLogOptions{Prefix: prefix, Retention: retention,
			MaxStreamBytes: b.MaxStreamBytes, MaxBytes: b.MaxBytes, MaxStreams: b.MaxStreams,
			Timeout: 5 * time.Second}) // generous: -race on a busy 2-core machine
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { l.Close() })
		return l
	}
	return open(), open
}

func TestStreamLogConformance(t *testing.T) {
	// Redis's clock cannot be moved, so retention is short and real.
	const retention = 2 * time.Second
	eventlogtest.Run(t, func(t *testing.T, b eventlogtest.Bounds) eventlogtest.Env {
		l, open := openStreamLog(t, b, retention)
		return eventlogtest.Env{
			L:          l,
			Replica:    func() eventlogtest.Log { return open() },
			Retention:  retention,
			Advance:    time.Sleep,
			Resolution: time.Millisecond,
		}
	})
}
