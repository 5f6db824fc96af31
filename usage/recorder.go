package usage

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/grokgate/grokgate"
)

// Sink stores records. InsertUsage must be idempotent per request id: the
// recorder retries a batch whose outcome it cannot know.
type Sink interface {
	InsertUsage(ctx context.Context, recs []grokgate.Record) error
}

// Options tunes a Recorder; zero values mean the defaults.
type Options struct {
	// QueueSize bounds the records waiting to be written (default 8192).
	QueueSize int
	// BatchSize bounds one insert (default 256).
	BatchSize int
	// Linger is how long the writer waits for a batch to fill once its first
	// record arrived (default 100ms; negative: not at all). Under load one
	// commit per record would cost more CPU than the requests themselves;
	// a record still reaches the database within Linger plus a write.
	Linger time.Duration
	// MaxBlock is how long Record waits for room in a full queue before it
	// drops the record (default 50ms).
	MaxBlock time.Duration
	// Attempts is how often a batch is tried before its records count as
	// failed (default 4), with Backoff doubling between tries (default 250ms).
	Attempts int
	Backoff  time.Duration
	// WriteTimeout bounds one insert (default 10s).
	WriteTimeout time.Duration
}

// Stats are the recorder's counters since it started.
type Stats struct {
	Written int64 // stored
	Dropped int64 // refused at Record: queue full past MaxBlock, or recorder closed
	Failed  int64 // taken but not stored: every attempt failed, or Close ran out of time
	Queued  int64 // waiting now
}

// Recorder takes usage records off the request path and writes them in
// batches from one background goroutine.
//
// Backpressure: Record never waits on the database. It enqueues; when the
// queue is full (the database is slower than the traffic, or down) it waits
// up to MaxBlock for room, then drops the record. A record that is dropped,
// or that could not be written after every attempt, is logged at error level
// with all its fields, so the log holds what the ledger misses, and counted.
type Recorder struct {
	sink  Sink
	log   *slog.Logger
	opts  Options
	queue chan grokgate.Record
	// kick ends the writer's linger early: a full batch is waiting, or
	// Close was called.
	kick chan struct{}
	// mu orders Record against Close: senders hold it shared, so Close can
	// close the queue once no send is in progress.
	mu     sync.RWMutex
	closed bool
	// abandon ends pending writes when Close runs out of time.
	abandon       context.Context
	cancelAbandon context.CancelFunc
	done          chan struct{}

	written, dropped, failed atomic.Int64
}

// NewRecorder starts a recorder writing to sink. Call Close to flush it.
func NewRecorder(sink Sink, log *slog.Logger, opts Options) *Recorder {
	if opts.QueueSize <= 0 {
		opts.QueueSize = 8192
	}
	if opts.BatchSize <= 0 {
		opts.BatchSize = 256
	}
	if opts.Linger == 0 {
		opts.Linger = 100 * time.Millisecond
	}
	if opts.MaxBlock <= 0 {
		opts.MaxBlock = 50 * time.Millisecond
	}
	if opts.Attempts <= 0 {
		opts.Attempts = 4
	}
	if opts.Backoff <= 0 {
		opts.Backoff = 250 * time.Millisecond
	}
	if opts.WriteTimeout <= 0 {
		opts.WriteTimeout = 10 * time.Second
	}
	r := &Recorder{sink: sink, log: log, opts: opts,
		queue: make(chan grokgate.Record, opts.QueueSize), kick: make(chan struct{}, 1), done: make(chan struct{})}
	r.abandon, r.cancelAbandon = context.WithCancel(context.Background())
	go r.run()
	return r
}

// Record hands rec to the writer. It returns at once unless the queue is
// full, and never later than MaxBlock.
func (r *Recorder) Record(rec grokgate.Record) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.closed {
		r.drop(rec, "the recorder is closed (the server is stopping)")
		return
	}
	select {
	case r.queue <- rec:
		// The lingering writer already holds a batch's first record.
		if len(r.queue)+1 >= r.opts.BatchSize {
			r.wake()
		}
		return
	default:
	}
	r.wake()
	t := time.NewTimer(r.opts.MaxBlock)
	defer t.Stop()
	select {
	case r.queue <- rec:
	case <-t.C:
		r.drop(rec, "the usage queue is full: the database is not keeping up")
	}
}

// wake ends the writer's linger, if it is in one.
func (r *Recorder) wake() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

func (r *Recorder) drop(rec grokgate.Record, why string) {
	r.dropped.Add(1)
	r.log.Error("usage record dropped", append([]any{"reason", why}, Attrs(rec)...)...)
}

// Stats returns the counters.
func (r *Recorder) Stats() Stats {
	return Stats{Written: r.written.Load(), Dropped: r.dropped.Load(), Failed: r.failed.Load(), Queued: int64(len(r.queue))}
}

// Close stops taking records and writes every queued one. If ctx ends
// first, the remaining records are logged and counted as failed, and Close
// returns ctx's error once that is done.
func (r *Recorder) Close(ctx context.Context) error {
	r.mu.Lock()
	if !r.closed {
		r.closed = true
		close(r.queue)
		r.wake()
	}
	r.mu.Unlock()
	select {
	case <-r.done:
		return nil
	case <-ctx.Done():
	}
	r.cancelAbandon()
	<-r.done // quick now: every write fails at once and is logged
	return ctx.Err()
}

func (r *Recorder) run() {
	defer close(r.done)
	defer r.cancelAbandon()
	batch := make([]grokgate.Record, 0, r.opts.BatchSize)
	for rec := range r.queue {
		// Gather more for up to Linger, so a busy gateway commits a few
		// large batches a second instead of one per request.
		batch = r.fill(append(batch[:0], rec))
		r.write(batch)
	}
}

// fill adds queued records to batch: it lingers until a batch's worth is
// queued, Close is called or Linger has passed, then takes what is there.
// While it lingers it does not receive, so a request's Record only puts its
// record in the channel's buffer instead of waking this goroutine each time:
// one wake-up per batch, not per request, which at low load (idle cores to
// wake) costs more than the insert.
func (r *Recorder) fill(batch []grokgate.Record) []grokgate.Record {
	if r.opts.Linger > 0 && len(r.queue) < r.opts.BatchSize-len(batch) {
		t := time.NewTimer(r.opts.Linger)
		select {
		case <-t.C:
		case <-r.kick:
		case <-r.abandon.Done():
		}
		t.Stop()
	}
	for len(batch) < r.opts.BatchSize {
		select {
		case more, ok := <-r.queue:
			if !ok {
				return batch
			}
			batch = append(batch, more)
		default:
			return batch
		}
	}
	return batch
}

func (r *Recorder) write(batch []grokgate.Record) {
	wait := r.opts.Backoff
	var err error
	for attempt := 1; attempt <= r.opts.Attempts; attempt++ {
		ctx, cancel := context.WithTimeout(r.abandon, r.opts.WriteTimeout)
		err = r.sink.InsertUsage(ctx, batch)
		cancel()
		if err == nil {
			r.written.Add(int64(len(batch)))
			return
		}
		if r.abandon.Err() != nil || attempt == r.opts.Attempts {
			break
		}
		r.log.Warn("writing usage records failed; retrying", "records", len(batch), "attempt", attempt, "err", err)
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-r.abandon.Done():
		}
		t.Stop()
		wait *= 2
	}
	if errors.Is(err, context.Canceled) && r.abandon.Err() != nil {
		err = errors.New("shutdown deadline passed before the records were written")
	}
	r.failed.Add(int64(len(batch)))
	for _, rec := range batch {
		r.log.Error("usage record not written", append([]any{"err", err.Error()}, Attrs(rec)...)...)
	}
}

// Attrs renders a record as log attributes, so a record the ledger lacks can
// be recovered from the log.
func Attrs(rec grokgate.Record) []any {
	return []any{
		"request_id", rec.RequestID, "time", rec.Time.UTC().Format(time.RFC3339Nano), "key_id", rec.KeyID,
		"route", rec.Route, "requested_model", rec.RequestedModel, "model", rec.Model,
		"stream", rec.Stream, "fallback", rec.Fallback, "status", rec.Status, "outcome", string(rec.Outcome),
		"prompt_tokens", rec.PromptTokens, "completion_tokens", rec.CompletionTokens,
		"reasoning_tokens", rec.ReasoningTokens, "cached_tokens", rec.CachedTokens,
		"cost_in_usd_ticks", rec.CostTicks, "estimated", rec.Estimated,
		"latency_ms", float64(rec.Latency.Microseconds()) / 1000, "ttfb_ms", float64(rec.TTFB.Microseconds()) / 1000,
		"upstream_id", rec.UpstreamID,
	}
}
