package postgres_test

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/grokgate/grokgate"
	"github.com/grokgate/grokgate/internal/pgtest"
	"github.com/grokgate/grokgate/keys"
)

// BenchmarkKeysRefresh is what one key change costs each replica at 100,000
// keys: reading every key and rebuilding the cache (full, what a change
// cost before key changes were numbered) against reading the one changed
// key into the cache (incremental). Compare the two as a ratio:
//
//	go test ./postgres -run '^$' -bench KeysRefresh -benchtime 20x
func BenchmarkKeysRefresh(b *testing.B) {
	dsn := pgtest.Schema(b)
	s := open(b, dsn)
	defer s.Close()
	const n = 100000
	pgtest.Exec(b, dsn, pgtest.BulkKeysSQL, n)
	// As autovacuum does within a minute of a bulk load; until then a poll
	// that finds a change scans the table on the server (about 10 ms here,
	// still with one key read into the cache).
	pgtest.Exec(b, dsn, "ANALYZE keys")
	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)
	b.Run("full", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			c := keys.NewCache(s, time.Now, log)
			if err := c.Load(ctx); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("incremental", func(b *testing.B) {
		c := keys.NewCache(s, time.Now, log)
		if err := c.Load(ctx); err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			b.StopTimer()
			i++
			name := fmt.Sprint("renamed ", i)
			if _, err := s.UpdateKey(ctx, fmt.Sprintf("key_bulk%08d", i%n+1), grokgate.KeyUpdate{Name: &name}); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
			if err := c.Load(ctx); err != nil {
				b.Fatal(err)
			}
		}
	})
}
