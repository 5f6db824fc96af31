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

// Spool keeps records on local disk while the sink cannot take them, and
// the records the sink refused as invalid (package spool). Append and
// DeadLetter return once the records are on disk; Peek returns the oldest
// records waiting, and Remove forgets what the last Peek returned.
type Spool interface {
	Append(recs []grokgate.Record) error
	Peek(n int) ([]grokgate.Record, error)
	Remove() error
	DeadLetter(rec grokgate.Record, reason string) error
	Pending() int64
	DeadLetters() int64
}

// Journal learns each record as the recorder takes it (Final), and when it
// is safe in the sink or the spool (Durable), so that a process that dies
// in between leaves it for the next start (spool.Journal).
type Journal interface {
	Final(rec grokgate.Record)
	Durable(recs []grokgate.Record)
}

// Options tunes a Recorder; zero values mean the defaults.
type Options struct {
	// Spool, when set, takes every batch the sink fails to write, at once,
	// and the records the sink refuses as invalid; a background loop
	// replays the spool to the sink, oldest first, as soon as the sink
	// answers again. While records wait in the spool, new batches join
	// them there, so they reach the sink in order.
	Spool Spool
	// Journal, when set, is told of every record taken and made safe.
	Journal Journal
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
	// With a Spool a batch is tried once, then spooled, and Backoff is the
	// first pause of the replay loop after a failure, doubling up to
	// MaxBackoff (default 5s).
	Attempts   int
	Backoff    time.Duration
	MaxBackoff time.Duration
	// WriteTimeout bounds one insert (default 10s; 2s with a Spool, which
	// takes the batch then, so a hanging database holds the queue no
	// longer).
	WriteTimeout time.Duration
}

// Stats are the recorder's counters since it started.
type Stats struct {
	Written int64 // stored
	Dropped int64 // refused at Record: queue full past MaxBlock, or recorder closed
	Failed  int64 // taken but neither stored nor spooled: every attempt failed, or Close ran out of time
	Queued  int64 // waiting now

	Spooled      int64 // written to the spool because the sink did not take them
	Replayed     int64 // written from the spool to the sink
	DeadLettered int64 // refused by the sink as invalid, kept in the dead-letter file (or the log)
	// SpoolPending and DeadLetters are the spool's records waiting and
	// its dead letters now, this run's and earlier ones'.
	SpoolPending int64
	DeadLetters  int64
}

// Recorder takes usage records off the request path and writes them in
// batches from one background goroutine.
//
// With a Spool, no record it took is lost while the process lives: a batch
// the sink fails to write goes to the spool, and a record the sink refuses
// as invalid to its dead-letter file.
//
// Backpressure: Record never waits on the database. It enqueues; when the
// queue is full (the database is slower than the traffic, or down) it waits
// up to MaxBlock for room, then spools the record itself, or without a
// Spool drops it. A record that is dropped,
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

	// The replay loop (with a Spool): replayKick wakes it, replayStop
	// says the writer is done (replay what the sink takes, then return),
	// replayDone is closed when it returned.
	replayKick chan struct{}
	replayStop chan struct{}
	replayDone chan struct{}
	// spooling is set while batches go to the spool because the sink
	// failed, for one log line per outage.
	spooling atomic.Bool

	written, dropped, failed        atomic.Int64
	spooled, replayed, deadLettered atomic.Int64
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
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = 5 * time.Second
	}
	if opts.WriteTimeout <= 0 {
		opts.WriteTimeout = 10 * time.Second
		if opts.Spool != nil {
			opts.WriteTimeout = 2 * time.Second
		}
	}
	r := &Recorder{sink: sink, log: log, opts: opts,
		queue: make(chan grokgate.Record, opts.QueueSize), kick: make(chan struct{}, 1), done: make(chan struct{})}
	r.abandon, r.cancelAbandon = context.WithCancel(context.Background())
	go r.run()
	if opts.Spool != nil {
		r.replayKick, r.replayStop, r.replayDone = make(chan struct{}, 1), make(chan struct{}), make(chan struct{})
		go r.replay()
		r.wakeReplay() // what an earlier process left
	}
	return r
}

// Record hands rec to the writer. It returns at once unless the queue is
// full, and never later than MaxBlock.
func (r *Recorder) Record(rec grokgate.Record) {
	Sanitize(&rec)
	if r.opts.Journal != nil {
		r.opts.Journal.Final(rec)
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.closed {
		r.overflow(rec, "the recorder is closed (the server is stopping)")
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
		r.overflow(rec, "the usage queue is full: the database is not keeping up")
	}
}

// overflow keeps a record the queue cannot take: in the spool, on the
// request's goroutine (a write and an fsync: a full queue is rare, and the
// record is worth more), or dropped and logged without one.
func (r *Recorder) overflow(rec grokgate.Record, why string) {
	if sp := r.opts.Spool; sp != nil {
		batch := []grokgate.Record{rec}
		if err := sp.Append(batch); err == nil {
			r.spooled.Add(1)
			if r.opts.Journal != nil {
				r.opts.Journal.Durable(batch)
			}
			if !r.closed {
				r.wakeReplay()
			}
			return
		}
	}
	r.drop(rec, why)
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
	st := Stats{Written: r.written.Load(), Dropped: r.dropped.Load(), Failed: r.failed.Load(), Queued: int64(len(r.queue)),
		Spooled: r.spooled.Load(), Replayed: r.replayed.Load(), DeadLettered: r.deadLettered.Load()}
	if r.opts.Spool != nil {
		st.SpoolPending, st.DeadLetters = r.opts.Spool.Pending(), r.opts.Spool.DeadLetters()
	}
	return st
}

// Close stops taking records and writes every queued one. If ctx ends
// first, the remaining records are spooled, or without a Spool logged and
// counted as failed, and Close returns ctx's error once that is done. With
// a Spool, the replay goes on while the sink takes records and ctx lasts;
// what is left waits in the spool for the next start.
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
	case <-ctx.Done():
		r.cancelAbandon()
		<-r.done // quick now: every write fails at once and is spooled or logged
	}
	if r.replayDone != nil {
		select {
		case <-r.replayStop:
		default:
			close(r.replayStop)
		}
		select {
		case <-r.replayDone:
		case <-ctx.Done():
			r.cancelAbandon()
			<-r.replayDone
		}
	}
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
	sp := r.opts.Spool
	if sp != nil && sp.Pending() > 0 {
		// The sink is down, or the spool is still being replayed: the
		// batch waits behind the records already there.
		r.toSpool(batch, nil)
		return
	}
	attempts := r.opts.Attempts
	if sp != nil {
		attempts = 1
	}
	wait := r.opts.Backoff
	var err error
	for attempt := 1; attempt <= attempts; attempt++ {
		ctx, cancel := context.WithTimeout(r.abandon, r.opts.WriteTimeout)
		err = r.sink.InsertUsage(ctx, batch)
		cancel()
		if err == nil || isRejected(err) {
			r.stored(batch, err)
			r.written.Add(int64(len(batch)) - rejectedCount(err))
			return
		}
		if r.abandon.Err() != nil || attempt == attempts {
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
	if sp != nil {
		r.toSpool(batch, err)
		return
	}
	if errors.Is(err, context.Canceled) && r.abandon.Err() != nil {
		err = errors.New("shutdown deadline passed before the records were written")
	}
	r.failed.Add(int64(len(batch)))
	for _, rec := range batch {
		r.log.Error("usage record not written", append([]any{"err", err.Error()}, Attrs(rec)...)...)
	}
}

// isRejected reports whether the sink wrote a batch but refused some of its
// records as invalid.
func isRejected(err error) bool {
	var rej *grokgate.RejectedRecordsError
	return errors.As(err, &rej)
}

func rejectedCount(err error) int64 {
	var rej *grokgate.RejectedRecordsError
	if errors.As(err, &rej) {
		return int64(len(rej.Rejected))
	}
	return 0
}

// stored handles a batch the sink took: the records it refused as invalid
// go to the dead letters, and the journal forgets the batch.
func (r *Recorder) stored(batch []grokgate.Record, err error) {
	var rej *grokgate.RejectedRecordsError
	if errors.As(err, &rej) {
		for _, x := range rej.Rejected {
			r.deadLetter(x.Record, x.Reason)
		}
	}
	if r.opts.Journal != nil {
		r.opts.Journal.Durable(batch)
	}
}

// deadLetter keeps a record the sink refused: in the spool's dead-letter
// file, or in the log without one (or when the file cannot be written).
func (r *Recorder) deadLetter(rec grokgate.Record, reason string) {
	r.deadLettered.Add(1)
	if sp := r.opts.Spool; sp != nil {
		err := sp.DeadLetter(rec, reason)
		if err == nil {
			r.log.Error("usage record refused by the database; kept in the dead-letter file", "request_id", rec.RequestID, "reason", reason)
			return
		}
		reason += "; the dead-letter file could not be written either: " + err.Error()
	}
	r.log.Error("usage record refused by the database", append([]any{"reason", reason}, Attrs(rec)...)...)
}

// toSpool appends a batch the sink did not take to the spool; the replay
// loop writes it later. cause is the sink's error, nil when the batch only
// queues behind earlier ones.
func (r *Recorder) toSpool(batch []grokgate.Record, cause error) {
	if err := r.opts.Spool.Append(batch); err != nil {
		// The disk failed too: the log is the last resort, and the
		// journal keeps the records for the next start.
		r.failed.Add(int64(len(batch)))
		for _, rec := range batch {
			r.log.Error("usage record neither written nor spooled", append([]any{"err", err.Error(), "store_err", errString(cause)}, Attrs(rec)...)...)
		}
		return
	}
	r.spooled.Add(int64(len(batch)))
	if cause != nil && r.spooling.CompareAndSwap(false, true) {
		r.log.Warn("the database is not taking usage records; spooling them to disk until it does", "err", cause)
	}
	if r.opts.Journal != nil {
		r.opts.Journal.Durable(batch)
	}
	r.wakeReplay()
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// ReplaySpool has the replay loop look at the spool again: records were
// added to it from elsewhere (those an earlier run left in its journal).
func (r *Recorder) ReplaySpool() {
	if r.replayKick != nil {
		r.wakeReplay()
	}
}

func (r *Recorder) wakeReplay() {
	select {
	case r.replayKick <- struct{}{}:
	default:
	}
}

// replay writes the spool to the sink, oldest first, one batch at a time,
// and waits with a growing pause while the sink fails. Once the writer is
// done (replayStop) it goes on only while the sink takes records.
func (r *Recorder) replay() {
	defer close(r.replayDone)
	sp := r.opts.Spool
	wait := r.opts.Backoff
	stopping := false
	for {
		if sp.Pending() == 0 {
			if stopping {
				return
			}
			select {
			case <-r.replayKick:
			case <-r.replayStop:
				stopping = true
			}
			continue
		}
		recs, err := sp.Peek(r.opts.BatchSize)
		if err == nil && len(recs) > 0 {
			ctx, cancel := context.WithTimeout(r.abandon, r.opts.WriteTimeout)
			err = r.sink.InsertUsage(ctx, recs)
			cancel()
			if err == nil || isRejected(err) {
				var rej *grokgate.RejectedRecordsError
				if errors.As(err, &rej) {
					for _, x := range rej.Rejected {
						r.deadLetter(x.Record, x.Reason)
					}
				}
				if err := sp.Remove(); err != nil {
					r.log.Warn("usage spool: noting replayed records failed; they may be written again (harmless: idempotent)", "err", err)
				}
				r.replayed.Add(int64(len(recs)))
				wait = r.opts.Backoff
				if sp.Pending() == 0 && r.spooling.CompareAndSwap(true, false) {
					r.log.Info("the database takes usage records again; the spool is replayed", "replayed", r.replayed.Load())
				}
				continue
			}
		}
		if stopping || r.abandon.Err() != nil {
			return
		}
		if err != nil {
			r.log.Debug("replaying the usage spool failed; trying again", "pending", sp.Pending(), "in", wait.String(), "err", err)
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-r.replayStop:
			stopping = true
		case <-r.abandon.Done():
		}
		t.Stop()
		wait = min(wait*2, r.opts.MaxBackoff)
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
