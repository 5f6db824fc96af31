package keys

import (
	"context"
	"crypto/rand"
	"log/slog"
	"testing"
	"time"

	"github.com/grokgate/grokgate"
)

// benchSource is a store with a fixed set of keys.
type benchSource struct{ keys []grokgate.Key }

func (m *benchSource) KeysChangedSince(_ context.Context, after int64) ([]grokgate.Key, int64, error) {
	if after >= 0 {
		return nil, after, nil
	}
	return m.keys, 1, nil
}
func (m *benchSource) KeyByHash(context.Context, [32]byte) (grokgate.Key, error) {
	return grokgate.Key{}, grokgate.ErrNotFound
}

// BenchmarkAuthenticate is the per-request key check: a valid key among
// 10,000, and a well-formed unknown key (which also asks the store).
func BenchmarkAuthenticate(b *testing.B) {
	src := &benchSource{}
	var secret string
	for i := range 10000 {
		k, s, err := Mint(rand.Reader, "bench", grokgate.RoleUser, time.Now())
		if err != nil {
			b.Fatal(err)
		}
		src.keys = append(src.keys, k)
		if i == 5000 {
			secret = s
		}
	}
	c := NewCache(src, time.Now, slog.New(slog.DiscardHandler))
	ctx := context.Background()
	if err := c.Load(ctx); err != nil {
		b.Fatal(err)
	}
	b.Run("valid", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := c.Authenticate(ctx, secret); err != nil {
				b.Fatal(err)
			}
		}
	})
	unknown := SecretPrefix + "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
	b.Run("unknown", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := c.Authenticate(ctx, unknown); err != ErrInvalid {
				b.Fatal(err)
			}
		}
	})
	b.Run("malformed", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := c.Authenticate(ctx, "sk-not-ours"); err != ErrInvalid {
				b.Fatal(err)
			}
		}
	})
}
