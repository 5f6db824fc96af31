package main

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/grokgate/grokgate"
)

// errStoreNotOpen is every store call before start-up first reached the
// database: it fails at once, and the caller answers 503.
var errStoreNotOpen = errors.New("the database has not answered since grokgate started")

// guardedStore is the store as a running server uses it. Every call gets a
// deadline (GROKGATE_STORE_TIMEOUT), so a database that stops answering
// costs a request a 503 after the timeout, never a hang; and until start-up
// reaches the database (it keeps trying in the background) every call
// fails at once with errStoreNotOpen.
type guardedStore struct {
	timeout time.Duration

	mu     sync.RWMutex
	st     store // nil until set
	closed bool
}

func newGuardedStore(timeout time.Duration) *guardedStore {
	return &guardedStore{timeout: timeout}
}

// set installs the opened store; after close it closes st instead.
func (g *guardedStore) set(st store) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		st.Close()
		return
	}
	g.st = st
}

// opened reports whether set was called.
func (g *guardedStore) opened() bool {
	g.mu.RLock()
	defer g.mu.RUnlock()
	return g.st != nil
}

// Close closes the store, if it was opened; a later set closes its store.
func (g *guardedStore) Close() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.closed = true
	if g.st == nil {
		return nil
	}
	return g.st.Close()
}

func (g *guardedStore) get() (store, error) {
	g.mu.RLock()
	defer g.mu.RUnlock()
	if g.st == nil {
		return nil, errStoreNotOpen
	}
	return g.st, nil
}

// guarded runs f on the store within d.
func guarded[T any](g *guardedStore, ctx context.Context, d time.Duration, f func(store, context.Context) (T, error)) (T, error) {
	st, err := g.get()
	if err != nil {
		var zero T
		return zero, err
	}
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	return f(st, ctx)
}

// guarded0 is guarded for methods that return only an error.
func guarded0(g *guardedStore, ctx context.Context, f func(store, context.Context) error) error {
	_, err := guarded(g, ctx, g.timeout, func(st store, ctx context.Context) (struct{}, error) { return struct{}{}, f(st, ctx) })
	return err
}

func (g *guardedStore) CreateKey(ctx context.Context, k grokgate.Key) error {
	return guarded0(g, ctx, func(st store, ctx context.Context) error { return st.CreateKey(ctx, k) })
}

func (g *guardedStore) CreateFirstKey(ctx context.Context, k grokgate.Key) (bool, error) {
	return guarded(g, ctx, g.timeout, func(st store, ctx context.Context) (bool, error) { return st.CreateFirstKey(ctx, k) })
}

func (g *guardedStore) KeyByID(ctx context.Context, id string) (grokgate.Key, error) {
	return guarded(g, ctx, g.timeout, func(st store, ctx context.Context) (grokgate.Key, error) { return st.KeyByID(ctx, id) })
}

func (g *guardedStore) KeyByHash(ctx context.Context, h [32]byte) (grokgate.Key, error) {
	return guarded(g, ctx, g.timeout, func(st store, ctx context.Context) (grokgate.Key, error) { return st.KeyByHash(ctx, h) })
}

func (g *guardedStore) ListKeys(ctx context.Context) ([]grokgate.Key, error) {
	return guarded(g, ctx, g.timeout, func(st store, ctx context.Context) ([]grokgate.Key, error) { return st.ListKeys(ctx) })
}

func (g *guardedStore) UpdateKey(ctx context.Context, id string, u grokgate.KeyUpdate) (grokgate.Key, error) {
	return guarded(g, ctx, g.timeout, func(st store, ctx context.Context) (grokgate.Key, error) { return st.UpdateKey(ctx, id, u) })
}

func (g *guardedStore) RevokeKey(ctx context.Context, id string, at time.Time) error {
	return guarded0(g, ctx, func(st store, ctx context.Context) error { return st.RevokeKey(ctx, id, at) })
}

func (g *guardedStore) KeysGeneration(ctx context.Context) (int64, error) {
	return guarded(g, ctx, g.timeout, func(st store, ctx context.Context) (int64, error) { return st.KeysGeneration(ctx) })
}

// KeysChangedSince gets ten times the timeout for a first, full read: every
// key, which at 100,000 keys takes a while on a busy database.
func (g *guardedStore) KeysChangedSince(ctx context.Context, after int64) ([]grokgate.Key, int64, error) {
	d := g.timeout
	if after < 0 {
		d *= 10
	}
	var last int64
	list, err := guarded(g, ctx, d, func(st store, ctx context.Context) ([]grokgate.Key, error) {
		list, l, err := st.KeysChangedSince(ctx, after)
		last = l
		return list, err
	})
	return list, last, err
}

// InsertUsage takes its deadline from the usage recorder (its write
// timeout): batches may be larger than a request's store call.
func (g *guardedStore) InsertUsage(ctx context.Context, recs []grokgate.Record) error {
	st, err := g.get()
	if err != nil {
		return err
	}
	return st.InsertUsage(ctx, recs)
}

// Spent is the limiter's read of the ledger when it rebuilds a key's
// budget.
func (g *guardedStore) Spent(ctx context.Context, keyID string, dayStart, monthStart time.Time) (day, month int64, err error) {
	_, err = guarded(g, ctx, g.timeout, func(st store, ctx context.Context) (struct{}, error) {
		var err error
		day, month, err = st.Spent(ctx, keyID, dayStart, monthStart)
		return struct{}{}, err
	})
	return day, month, err
}

func (g *guardedStore) UsageSummary(ctx context.Context, q grokgate.UsageQuery) ([]grokgate.UsageTotals, error) {
	return guarded(g, ctx, g.timeout, func(st store, ctx context.Context) ([]grokgate.UsageTotals, error) { return st.UsageSummary(ctx, q) })
}

func (g *guardedStore) RecordResponseOwner(ctx context.Context, owners ...grokgate.ResponseOwner) error {
	return guarded0(g, ctx, func(st store, ctx context.Context) error { return st.RecordResponseOwner(ctx, owners...) })
}

func (g *guardedStore) ResponseOwner(ctx context.Context, id string, now time.Time) (grokgate.ResponseOwner, error) {
	return guarded(g, ctx, g.timeout, func(st store, ctx context.Context) (grokgate.ResponseOwner, error) {
		return st.ResponseOwner(ctx, id, now)
	})
}

func (g *guardedStore) ForgetResponse(ctx context.Context, id string) error {
	return guarded0(g, ctx, func(st store, ctx context.Context) error { return st.ForgetResponse(ctx, id) })
}

// PruneResponseOwners and PruneSessions run in the background, under their
// callers' own deadlines: a large delete may take longer than a request's
// store call.
func (g *guardedStore) PruneResponseOwners(ctx context.Context, before time.Time) (int64, error) {
	st, err := g.get()
	if err != nil {
		return 0, err
	}
	return st.PruneResponseOwners(ctx, before)
}

func (g *guardedStore) RecentRecords(ctx context.Context, f grokgate.RecordFilter) ([]grokgate.Record, error) {
	return guarded(g, ctx, g.timeout, func(st store, ctx context.Context) ([]grokgate.Record, error) { return st.RecentRecords(ctx, f) })
}

func (g *guardedStore) CreateSession(ctx context.Context, se grokgate.Session) error {
	return guarded0(g, ctx, func(st store, ctx context.Context) error { return st.CreateSession(ctx, se) })
}

func (g *guardedStore) SessionByHash(ctx context.Context, h [32]byte, now time.Time) (grokgate.Session, error) {
	return guarded(g, ctx, g.timeout, func(st store, ctx context.Context) (grokgate.Session, error) {
		return st.SessionByHash(ctx, h, now)
	})
}

func (g *guardedStore) DeleteSession(ctx context.Context, h [32]byte) error {
	return guarded0(g, ctx, func(st store, ctx context.Context) error { return st.DeleteSession(ctx, h) })
}

func (g *guardedStore) PruneSessions(ctx context.Context, before time.Time) (int64, error) {
	st, err := g.get()
	if err != nil {
		return 0, err
	}
	return st.PruneSessions(ctx, before)
}

func (g *guardedStore) Ping(ctx context.Context) error {
	return guarded0(g, ctx, func(st store, ctx context.Context) error { return st.Ping(ctx) })
}
