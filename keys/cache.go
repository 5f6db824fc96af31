package keys

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"sync"
	"sync/atomic"
	"time"

	"github.com/grokgate/grokgate"
)

// Source is the part of the store the cache reads.
type Source interface {
	// KeysChangedSince returns the keys created, changed or revoked after
	// the change numbered after (every key when after is negative), by any
	// process sharing the store, and the number of the last change it
	// returned (after, or 0, when none).
	KeysChangedSince(ctx context.Context, after int64) ([]grokgate.Key, int64, error)
	// KeyByHash returns the key with this hash, or grokgate.ErrNotFound.
	KeyByHash(ctx context.Context, hash [32]byte) (grokgate.Key, error)
}

// Result of an authentication attempt.
var (
	ErrMissing = errors.New("missing API key")
	ErrInvalid = errors.New("invalid API key")
	ErrRevoked = errors.New("revoked API key")
	ErrExpired = errors.New("expired API key")
	// ErrUnavailable is a key that cannot be checked because the store
	// does not answer: a key the cache does not know, or any key once the
	// cache is stale (ErrStale) or before its first load (ErrNotLoaded).
	ErrUnavailable = errors.New("the key store did not answer")
	// ErrStale is every key once the store has not answered for longer
	// than Options.MaxStaleness: a revocation is never ignored for longer.
	ErrStale = fmt.Errorf("%w for longer than the keys' maximum staleness", ErrUnavailable)
	// ErrNotLoaded is every key before the store first answered.
	ErrNotLoaded = fmt.Errorf("%w since the server started", ErrUnavailable)
)

// Options tunes a Cache. Zero values mean the defaults.
type Options struct {
	// Timeout bounds each store call: a lookup of a key the cache does not
	// know, and each poll for changes (a first, full load gets ten times
	// as long). 0 means DefaultTimeout.
	Timeout time.Duration
	// MaxStaleness is how long the cache keeps accepting the keys it knows
	// while the store does not answer; past it every key gets ErrStale
	// until the store answers again. 0 means DefaultMaxStaleness.
	MaxStaleness time.Duration
}

// Defaults of Options.
const (
	DefaultTimeout      = 5 * time.Second
	DefaultMaxStaleness = 5 * time.Minute
)

// Cache authenticates secrets against an in-memory snapshot of the store's
// keys. Reads take no lock: the snapshot is replaced whole, and following
// a change costs in proportion to the keys changed, not to all keys.
type Cache struct {
	src  Source
	now  func() time.Time
	log  *slog.Logger
	opts Options
	snap atomic.Pointer[snapshot]
	// synced is when (Unix nanoseconds) the last load that succeeded
	// began: the snapshot is at least as new. 0 before the first.
	synced atomic.Int64
	// fresh holds keys found by a store lookup after a snapshot miss (a key
	// created moments ago by another process); the next load supersedes it.
	fresh sync.Map // [32]byte -> *grokgate.Key
	// miss serialises store lookups for unknown hashes so a flood of bad
	// keys costs one query at a time, not one per request at once; a
	// request waits for its turn no longer than its lookup's timeout.
	miss chan struct{}

	loadMu sync.Mutex // one load at a time; guards the fields below
	// failingSince is when loads began to fail; zero while they succeed.
	failingSince time.Time
	staleLogged  bool
}

// snapshot is the keys as of change seq: base, shared between snapshots,
// and delta, the keys changed since base was built (they win over base's).
// A change copies only delta; delta is merged into a new base once it
// grows past a fraction of base, so following changes stays cheap
// whatever the number of keys.
type snapshot struct {
	seq   int64 // -1 before the first load
	base  index
	delta index
}

type index struct {
	byHash map[[32]byte]*grokgate.Key
	byID   map[string]*grokgate.Key
}

func newIndex(n int) index {
	return index{byHash: make(map[[32]byte]*grokgate.Key, n), byID: make(map[string]*grokgate.Key, n)}
}

func (x index) put(k *grokgate.Key) {
	x.byHash[k.Hash] = k
	x.byID[k.ID] = k
}

func (x index) clone(extra int) index {
	out := newIndex(len(x.byHash) + extra)
	maps.Copy(out.byHash, x.byHash)
	maps.Copy(out.byID, x.byID)
	return out
}

func (s *snapshot) byHash(h [32]byte) *grokgate.Key {
	if k := s.delta.byHash[h]; k != nil {
		return k
	}
	return s.base.byHash[h]
}

func (s *snapshot) byID(id string) *grokgate.Key {
	if k := s.delta.byID[id]; k != nil {
		return k
	}
	return s.base.byID[id]
}

// minDelta is how many changed keys a delta holds before it may be merged
// into base; past it, a delta is merged once it reaches an eighth of base.
const minDelta = 256

// apply returns the snapshot with changed applied, as of change seq.
func (s *snapshot) apply(changed []grokgate.Key, seq int64) *snapshot {
	n := &snapshot{seq: seq}
	switch {
	case s.seq < 0:
		n.base, n.delta = newIndex(len(changed)), newIndex(0)
		for i := range changed {
			n.base.put(&changed[i])
		}
	case len(s.delta.byHash)+len(changed) > max(minDelta, len(s.base.byHash)/8):
		n.base, n.delta = s.base.clone(len(s.delta.byHash)+len(changed)), newIndex(0)
		for _, k := range s.delta.byHash {
			n.base.put(k)
		}
		for i := range changed {
			n.base.put(&changed[i])
		}
	default:
		n.base, n.delta = s.base, s.delta.clone(len(changed))
		for i := range changed {
			n.delta.put(&changed[i])
		}
	}
	return n
}

// NewCache returns a cache over src with the default Options.
func NewCache(src Source, now func() time.Time, log *slog.Logger) *Cache {
	return NewCacheWith(src, now, log, Options{})
}

// NewCacheWith returns a cache over src. Call Load once before serving
// and Run in the background to follow changes.
func NewCacheWith(src Source, now func() time.Time, log *slog.Logger, o Options) *Cache {
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.MaxStaleness <= 0 {
		o.MaxStaleness = DefaultMaxStaleness
	}
	c := &Cache{src: src, now: now, log: log, opts: o, miss: make(chan struct{}, 1)}
	c.snap.Store(&snapshot{seq: -1, base: newIndex(0), delta: newIndex(0)})
	return c
}

// Load reads the keys changed since the last load (every key, the first
// time). It fails if the store does not answer within the timeout, and
// the keys already loaded keep serving, until they are stale.
func (c *Cache) Load(ctx context.Context) error {
	c.loadMu.Lock()
	defer c.loadMu.Unlock()
	start := c.now()
	cur := c.snap.Load()
	timeout := c.opts.Timeout
	if cur.seq < 0 {
		timeout *= 10
	}
	lctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	// Keys found by lookups so far were committed before this read, so
	// it brings them: their fresh entries can go once it succeeds.
	var found [][32]byte
	c.fresh.Range(func(h, _ any) bool {
		found = append(found, h.([32]byte))
		return true
	})
	changed, seq, err := c.src.KeysChangedSince(lctx, cur.seq)
	if err != nil {
		c.failed(start, err)
		return err
	}
	if len(changed) > 0 || cur.seq < 0 {
		c.snap.Store(cur.apply(changed, seq))
	}
	for _, h := range found {
		c.fresh.Delete(h)
	}
	c.synced.Store(start.UnixNano())
	if !c.failingSince.IsZero() {
		c.log.Info("the key store answers again; keys are up to date",
			"unanswered_for", start.Sub(c.failingSince).Round(time.Millisecond).String(), "was_stale", c.staleLogged)
		c.failingSince, c.staleLogged = time.Time{}, false
	}
	return nil
}

// failed notes a load that failed at start, logging the first failure of
// a run and the moment the keys become stale; called with loadMu held.
func (c *Cache) failed(start time.Time, err error) {
	if c.synced.Load() == 0 {
		return // the server's start-up reports these itself
	}
	if c.failingSince.IsZero() {
		c.failingSince = start
		c.log.Warn("the key store does not answer; serving the keys already known until it does, or until they are stale",
			"err", err, "max_staleness", c.opts.MaxStaleness.String())
	}
	if !c.staleLogged && c.stale(c.now()) {
		c.staleLogged = true
		c.log.Error("keys are stale: the key store has not answered for longer than the maximum staleness; refusing every key until it does",
			"last_answer", time.Unix(0, c.synced.Load()).UTC().Format(time.RFC3339), "max_staleness", c.opts.MaxStaleness.String(), "err", err)
	}
}

// stale reports whether the snapshot is too old to be trusted at now.
func (c *Cache) stale(now time.Time) bool {
	return now.UnixNano()-c.synced.Load() > int64(c.opts.MaxStaleness)
}

// unusable says why no key can be accepted at now, or nil.
func (c *Cache) unusable(now time.Time) error {
	switch synced := c.synced.Load(); {
	case synced == 0:
		return ErrNotLoaded
	case now.UnixNano()-synced > int64(c.opts.MaxStaleness):
		return ErrStale
	}
	return nil
}

// Run loads the changes every interval until ctx ends. Errors are logged
// (the first of a run, and when the keys become stale), and the last good
// snapshot keeps serving until it is stale.
func (c *Cache) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			c.Load(ctx)
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
	now := c.now()
	if err := c.unusable(now); err != nil {
		return nil, err
	}
	h := Hash(secret)
	k := c.snap.Load().byHash(h)
	if k == nil {
		if v, ok := c.fresh.Load(h); ok {
			k = v.(*grokgate.Key)
		} else {
			var err error
			if k, err = c.lookup(ctx, h); err != nil {
				return nil, err
			}
		}
	}
	// The map lookup found the hash; comparing it again in constant time
	// keeps the final decision free of data-dependent timing.
	if subtle.ConstantTimeCompare(k.Hash[:], h[:]) != 1 {
		return nil, ErrInvalid
	}
	return usable(k, now)
}

// KeyByID returns the key with this id as the cache knows it, with the same
// errors as Authenticate: a session signed in with a key (package console)
// ends when the key is revoked or expires, as soon as any replica learns it.
func (c *Cache) KeyByID(id string) (*grokgate.Key, error) {
	now := c.now()
	if err := c.unusable(now); err != nil {
		return nil, err
	}
	k := c.snap.Load().byID(id)
	if k == nil {
		// Created moments ago and found by Authenticate: in fresh until
		// the next load.
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
	return usable(k, now)
}

// usable returns k if it is neither revoked nor expired at now.
func usable(k *grokgate.Key, now time.Time) (*grokgate.Key, error) {
	if !k.RevokedAt.IsZero() {
		return nil, ErrRevoked
	}
	if k.Expired(now) {
		return nil, ErrExpired
	}
	return k, nil
}

// Status says whether k, a key Authenticate returned, is still usable as of
// the latest load: ErrRevoked or ErrExpired if not, nil if it is or the
// cache no longer knows it (it cannot tell).
func (c *Cache) Status(k *grokgate.Key) error {
	cur := c.snap.Load().byHash(k.Hash)
	if cur == nil {
		if v, ok := c.fresh.Load(k.Hash); ok {
			cur = v.(*grokgate.Key)
		} else {
			cur = k
		}
	}
	_, err := usable(cur, c.now())
	return err
}

// lookup asks the store for a hash the snapshot lacks: ErrInvalid if no key
// has it, ErrUnavailable (wrapping the cause) if the store does not answer
// within the timeout, waiting for a turn included.
func (c *Cache) lookup(ctx context.Context, h [32]byte) (*grokgate.Key, error) {
	ctx, cancel := context.WithTimeout(ctx, c.opts.Timeout)
	defer cancel()
	select {
	case c.miss <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: waiting for an earlier lookup: %w", ErrUnavailable, context.Cause(ctx))
	}
	defer func() { <-c.miss }()
	if v, ok := c.fresh.Load(h); ok {
		return v.(*grokgate.Key), nil
	}
	k, err := c.src.KeyByHash(ctx, h)
	switch {
	case errors.Is(err, grokgate.ErrNotFound):
		return nil, ErrInvalid
	case err != nil:
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	c.fresh.Store(h, &k)
	return &k, nil
}
