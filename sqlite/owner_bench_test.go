package sqlite

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/grokgate/grokgate"
)

// BenchmarkRecordResponseOwner is the cost of recording one response's
// owner alone and, per owner, in batches of 16 (concurrent streams grouped
// into one write): the figure the Responses path pays per stream. The ids
// are scattered over the key space, as xAI's random UUIDs are: each insert
// lands on its own page of the index, which the commit then writes to the
// WAL (and a checkpoint back to the database). Ids in order would share
// pages and cost a sixth as much.
func BenchmarkRecordResponseOwner(b *testing.B) {
	for _, batch := range []int{1, 16} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			db, err := Open(context.Background(), filepath.Join(b.TempDir(), "o.db"))
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			now := time.Now()
			owners := make([]grokgate.ResponseOwner, batch)
			i := 0
			b.ReportAllocs()
			for b.Loop() {
				for j := range owners {
					owners[j] = grokgate.ResponseOwner{ResponseID: fmt.Sprintf("%08x-8d3a-4a57-9c3b-%012d", uint32(i)*2654435761, i), KeyID: "key_0123456789abcdef", CreatedAt: now}
					i++
				}
				if err := db.RecordResponseOwner(context.Background(), owners...); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batch), "ns/owner")
		})
	}
}
