package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/grokgate/grokgate"
	"github.com/grokgate/grokgate/sqlite"
)

// gatedOwners is a SQLite store whose writes wait for a gate and report
// their batch sizes, so a test can hold one write while others queue.
type gatedOwners struct {
	*sqlite.DB
	gate    chan struct{}
	mu      sync.Mutex
	calls   int // writes begun
	batches []int
	fail    error
}

func (g *gatedOwners) RecordResponseOwner(ctx context.Context, owners ...grokgate.ResponseOwner) error {
	g.mu.Lock()
	g.calls++
	g.mu.Unlock()
	<-g.gate
	g.mu.Lock()
	g.batches = append(g.batches, len(owners))
	fail := g.fail
	g.mu.Unlock()
	if fail != nil {
		return fail
	}
	return g.DB.RecordResponseOwner(ctx, owners...)
}

// TestOwnerBatcherGroupsWrites: owners recorded while a write is under way
// go together in the next write, every caller learns its own result, and
// every owner is in the store afterwards.
func TestOwnerBatcherGroupsWrites(t *testing.T) {
	db, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "o.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	g := &gatedOwners{DB: db, gate: make(chan struct{})}
	b := &ownerBatcher{store: g}
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Microsecond)
	const n = 20
	errs := make(chan error, n)
	go func() {
		errs <- b.record(ctx, grokgate.ResponseOwner{ResponseID: "resp-0", KeyID: "key_a", CreatedAt: now})
	}()
	// Wait until the first write holds the gate, then queue the rest.
	waitBatcher(t, func() bool { b.mu.Lock(); defer b.mu.Unlock(); return b.writing })
	var wg sync.WaitGroup
	for i := 1; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- b.record(ctx, grokgate.ResponseOwner{ResponseID: fmt.Sprintf("resp-%d", i), KeyID: "key_b", CreatedAt: now})
		}()
	}
	waitBatcher(t, func() bool { b.mu.Lock(); defer b.mu.Unlock(); return len(b.pending) == n-1 })
	close(g.gate)
	wg.Wait()
	for range n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	g.mu.Lock()
	if fmt.Sprint(g.batches) != fmt.Sprint([]int{1, n - 1}) {
		t.Errorf("batches %v, want [1 %d]", g.batches, n-1)
	}
	g.mu.Unlock()
	for i := range n {
		if _, err := db.ResponseOwner(ctx, fmt.Sprintf("resp-%d", i), now); err != nil {
			t.Errorf("resp-%d: %v", i, err)
		}
	}
	waitBatcher(t, func() bool { b.mu.Lock(); defer b.mu.Unlock(); return !b.writing })

	// A failed write fails every owner in its batch, and the next write
	// starts afresh.
	g.fail = errors.New("disk full")
	if err := b.record(ctx, grokgate.ResponseOwner{ResponseID: "resp-x", KeyID: "key_a", CreatedAt: now}); err == nil {
		t.Error("a failed write reported success")
	}
	g.fail = nil
	if err := b.record(ctx, grokgate.ResponseOwner{ResponseID: "resp-y", KeyID: "key_a", CreatedAt: now}); err != nil {
		t.Errorf("after a failure: %v", err)
	}
}

func waitBatcher(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(time.Millisecond)
	}
}

// TestOwnerBatcherWritesBehind: with a store only this process reads, an
// owner is recorded without waiting for the database, answered from memory
// until written, written in batches, not written at all if its response is
// forgotten first, and flush waits for what is still unwritten.
func TestOwnerBatcherWritesBehind(t *testing.T) {
	db, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "o.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	g := &gatedOwners{DB: db, gate: make(chan struct{})}
	b := &ownerBatcher{store: g, local: true, log: slog.New(slog.DiscardHandler)}
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Microsecond)
	own := func(id, key string) grokgate.ResponseOwner {
		return grokgate.ResponseOwner{ResponseID: id, KeyID: key, CreatedAt: now}
	}
	// The gate is shut: every record below returns without the database.
	if err := b.record(ctx, own("resp-0", "key_a")); err != nil {
		t.Fatal(err)
	}
	waitBatcher(t, func() bool { g.mu.Lock(); defer g.mu.Unlock(); return g.calls == 1 })
	for i := 1; i < 5; i++ {
		if err := b.record(ctx, own(fmt.Sprintf("resp-%d", i), "key_a")); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.record(ctx, own("resp-1", "key_b")); err != nil { // a second claim
		t.Fatal(err)
	}
	for i := range 5 {
		if o, ok := b.unwrittenOwner(fmt.Sprintf("resp-%d", i)); !ok || o.KeyID != "key_a" {
			t.Errorf("resp-%d from memory: %+v %v", i, o, ok)
		}
	}
	b.forget("resp-3") // still queued behind the write under way
	if _, ok := b.unwrittenOwner("resp-3"); ok {
		t.Error("a forgotten owner is still answered")
	}
	close(g.gate)
	b.flush()
	g.mu.Lock()
	if fmt.Sprint(g.batches) != "[1 3]" {
		t.Errorf("batches %v, want [1 3]: the first owner alone, then those that came during its write", g.batches)
	}
	g.mu.Unlock()
	for i := range 5 {
		id := fmt.Sprintf("resp-%d", i)
		o, err := db.ResponseOwner(ctx, id, now)
		switch {
		case i == 3 && !errors.Is(err, grokgate.ErrNotFound):
			t.Errorf("%s was forgotten before its write, yet stored: %+v %v", id, o, err)
		case i != 3 && (err != nil || o.KeyID != "key_a"):
			t.Errorf("%s: %+v %v", id, o, err)
		}
		if _, ok := b.unwrittenOwner(id); ok {
			t.Errorf("%s still in memory after its write", id)
		}
	}
}

// TestOwnerBatcherLingers: owners written behind gather for the linger and
// go in one write, and flush (serve's, before the store closes) ends the
// linger instead of waiting it out. The linger is an hour, so a flush that
// waited for it would never return.
func TestOwnerBatcherLingers(t *testing.T) {
	db, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "o.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	gate := make(chan struct{})
	close(gate)
	g := &gatedOwners{DB: db, gate: gate}
	b := &ownerBatcher{store: g, local: true, linger: time.Hour, log: slog.New(slog.DiscardHandler)}
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Microsecond)
	for i := range 5 {
		if err := b.record(ctx, grokgate.ResponseOwner{ResponseID: fmt.Sprintf("resp-%d", i), KeyID: "key_a", CreatedAt: now}); err != nil {
			t.Fatal(err)
		}
	}
	g.mu.Lock()
	calls := g.calls
	g.mu.Unlock()
	if calls != 0 {
		t.Fatalf("%d writes while the batch lingers, want none", calls)
	}
	if o, ok := b.unwrittenOwner("resp-4"); !ok || o.KeyID != "key_a" {
		t.Fatalf("a lingering owner is not answered from memory: %+v %v", o, ok)
	}
	done := make(chan struct{})
	go func() { b.flush(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("flush waited for the linger")
	}
	g.mu.Lock()
	if fmt.Sprint(g.batches) != "[5]" {
		t.Errorf("batches %v, want [5]: every owner of the linger in one write", g.batches)
	}
	g.mu.Unlock()
	for i := range 5 {
		if o, err := db.ResponseOwner(ctx, fmt.Sprintf("resp-%d", i), now); err != nil || o.KeyID != "key_a" {
			t.Errorf("resp-%d after flush: %+v %v", i, o, err)
		}
	}
}
