package sqlite_test

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"

	"github.com/grokgate/grokgate"
	"github.com/grokgate/grokgate/sqlite"
)

// recordGen makes records like the gateway's: request ids that sort by
// arrival time (gateway/middleware.go newRequestID), a handful of keys and
// models, an upstream id per completion.
type recordGen struct {
	rng  *rand.Rand
	now  time.Time
	keys []string
}

func newRecordGen(seed uint64) *recordGen {
	g := &recordGen{rng: rand.New(rand.NewPCG(seed, seed)), now: time.Date(2026, 11, 3, 22, 30, 0, 0, time.UTC)}
	for range 20 {
		g.keys = append(g.keys, "key_"+g.hex(8))
	}
	return g
}

func (g *recordGen) hex(n int) string {
	b := make([]byte, n)
	for i := 0; i < n; i += 8 {
		var w [8]byte
		binary.LittleEndian.PutUint64(w[:], g.rng.Uint64())
		copy(b[i:], w[:])
	}
	return hex.EncodeToString(b)
}

func (g *recordGen) next() grokgate.Record {
	g.now = g.now.Add(time.Duration(200+g.rng.IntN(1800)) * time.Microsecond)
	var id [14]byte
	ms := uint64(g.now.UnixMilli())
	for i := 5; i >= 0; i-- {
		id[i] = byte(ms)
		ms >>= 8
	}
	binary.LittleEndian.PutUint64(id[6:], g.rng.Uint64())
	models := [...]string{"grok-4.3", "grok-4-1-fast-reasoning", "grok-3-mini"}
	m := models[g.rng.IntN(len(models))]
	prompt := int64(50 + g.rng.IntN(4000))
	lat := time.Duration(200+g.rng.IntN(20000)) * time.Millisecond
	return grokgate.Record{
		Time:             g.now.Truncate(time.Microsecond),
		RequestID:        "req_" + hex.EncodeToString(id[:]),
		KeyID:            g.keys[g.rng.IntN(len(g.keys))],
		Route:            "/chat/completions",
		RequestedModel:   m,
		Model:            m,
		Stream:           g.rng.IntN(2) == 0,
		Status:           200,
		Outcome:          grokgate.OutcomeCompleted,
		PromptTokens:     prompt,
		CompletionTokens: int64(10 + g.rng.IntN(2000)),
		ReasoningTokens:  int64(g.rng.IntN(500)),
		CachedTokens:     prompt / 2,
		CostTicks:        int64(1_000_000 + g.rng.IntN(50_000_000)),
		Latency:          lat,
		TTFB:             lat / 10,
		UpstreamID:       g.hex(8) + "-" + g.hex(8),
	}
}

// BenchmarkInsertUsage writes batches of 100 new records, as the recorder
// does under load, to a file database opened as the server opens it. Besides
// wall time it reports the process's CPU time per record (cpu-ns/record),
// the cost under load, which waiting on the disk or a busy machine does not
// inflate. Each batch gets a deadline, as the recorder gives every write,
// since the driver's work per statement differs with a cancelable context.
func BenchmarkInsertUsage(b *testing.B) {
	const batch = 100
	ctx := context.Background()
	s, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "grokgate.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	g := newRecordGen(1)
	recs := make([]grokgate.Record, batch)
	var cpu time.Duration
	cpuOK := true
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		for j := range recs {
			recs[j] = g.next()
		}
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		b.StartTimer()
		// Inside the timer: Start and StopTimer read the memory stats,
		// which stops the world and would count here.
		c0, ok0 := processCPU()
		err := s.InsertUsage(wctx, recs)
		c1, ok1 := processCPU()
		b.StopTimer()
		cancel()
		if err != nil {
			b.Fatal(err)
		}
		cpu += c1 - c0
		cpuOK = cpuOK && ok0 && ok1
		b.StartTimer()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batch), "ns/record")
	if cpuOK {
		b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N*batch), "cpu-ns/record")
	}
}
