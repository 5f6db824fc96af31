package keys

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/grokgate/grokgate"
	"github.com/grokgate/grokgate/internal/logtest"
)

// memSource is an in-memory Source numbering its changes as the stores do.
// It counts its calls, and fails them while fail is set or blocks them
// (until their context ends) while hang is.
type memSource struct {
	mu      sync.Mutex
	seq     int64
	keys    map[string]grokgate.Key
	seqs    map[string]int64
	lookups atomic.Int64
	reads   atomic.Int64
	fail    atomic.Bool
	hang    atomic.Bool
}

// put creates or replaces k as one change.
func (m *memSource) put(ks ...grokgate.Key) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.keys == nil {
		m.keys, m.seqs = map[string]grokgate.Key{}, map[string]int64{}
	}
	for _, k := range ks {
		m.seq++
		m.keys[k.ID], m.seqs[k.ID] = k, m.seq
	}
}

var errDown = errors.New("store down")

func (m *memSource) trouble(ctx context.Context) error {
	if m.hang.Load() {
		<-ctx.Done()
		return ctx.Err()
	}
	if m.fail.Load() {
		return errDown
	}
	return nil
}

func (m *memSource) KeysChangedSince(ctx context.Context, after int64) ([]grokgate.Key, int64, error) {
	m.reads.Add(1)
	if err := m.trouble(ctx); err != nil {
		return nil, after, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []grokgate.Key
	last := max(after, 0)
	for id, k := range m.keys {
		if s := m.seqs[id]; s > after {
			out = append(out, k)
			last = max(last, s)
		}
	}
	return out, last, nil
}

func (m *memSource) KeyByHash(ctx context.Context, h [32]byte) (grokgate.Key, error) {
	m.lookups.Add(1)
	if err := m.trouble(ctx); err != nil {
		return grokgate.Key{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
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
	src := &memSource{}
	src.put(active, revoked, expired)
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
	src := &memSource{}
	src.put(active)
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
	src.put(late)
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
	active.RevokedAt = now
	src.put(active)
	if err := c.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := c.KeyByID(active.ID); !errors.Is(err, ErrRevoked) {
		t.Errorf("KeyByID(revoked) = %v; want ErrRevoked", err)
	}
}

// TestCacheFollowsChanges: after the first load, each load reads only the
// keys changed since the one before, and the snapshot stays equal to the
// store through many changes (its delta merged into its base on the way).
func TestCacheFollowsChanges(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	src := &memSource{}
	var all []grokgate.Key
	secrets := map[string]string{}
	for i := range 2000 {
		k, s, _ := Mint(Random(), fmt.Sprint("k", i), grokgate.RoleUser, now)
		all = append(all, k)
		secrets[k.ID] = s
	}
	src.put(all...)
	c := NewCache(src, func() time.Time { return now }, slog.New(slog.DiscardHandler))
	if err := c.Load(ctx); err != nil {
		t.Fatal(err)
	}
	if got := len(c.snap.Load().base.byHash); got != len(all) {
		t.Fatalf("first load: %d keys, want %d", got, len(all))
	}
	for round := range 40 {
		// A few changes per round: revocations, renames and new keys.
		for j := range 13 {
			i := (round*131 + j*17) % len(all)
			if j%3 == 0 {
				all[i].RevokedAt = now
			} else {
				all[i].Name = fmt.Sprint("renamed", round, j)
			}
			src.put(all[i])
		}
		k, s, _ := Mint(Random(), fmt.Sprint("new", round), grokgate.RoleUser, now)
		all, secrets[k.ID] = append(all, k), s
		src.put(k)
		if err := c.Load(ctx); err != nil {
			t.Fatal(err)
		}
		if d := len(c.snap.Load().delta.byHash); d > max(minDelta, len(all)/8) {
			t.Fatalf("round %d: delta of %d keys was never merged", round, d)
		}
	}
	lookups := src.lookups.Load()
	for _, want := range all {
		got, err := c.KeyByID(want.ID)
		if !want.RevokedAt.IsZero() {
			if !errors.Is(err, ErrRevoked) {
				t.Fatalf("key %s revoked in the store: %v", want.ID, err)
			}
			continue
		}
		if err != nil || got.Name != want.Name {
			t.Fatalf("key %s: %+v %v, want name %q", want.ID, got, err, want.Name)
		}
		if k, err := c.Authenticate(ctx, secrets[want.ID]); err != nil || k.ID != want.ID {
			t.Fatalf("authenticate %s: %v", want.ID, err)
		}
	}
	if src.lookups.Load() != lookups {
		t.Errorf("known keys asked the store %d times", src.lookups.Load()-lookups)
	}
}

// TestCacheStaleness: while the store fails, the keys already loaded keep
// working for MaxStaleness, then every key is refused with ErrStale until
// the store answers again; the log says when the keys became stale and
// when they are fresh again.
func TestCacheStaleness(t *testing.T) {
	ctx := context.Background()
	var clock atomic.Int64
	start := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	now := func() time.Time { return start.Add(time.Duration(clock.Load())) }
	advance := func(d time.Duration) { clock.Add(int64(d)) }
	src := &memSource{}
	k, secret, _ := Mint(Random(), "k", grokgate.RoleUser, start)
	src.put(k)
	var logs logtest.Buffer
	c := NewCacheWith(src, now, slog.New(slog.NewTextHandler(&logs, nil)), Options{MaxStaleness: time.Minute, Timeout: 50 * time.Millisecond})
	if _, err := c.Authenticate(ctx, secret); !errors.Is(err, ErrNotLoaded) || !errors.Is(err, ErrUnavailable) {
		t.Fatalf("before the first load: %v, want ErrNotLoaded", err)
	}
	if err := c.Load(ctx); err != nil {
		t.Fatal(err)
	}
	src.fail.Store(true)
	advance(30 * time.Second)
	if err := c.Load(ctx); err == nil {
		t.Fatal("a load from a failing store succeeded")
	}
	if _, err := c.Authenticate(ctx, secret); err != nil {
		t.Fatalf("a known key while the store fails, within the staleness: %v", err)
	}
	_, unknown, _ := Mint(Random(), "u", grokgate.RoleUser, start)
	if _, err := c.Authenticate(ctx, unknown); !errors.Is(err, ErrUnavailable) || errors.Is(err, ErrStale) {
		t.Fatalf("an unknown key while the store fails: %v, want ErrUnavailable", err)
	}
	if strings.Contains(logs.String(), "keys are stale") {
		t.Errorf("logged stale too early:\n%s", logs.String())
	}
	advance(31 * time.Second)
	if _, err := c.Authenticate(ctx, secret); !errors.Is(err, ErrStale) {
		t.Fatalf("a known key past the staleness: %v, want ErrStale", err)
	}
	if _, err := c.KeyByID(k.ID); !errors.Is(err, ErrStale) {
		t.Fatalf("KeyByID past the staleness: %v, want ErrStale", err)
	}
	c.Load(ctx)
	if !strings.Contains(logs.String(), "keys are stale") {
		t.Errorf("no log line says the keys are stale:\n%s", logs.String())
	}
	src.fail.Store(false)
	if err := c.Load(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Authenticate(ctx, secret); err != nil {
		t.Fatalf("after the store answered again: %v", err)
	}
	if !strings.Contains(logs.String(), "answers again") || !strings.Contains(logs.String(), "was_stale=true") {
		t.Errorf("no log line says the keys are fresh again:\n%s", logs.String())
	}
}

// TestCacheLookupDeadline: with the store hanging, a key the cache does not
// know is refused with ErrUnavailable within the timeout, also when many
// arrive at once (each waits for its turn no longer than its own timeout),
// and known keys are answered at once.
func TestCacheLookupDeadline(t *testing.T) {
	ctx := context.Background()
	src := &memSource{}
	k, secret, _ := Mint(Random(), "k", grokgate.RoleUser, time.Now())
	src.put(k)
	const timeout = 200 * time.Millisecond
	c := NewCacheWith(src, time.Now, slog.New(slog.DiscardHandler), Options{Timeout: timeout})
	if err := c.Load(ctx); err != nil {
		t.Fatal(err)
	}
	src.hang.Store(true)
	var wg sync.WaitGroup
	took := make([]time.Duration, 8)
	errs := make([]error, len(took))
	for i := range took {
		wg.Go(func() {
			_, unknown, _ := Mint(Random(), "u", grokgate.RoleUser, time.Now())
			t0 := time.Now()
			_, errs[i] = c.Authenticate(ctx, unknown)
			took[i] = time.Since(t0)
		})
	}
	t0 := time.Now()
	if _, err := c.Authenticate(ctx, secret); err != nil || time.Since(t0) > timeout/2 {
		t.Errorf("a known key while the store hangs: %v after %v", err, time.Since(t0))
	}
	wg.Wait()
	for i := range took {
		if !errors.Is(errs[i], ErrUnavailable) || took[i] > 3*timeout {
			t.Errorf("unknown key %d: %v after %v; want ErrUnavailable within about %v", i, errs[i], took[i], timeout)
		}
	}
	// A load against the hanging store gives up within its timeout too.
	t0 = time.Now()
	if err := c.Load(ctx); err == nil || time.Since(t0) > 3*timeout {
		t.Errorf("load from a hanging store: %v after %v", err, time.Since(t0))
	}
}
