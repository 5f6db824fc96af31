package gateway

import (
	"context"
	"sync"

	"github.com/grokgate/grokgate"
)

// ownerBatcher writes response owners with group commit: the first writer
// to arrive writes, and owners that arrive while it writes wait and go
// together in its next write. Concurrent streams then share one database
// commit instead of paying one each (on SQLite, most of the CPU a Responses
// stream costs grokgate), and a lone stream still writes at once: there is
// no timer to wait for and no goroutine of its own.
type ownerBatcher struct {
	store ResponseOwners

	mu      sync.Mutex
	writing bool
	pending []*pendingOwner
}

type pendingOwner struct {
	o    grokgate.ResponseOwner
	done chan error
}

// maxOwnerBatch bounds one statement (SQLite allows 32,766 parameters).
const maxOwnerBatch = 256

// record writes o, in a batch with whatever other owners are waiting, and
// returns when it is written or ctx ends. The caller that finds no write
// under way writes the first batch itself; owners that arrived meanwhile
// are written by a goroutine, so no request waits on others' writes.
func (b *ownerBatcher) record(ctx context.Context, o grokgate.ResponseOwner) error {
	p := &pendingOwner{o: o, done: make(chan error, 1)}
	b.mu.Lock()
	b.pending = append(b.pending, p)
	if !b.writing {
		b.writing = true
		b.writeBatch(ctx)
		if len(b.pending) > 0 {
			go b.drain(context.WithoutCancel(ctx))
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

// drain writes batches until none is waiting.
func (b *ownerBatcher) drain(ctx context.Context) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for len(b.pending) > 0 {
		wctx, cancel := context.WithTimeout(ctx, storeTimeout)
		b.writeBatch(wctx)
		cancel()
	}
	b.writing = false
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
		q.done <- err
	}
	b.mu.Lock()
}
