// Package eventlog is the in-memory stream log: the events of generations
// that outlive their client, kept so a reader can replay them after a
// sequence number and follow the live ones. It serves one replica; the Redis
// stream log (package redis) has the same semantics for several.
//
// A log is dropped Retention after Finish, or Retention after its runner
// last renewed its lease when it never finishes (its replica died). Dropping
// is lazy (every call checks the log it touches) and swept by a goroutine
// that Close stops, so the memory of logs nobody asks about is released too.
//
// Memory is bounded by the bytes of event data (per stream and in total) and
// the number of streams; what would pass a bound is refused with
// grokgate.ErrStreamLogFull.
package eventlog

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/grokgate/grokgate"
)

// Defaults for Options' zero values.
const (
	DefaultRetention      = 10 * time.Minute
	DefaultMaxStreamBytes = 8 << 20
	DefaultMaxBytes       = 256 << 20
	DefaultMaxStreams     = 10000
)

// Options configures a Log. Zero values mean the defaults above.
type Options struct {
	// Retention is how long a log is kept after Finish, and how long a log
	// whose runner stopped renewing lives on.
	Retention time.Duration
	// MaxStreamBytes bounds the event data of one stream; MaxBytes the
	// event data of all streams; MaxStreams the number of streams.
	MaxStreamBytes int64
	MaxBytes       int64
	MaxStreams     int
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// SweepEvery is how often the sweeper drops expired logs; 0 means
	// Retention/10, at least a second.
	SweepEvery time.Duration
}

// Log is the in-memory stream log. Its methods are safe for concurrent use.
type Log struct {
	opt   Options
	bytes atomic.Int64 // event data held by all streams

	mu      sync.RWMutex
	streams map[string]*stream

	stop chan struct{}
	done chan struct{}
}

type stream struct {
	id string

	mu     sync.Mutex
	st     grokgate.StreamState
	ended  time.Time // when Finish was called
	events []grokgate.StreamEvent
	bytes  int64
	chunk  []byte        // the free end of the buffer new events are copied into
	wake   chan struct{} // closed (and replaced) when an event comes, on Finish and on drop
	waited bool          // a reader holds wake: it must be closed on the next change
	gone   bool          // dropped from the log
}

// New returns a log and starts its sweeper; Close stops it.
func New(opt Options) *Log {
	if opt.Retention <= 0 {
		opt.Retention = DefaultRetention
	}
	if opt.MaxStreamBytes <= 0 {
		opt.MaxStreamBytes = DefaultMaxStreamBytes
	}
	if opt.MaxBytes <= 0 {
		opt.MaxBytes = DefaultMaxBytes
	}
	if opt.MaxStreams <= 0 {
		opt.MaxStreams = DefaultMaxStreams
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.SweepEvery <= 0 {
		opt.SweepEvery = max(opt.Retention/10, time.Second)
	}
	l := &Log{opt: opt, streams: map[string]*stream{}, stop: make(chan struct{}), done: make(chan struct{})}
	go l.sweeper()
	return l
}

// Close stops the sweeper and wakes every waiting reader. The logs stay
// readable.
func (l *Log) Close() error {
	l.mu.Lock()
	select {
	case <-l.stop:
		l.mu.Unlock()
		return nil
	default:
		close(l.stop)
	}
	l.mu.Unlock()
	<-l.done
	return nil
}

func (l *Log) sweeper() {
	defer close(l.done)
	t := time.NewTicker(l.opt.SweepEvery)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
			l.Sweep()
		}
	}
}

// Sweep drops every log whose retention has ended. The sweeper calls it;
// tests with their own clock may too.
//
// Locks are taken stream first, then the map (drop), never the other way
// round, so Sweep copies the map before looking at each stream.
func (l *Log) Sweep() {
	l.mu.RLock()
	all := make([]*stream, 0, len(l.streams))
	for _, s := range l.streams {
		all = append(all, s)
	}
	l.mu.RUnlock()
	now := l.opt.Now()
	for _, s := range all {
		s.mu.Lock()
		if l.expired(s, now) {
			l.drop(s)
		}
		s.mu.Unlock()
	}
}

// expired says whether s's retention has ended; s.mu is held.
func (l *Log) expired(s *stream, now time.Time) bool {
	from := s.st.RunnerSeen
	if s.st.Ended {
		from = s.ended
	}
	return !now.Before(from.Add(l.opt.Retention))
}

// drop removes s from the log and releases its bytes; s.mu is held.
func (l *Log) drop(s *stream) {
	if s.gone {
		return
	}
	s.gone = true
	l.mu.Lock()
	if l.streams[s.id] == s {
		delete(l.streams, s.id)
	}
	l.mu.Unlock()
	l.bytes.Add(-s.bytes)
	s.events, s.chunk = nil, nil
	close(s.wake)
}

// get returns id's stream locked, or ErrStreamNotFound (dropping it first
// when its retention has ended).
func (l *Log) get(id string) (*stream, error) {
	l.mu.RLock()
	s := l.streams[id]
	l.mu.RUnlock()
	if s == nil {
		return nil, grokgate.ErrStreamNotFound
	}
	s.mu.Lock()
	if s.gone {
		s.mu.Unlock()
		return nil, grokgate.ErrStreamNotFound
	}
	if l.expired(s, l.opt.Now()) {
		l.drop(s)
		s.mu.Unlock()
		return nil, grokgate.ErrStreamNotFound
	}
	return s, nil
}

// Create starts a log for id. ErrStreamExists if id is taken;
// ErrStreamLogFull when MaxStreams streams exist or MaxBytes are held.
func (l *Log) Create(ctx context.Context, id string, meta grokgate.StreamMeta) error {
	now := l.opt.Now()
	if s, err := l.get(id); err == nil {
		s.mu.Unlock()
		return grokgate.ErrStreamExists
	}
	l.mu.Lock()
	if l.full() {
		// Expired logs nobody touched may still hold the room.
		l.mu.Unlock()
		l.Sweep()
		l.mu.Lock()
	}
	defer l.mu.Unlock()
	if _, ok := l.streams[id]; ok {
		return grokgate.ErrStreamExists
	}
	if l.full() {
		return grokgate.ErrStreamLogFull
	}
	l.streams[id] = &stream{id: id, wake: make(chan struct{}),
		st: grokgate.StreamState{Meta: meta, RunnerSeen: now}}
	return nil
}

// full says whether no stream may be created; l.mu is held.
func (l *Log) full() bool {
	return len(l.streams) >= l.opt.MaxStreams || l.bytes.Load() >= l.opt.MaxBytes
}

// reserve takes n bytes from the total bound, or says there is no room.
func (l *Log) reserve(n int64) bool {
	for {
		b := l.bytes.Load()
		if b+n > l.opt.MaxBytes {
			return false
		}
		if l.bytes.CompareAndSwap(b, b+n) {
			return true
		}
	}
}

// Chunks of event data grow from minChunk to maxChunk, so a short stream
// holds little and a long one allocates rarely.
const (
	minChunk = 2 << 10
	maxChunk = 64 << 10
)

// Append copies data into id's log as its next event and returns its
// sequence number. ErrStreamLogFull when the stream's or the total bound
// would be passed; ErrStreamEnded after Finish; ErrStreamNotFound.
func (l *Log) Append(ctx context.Context, id string, data []byte) (int64, error) {
	n := int64(len(data))
	for swept := false; ; swept = true {
		s, err := l.get(id)
		if err != nil {
			return 0, err
		}
		if s.st.Ended {
			s.mu.Unlock()
			return 0, grokgate.ErrStreamEnded
		}
		if s.bytes+n > l.opt.MaxStreamBytes {
			s.mu.Unlock()
			return 0, grokgate.ErrStreamLogFull
		}
		if !l.reserve(n) {
			s.mu.Unlock()
			if swept {
				return 0, grokgate.ErrStreamLogFull
			}
			// Expired logs nobody touched may still hold the room.
			l.Sweep()
			continue
		}
		s.bytes += n
		s.st.Last++
		seq := s.st.Last
		s.events = append(s.events, grokgate.StreamEvent{Seq: seq, Data: s.copy(data)})
		s.notify()
		s.mu.Unlock()
		return seq, nil
	}
}

// notify wakes the readers waiting on s; s.mu is held. A channel is made
// only when a reader took the last one, so appends nobody waits for cost no
// allocation.
func (s *stream) notify() {
	if s.waited {
		close(s.wake)
		s.wake, s.waited = make(chan struct{}), false
	}
}

// copy stores data in s's chunk buffer. Stored bytes are never written
// again, so readers may hold them without a lock.
func (s *stream) copy(data []byte) []byte {
	if len(data) > maxChunk/4 {
		return append([]byte(nil), data...)
	}
	if cap(s.chunk)-len(s.chunk) < len(data) {
		size := minChunk
		if c := cap(s.chunk); c > 0 {
			size = min(2*c, maxChunk)
		}
		s.chunk = make([]byte, 0, max(size, len(data)))
	}
	start := len(s.chunk)
	s.chunk = append(s.chunk, data...)
	return s.chunk[start:len(s.chunk):len(s.chunk)]
}

// Renew renews the runner's lease (RunnerSeen = now) and returns the state,
// so the runner sees Cancelled and ReadSeen. After Finish the retention
// still counts from Finish.
func (l *Log) Renew(ctx context.Context, id string) (grokgate.StreamState, error) {
	s, err := l.get(id)
	if err != nil {
		return grokgate.StreamState{}, err
	}
	defer s.mu.Unlock()
	s.st.RunnerSeen = l.opt.Now()
	return s.st, nil
}

// Finish marks the generation ended with status and wakes its readers; the
// log is kept for Retention from now. ErrStreamEnded when already finished.
func (l *Log) Finish(ctx context.Context, id, status string) error {
	s, err := l.get(id)
	if err != nil {
		return err
	}
	defer s.mu.Unlock()
	if s.st.Ended {
		return grokgate.ErrStreamEnded
	}
	s.st.Ended, s.st.Status, s.ended = true, status, l.opt.Now()
	s.notify()
	return nil
}

// Read returns up to max events (all when max < 1) with Seq > after. When
// there are none and the stream has not ended, it waits up to wait for one,
// returning early on a new event or Finish; if ctx ends first it returns
// ctx's error. It records the read (ReadSeen = now) and returns the state as
// of its end. The events' Data must not be modified.
func (l *Log) Read(ctx context.Context, id string, after int64, max int, wait time.Duration) ([]grokgate.StreamEvent, grokgate.StreamState, error) {
	after = clamp(after)
	var timer *time.Timer
	for {
		s, err := l.get(id)
		if err != nil {
			return nil, grokgate.StreamState{}, err
		}
		s.st.ReadSeen = l.opt.Now()
		if after < s.st.Last || s.st.Ended || wait <= 0 {
			evs := page(s.events, after, max)
			st := s.st
			s.mu.Unlock()
			return evs, st, nil
		}
		wake := s.wake
		s.waited = true
		s.mu.Unlock()
		if timer == nil {
			timer = time.NewTimer(wait)
			defer timer.Stop()
		}
		select {
		case <-wake:
		case <-timer.C:
			wait = 0 // one more pass returns the state as of now
		case <-ctx.Done():
			return nil, grokgate.StreamState{}, ctx.Err()
		case <-l.stop:
			wait = 0
		}
	}
}

func clamp(after int64) int64 {
	if after < 0 {
		return 0
	}
	return after
}

// page returns the events after seq after; events[i] has Seq i+1. The
// capacity is cut so a caller's append cannot reach the log's array.
func page(events []grokgate.StreamEvent, after int64, max int) []grokgate.StreamEvent {
	if after >= int64(len(events)) {
		return nil
	}
	end := len(events)
	if max > 0 && int64(max) < int64(end)-after {
		end = int(after) + max
	}
	return events[after:end:end]
}

// State returns the state without counting as a read.
func (l *Log) State(ctx context.Context, id string) (grokgate.StreamState, error) {
	s, err := l.get(id)
	if err != nil {
		return grokgate.StreamState{}, err
	}
	defer s.mu.Unlock()
	return s.st, nil
}

// Cancel sets the Cancelled flag for the runner to act on.
func (l *Log) Cancel(ctx context.Context, id string) error {
	s, err := l.get(id)
	if err != nil {
		return err
	}
	defer s.mu.Unlock()
	s.st.Cancelled = true
	return nil
}

// Len returns the number of logs held and their bytes of event data, for
// metrics and tests.
func (l *Log) Len() (streams int, bytes int64) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return len(l.streams), l.bytes.Load()
}
