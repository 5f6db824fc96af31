package eventlogtest

import (
	"bytes"
	"testing"
	"time"
)

// BenchEventSize is the size of a benchmark event: a typical chat chunk.
const BenchEventSize = 250

// Bench runs the stream log benchmarks, each reporting its cost per event:
// Append (a runner writing), Follow (a reader following a writer that is
// ahead of it, reading pages) and FollowEach (a reader woken for every single
// event, the worst case). open returns a log whose bounds the benchmarks
// will not reach; ops, when not nil, counts the log's round trips to its
// server, reported as ops/event.
func Bench(b *testing.B, open func(b *testing.B) Log, ops func() int64) {
	b.Run("Append", func(b *testing.B) { benchAppend(b, open(b), ops) })
	b.Run("Follow", func(b *testing.B) { benchFollow(b, open(b), ops, false) })
	b.Run("FollowEach", func(b *testing.B) { benchFollow(b, open(b), ops, true) })
}

func report(b *testing.B, ops func() int64, before int64) {
	if ops != nil {
		b.ReportMetric(float64(ops()-before)/float64(b.N), "ops/event")
	}
}

func count(ops func() int64) int64 {
	if ops == nil {
		return 0
	}
	return ops()
}

func benchAppend(b *testing.B, l Log, ops func() int64) {
	ev := bytes.Repeat([]byte{'x'}, BenchEventSize)
	id := create(b, l)
	b.SetBytes(BenchEventSize)
	b.ReportAllocs()
	before := count(ops)
	b.ResetTimer()
	for i := range b.N {
		// Streams of a few thousand events, as generations are.
		if i%4096 == 4095 {
			if err := l.Finish(bg, id, "completed"); err != nil {
				b.Fatal(err)
			}
			id = create(b, l)
		}
		if _, err := l.Append(bg, id, ev); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	report(b, ops, before)
}

// benchFollow measures a writer and a reader together per event; with each,
// the writer waits for the reader to get every event before the next.
func benchFollow(b *testing.B, l Log, ops func() int64, each bool) {
	ev := bytes.Repeat([]byte{'x'}, BenchEventSize)
	id := create(b, l)
	got := make(chan int64, 1)
	errc := make(chan error, 1)
	b.SetBytes(BenchEventSize)
	b.ReportAllocs()
	before := count(ops)
	b.ResetTimer()
	go func() {
		for range b.N {
			if _, err := l.Append(bg, id, ev); err != nil {
				errc <- err
				return
			}
			if each {
				<-got
			}
		}
		errc <- l.Finish(bg, id, "completed")
	}()
	var after int64
	for {
		evs, st, err := l.Read(bg, id, after, 256, 10*time.Second)
		if err != nil {
			b.Fatal(err)
		}
		for _, e := range evs {
			after = e.Seq
			if each {
				got <- after
			}
		}
		if st.Ended && after == st.Last {
			break
		}
	}
	b.StopTimer()
	if err := <-errc; err != nil {
		b.Fatal(err)
	}
	if after != int64(b.N) {
		b.Fatalf("read %d events of %d", after, b.N)
	}
	report(b, ops, before)
}
