package gateway

import (
	"context"
	"errors"
	"fmt"
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
	batches []int
	fail    error
}

func (g *gatedOwners) RecordResponseOwner(ctx context.Context, owners ...grokgate.ResponseOwner) error {
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
