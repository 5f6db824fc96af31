package gateway

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/grokgate/grokgate"
)

// ownerBatcher writes response owners with group commit: the first writer
// to arrive writes, and owners that arrive while it writes wait and go
// together in its next write. Concurrent streams then share one database
// commit instead of paying one each (on SQLite, most of the CPU a Responses
// stream costs grokgate).
//
// With several replicas on one store (PostgreSQL) every other replica must
// find the owner as soon as the client has the id, so record waits for the
// write, and a lone stream writes at once, with no timer and no goroutine
// of its own. When the store is read by this process alone (SQLite),
// owners are written behind instead: record returns at once, the owner is
// answered from memory until its batch is written, and a batch gathers for
// up to linger first (SQLite's commit, its file locks and page writes, is
// most of what an owner costs, and concurrent streams rarely arrive during
// a write).
type ownerBatcher struct {
	store ResponseOwners
	local bool // the store is read by this process alone: write behind
	// linger is how long a batch written behind gathers owners before it
	// is written; zero writes at once. A process killed meanwhile loses
	// them (their responses then answer 404, as for an unknown id).
	linger time.Duration
	log    *slog.Logger
	// kick ends a linger early: the batch is full, or flush waits.
	kick chan struct{}

	mu      sync.Mutex
	writing bool
	pending []*pendingOwner
	// unwritten holds, when local, the owners not yet written, by id.
	unwritten map[string]grokgate.ResponseOwner
	idle      *sync.Cond // signalled when a write-behind drain ends
}

type pendingOwner struct {
	o    grokgate.ResponseOwner
	done chan error // the write's result, for a waiting recorder; nil when written behind
}

// ownerLinger is how long owners written behind gather into one batch: at
// a hundred new responses a second, five go in a commit instead of one.
const ownerLinger = 50 * time.Millisecond

// maxOwnerBatch bounds one statement (SQLite allows 32,766 parameters).
const maxOwnerBatch = 256

// record writes o, in a batch with whatever other owners are waiting, and
// returns when it is written or ctx ends. The caller that finds no write
// under way writes the first batch itself; owners that arrived meanwhile
// are written by a goroutine, so no request waits on others' writes.
func (b *ownerBatcher) record(ctx context.Context, o grokgate.ResponseOwner) error {
	if b.local {
		b.behind(o)
		return nil
	}
	p := &pendingOwner{o: o, done: make(chan error, 1)}
	b.mu.Lock()
	b.pending = append(b.pending, p)
	if !b.writing {
		b.writing = true
		b.writeBatch(ctx)
		if len(b.pending) > 0 {
			go b.drain(context.WithoutCancel(ctx), 0)
		} else {
			b.writing = false
		}
	}
	b.mu.Unlock()
	select {
	case err := <-p.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// behind queues o to be written behind, answering for it from memory
// meanwhile; an id keeps its first owner, as in the store.
func (b *ownerBatcher) behind(o grokgate.ResponseOwner) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.unwritten[o.ResponseID]; ok {
		return
	}
	if b.unwritten == nil {
		b.unwritten = map[string]grokgate.ResponseOwner{}
		b.idle = sync.NewCond(&b.mu)
		b.kick = make(chan struct{}, 1)
	}
	b.unwritten[o.ResponseID] = o
	b.pending = append(b.pending, &pendingOwner{o: o}) // no one waits: done stays nil
	switch {
	case !b.writing:
		b.writing = true
		go b.drain(context.Background(), b.linger)
	case len(b.pending) >= maxOwnerBatch:
		b.wake()
	}
}

// wake ends a linger under way, if any; b.mu is held.
func (b *ownerBatcher) wake() {
	select {
	case b.kick <- struct{}{}:
	default:
	}
}

// unwrittenOwner returns the owner of id if it is waiting to be written.
func (b *ownerBatcher) unwrittenOwner(id string) (grokgate.ResponseOwner, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	o, ok := b.unwritten[id]
	return o, ok
}

// forget drops id's owner if it is waiting to be written, or waits for the
// write under way that carries it, so that the store's own forgetting,
// which follows, is not undone by a late write.
func (b *ownerBatcher) forget(id string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := len(b.pending)
	b.pending = slices.DeleteFunc(b.pending, func(p *pendingOwner) bool { return p.o.ResponseID == id })
	if len(b.pending) < n {
		delete(b.unwritten, id)
		return
	}
	for _, ok := b.unwritten[id]; ok; _, ok = b.unwritten[id] {
		b.idle.Wait()
	}
}

// flush waits until every owner recorded behind has been written.
func (b *ownerBatcher) flush() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for b.writing && b.idle != nil {
		b.wake()
		b.idle.Wait()
	}
}

// drain writes batches until none is waiting, the first after gathering
// owners for up to linger.
func (b *ownerBatcher) drain(ctx context.Context, linger time.Duration) {
	if linger > 0 {
		t := time.NewTimer(linger)
		select {
		case <-t.C:
		case <-b.kick:
			t.Stop()
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for len(b.pending) > 0 {
		wctx, cancel := context.WithTimeout(ctx, storeTimeout)
		b.writeBatch(wctx)
		cancel()
	}
	b.writing = false
	if b.idle != nil {
		b.idle.Broadcast()
	}
}

// writeBatch writes up to maxOwnerBatch waiting owners and tells each the
// result. It is called with b.mu held and returns with it held; the lock is
// not held during the write.
func (b *ownerBatcher) writeBatch(ctx context.Context) {
	n := min(len(b.pending), maxOwnerBatch)
	batch := b.pending[:n:n]
	b.pending = b.pending[n:]
	b.mu.Unlock()
	owners := make([]grokgate.ResponseOwner, len(batch))
	for i, q := range batch {
		owners[i] = q.o
	}
	err := b.store.RecordResponseOwner(ctx, owners...)
	for _, q := range batch {
		if q.done != nil {
			q.done <- err
		}
	}
	b.mu.Lock()
	if b.local {
		// Written or not, they leave memory: a failed write is logged, and
		// its owners lose their responses as they would waiting for it.
		for _, q := range batch {
			if b.unwritten[q.o.ResponseID] == q.o {
				delete(b.unwritten, q.o.ResponseID)
			}
		}
		b.idle.Broadcast()
		if err != nil {
			b.log.Error("recording responses' owners failed; their owners cannot retrieve or continue them",
				"responses", len(batch), "err", err)
		}
	}
}

// FlushOwners waits until the owners of new responses are written; serve
// calls it before it closes the store.
func (s *Server) FlushOwners() { s.owners.flush() }
