package keys

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/grokgate/grokgate"
)

// memSource is an in-memory Source.
type memSource struct {
	gen  int64
	keys []grokgate.Key
}

func (m *memSource) KeysGeneration(context.Context) (int64, error) { return m.gen, nil }
func (m *memSource) ListKeys(context.Context) ([]grokgate.Key, error) {
	return append([]grokgate.Key(nil), m.keys...), nil
}
func (m *memSource) KeyByHash(_ context.Context, h [32]byte) (grokgate.Key, error) {
	for _, k := range m.keys {
		if k.Hash == h {
			return k, nil
		}
	}
	return grokgate.Key{}, grokgate.ErrNotFound
}

func TestAuthenticateStates(t *testing.T) {
	now := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	mint := func(name string) (grokgate.Key, string) {
		k, secret, err := Mint(Random(), name, grokgate.RoleUser, now)
		if err != nil {
			t.Fatal(err)
		}
		return k, secret
	}
	active, activeSecret := mint("active")
	revoked, revokedSecret := mint("revoked")
	revoked.RevokedAt = now.Add(-time.Minute)
	expired, expiredSecret := mint("expired")
	expired.ExpiresAt = now
	src := &memSource{gen: 1, keys: []grokgate.Key{active, revoked, expired}}
	c := NewCache(src, func() time.Time { return now }, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err := c.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		secret string
		want   error
	}{
		{activeSecret, nil},
		{revokedSecret, ErrRevoked},
		{expiredSecret, ErrExpired},
		{"", ErrMissing},
		{"gg-" + strings.Repeat("A", 43), ErrInvalid},
	} {
		_, err := c.Authenticate(context.Background(), tc.secret)
		if !errors.Is(err, tc.want) {
			t.Errorf("Authenticate(%.6s...) = %v, want %v", tc.secret, err, tc.want)
		}
	}
}

func TestKeyByID(t *testing.T) {
	now := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	active, _, _ := Mint(Random(), "active", grokgate.RoleUser, now)
	src := &memSource{gen: 1, keys: []grokgate.Key{active}}
	c := NewCache(src, func() time.Time { return now }, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err := c.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	if k, err := c.KeyByID(active.ID); err != nil || k.ID != active.ID {
		t.Fatalf("KeyByID(active) = %v, %v", k, err)
	}
	if _, err := c.KeyByID("key_unknown"); !errors.Is(err, ErrInvalid) {
		t.Errorf("KeyByID(unknown) = %v; want ErrInvalid", err)
	}
	// A key created after the last load is found once Authenticate met it.
	late, lateSecret, _ := Mint(Random(), "late", grokgate.RoleUser, now)
	src.keys = append(src.keys, late)
	if _, err := c.KeyByID(late.ID); !errors.Is(err, ErrInvalid) {
		t.Errorf("KeyByID(late) before anyone used it = %v; want ErrInvalid", err)
	}
	if _, err := c.Authenticate(context.Background(), lateSecret); err != nil {
		t.Fatal(err)
	}
	if k, err := c.KeyByID(late.ID); err != nil || k.ID != late.ID {
		t.Errorf("KeyByID(late) after Authenticate = %v, %v", k, err)
	}
	// Revocation reaches it with the next load.
	src.keys[0].RevokedAt = now
	src.gen++
	if err := c.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := c.KeyByID(active.ID); !errors.Is(err, ErrRevoked) {
		t.Errorf("KeyByID(revoked) = %v; want ErrRevoked", err)
	}
}
