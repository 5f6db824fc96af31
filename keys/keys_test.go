package keys

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/grokgate/grokgate"
)

func TestMint(t *testing.T) {
	k, secret, err := Mint(rand.Reader, "n", grokgate.RoleUser, time.Unix(100, 0))
	if err != nil {
		t.Fatal(err)
	}
	if !LooksLikeKey(secret) || !strings.HasPrefix(secret, k.Prefix) || k.Hash != Hash(secret) {
		t.Fatalf("key %+v secret %q", k, secret)
	}
	_, secret2, _ := Mint(rand.Reader, "n", grokgate.RoleUser, time.Unix(100, 0))
	if secret == secret2 {
		t.Fatal("two mints gave the same secret")
	}
	if _, _, err := Mint(bytes.NewReader(make([]byte, 10)), "n", grokgate.RoleUser, time.Now()); err == nil {
		t.Fatal("short randomness accepted")
	}
	for _, bad := range []string{"", "gg-", "gg-" + strings.Repeat("a", 42), "gg-" + strings.Repeat("a", 42) + "!", "xx-" + strings.Repeat("a", 43)} {
		if LooksLikeKey(bad) {
			t.Errorf("LooksLikeKey(%q)", bad)
		}
	}
}

func TestCache(t *testing.T) {
	ctx := context.Background()
	src := &memSource{}
	a, secretA, _ := Mint(rand.Reader, "a", grokgate.RoleUser, time.Now())
	src.put(a)
	c := NewCache(src, time.Now, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err := c.Load(ctx); err != nil {
		t.Fatal(err)
	}
	if k, err := c.Authenticate(ctx, secretA); err != nil || k.ID != a.ID {
		t.Fatalf("known key: %v %v", k, err)
	}
	if src.lookups.Load() != 0 {
		t.Fatal("a cached key hit the store")
	}
	if _, err := c.Authenticate(ctx, ""); !errors.Is(err, ErrMissing) {
		t.Fatalf("empty: %v", err)
	}
	if _, err := c.Authenticate(ctx, "nonsense"); !errors.Is(err, ErrInvalid) || src.lookups.Load() != 0 {
		t.Fatalf("malformed key: %v, lookups %d", err, src.lookups.Load())
	}

	// A key created elsewhere works before the next reload, via one lookup.
	b, secretB, _ := Mint(rand.Reader, "b", grokgate.RoleUser, time.Now())
	src.put(b)
	if _, err := c.Authenticate(ctx, secretB); err != nil {
		t.Fatalf("fresh key: %v", err)
	}
	if _, err := c.Authenticate(ctx, secretB); err != nil || src.lookups.Load() != 1 {
		t.Fatalf("fresh key again: %v, lookups %d", err, src.lookups.Load())
	}

	// Revocation reaches the cache on reload.
	a.RevokedAt = time.Now()
	src.put(a)
	if err := c.Load(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Authenticate(ctx, secretA); !errors.Is(err, ErrRevoked) {
		t.Fatalf("revoked: %v", err)
	}
	_, unknown, _ := Mint(rand.Reader, "x", grokgate.RoleUser, time.Now())
	if _, err := c.Authenticate(ctx, unknown); !errors.Is(err, ErrInvalid) {
		t.Fatalf("unknown: %v", err)
	}
}
