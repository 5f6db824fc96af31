package keys

import (
	"context"
	"crypto/subtle"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/grokgate/grokgate"
)

// Source is the part of the store the cache reads.
type Source interface {
	// KeysGeneration returns a number that changes whenever any key is
	// created, changed or revoked, by any process sharing the store.
	KeysGeneration(ctx context.Context) (int64, error)
	// ListKeys returns every key, revoked ones included.
	ListKeys(ctx context.Context) ([]grokgate.Key, error)
	// KeyByHash returns the key with this hash, or grokgate.ErrNotFound.
	KeyByHash(ctx context.Context, hash [32]byte) (grokgate.Key, error)
}

// Result of an authentication attempt.
var (
	ErrMissing = errors.New("missing API key")
	ErrInvalid = errors.New("invalid API key")
	ErrRevoked = errors.New("revoked API key")
	ErrExpired = errors.New("expired API key")
)

// Cache authenticates secrets against an in-memory snapshot of the store's
// keys. Reads take no lock: the snapshot is replaced whole.
type Cache struct {
	src  Source
	now  func() time.Time
	log  *slog.Logger
	snap atomic.Pointer[snapshot]
	// fresh holds keys found by a store lookup after a snapshot miss (a key
	// created moments ago by another process); the next reload supersedes it.
	fresh sync.Map // [32]byte -> *grokgate.Key
	// missMu serialises store lookups for unknown hashes so a flood of bad
	// keys costs one query at a time, not one per request at once.
	missMu sync.Mutex
}

type snapshot struct {
	gen  int64
	keys map[[32]byte]*grokgate.Key
	byID map[string]*grokgate.Key
}

// NewCache returns a cache over src. Call Load once before serving and Run in
// the background to follow changes.
func NewCache(src Source, now func() time.Time, log *slog.Logger) *Cache {
	c := &Cache{src: src, now: now, log: log}
	c.snap.Store(&snapshot{gen: -1, keys: map[[32]byte]*grokgate.Key{}, byID: map[string]*grokgate.Key{}})
	return c
}

// Load reads all keys if the store's generation changed since the last load.
func (c *Cache) Load(ctx context.Context) error {
	gen, err := c.src.KeysGeneration(ctx)
	if err != nil {
		return err
	}
	if gen == c.snap.Load().gen {
		return nil
	}
	list, err := c.src.ListKeys(ctx)
	if err != nil {
		return err
	}
	m := make(map[[32]byte]*grokgate.Key, len(list))
	byID := make(map[string]*grokgate.Key, len(list))
	for i := range list {
		m[list[i].Hash] = &list[i]
		byID[list[i].ID] = &list[i]
	}
	c.snap.Store(&snapshot{gen: gen, keys: m, byID: byID})
	c.fresh.Clear()
	return nil
}

// Run reloads every interval until ctx ends. Errors are logged, and the last
// good snapshot keeps serving.
func (c *Cache) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := c.Load(ctx); err != nil && ctx.Err() == nil {
				c.log.Warn("reloading keys failed; serving the previous snapshot", "err", err)
			}
		}
	}
}

// Authenticate returns the key for secret.
func (c *Cache) Authenticate(ctx context.Context, secret string) (*grokgate.Key, error) {
	if secret == "" {
		return nil, ErrMissing
	}
	if !LooksLikeKey(secret) {
		return nil, ErrInvalid
	}
	h := Hash(secret)
	k := c.snap.Load().keys[h]
	if k == nil {
		if v, ok := c.fresh.Load(h); ok {
			k = v.(*grokgate.Key)
		} else if k = c.lookup(ctx, h); k == nil {
			return nil, ErrInvalid
		}
	}
	// The map lookup found the hash; comparing it again in constant time
	// keeps the final decision free of data-dependent timing.
	if subtle.ConstantTimeCompare(k.Hash[:], h[:]) != 1 {
		return nil, ErrInvalid
	}
	return c.usable(k)
}

// KeyByID returns the key with this id as the cache knows it, with the same
// errors as Authenticate: a session signed in with a key (package console)
// ends when the key is revoked or expires, as soon as any replica learns it.
func (c *Cache) KeyByID(id string) (*grokgate.Key, error) {
	k := c.snap.Load().byID[id]
	if k == nil {
		// Created moments ago and found by Authenticate: in fresh until
		// the next reload.
		c.fresh.Range(func(_, v any) bool {
			if fk := v.(*grokgate.Key); fk.ID == id {
				k = fk
				return false
			}
			return true
		})
	}
	if k == nil {
		return nil, ErrInvalid
	}
	return c.usable(k)
}

// usable returns k if it is neither revoked nor expired.
func (c *Cache) usable(k *grokgate.Key) (*grokgate.Key, error) {
	if !k.RevokedAt.IsZero() {
		return nil, ErrRevoked
	}
	if k.Expired(c.now()) {
		return nil, ErrExpired
	}
	return k, nil
}

func (c *Cache) lookup(ctx context.Context, h [32]byte) *grokgate.Key {
	c.missMu.Lock()
	defer c.missMu.Unlock()
	if v, ok := c.fresh.Load(h); ok {
		return v.(*grokgate.Key)
	}
	k, err := c.src.KeyByHash(ctx, h)
	if err != nil {
		if !errors.Is(err, grokgate.ErrNotFound) {
			c.log.Warn("key lookup failed", "err", err)
		}
		return nil
	}
	c.fresh.Store(h, &k)
	return &k
}
