package redis

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/grokgate/grokgate"
	"github.com/grokgate/grokgate/eventlog"
)

// StreamLogOptions configures a StreamLog. Zero values mean the defaults of
// the in-memory log (package eventlog).
type StreamLogOptions struct {
	// Prefix starts every Redis key; "" means "grokgate:sl:". Replicas
	// sharing streams must share it.
	Prefix string
	// Retention is how long a log is kept after Finish, and how long a log
	// whose runner stopped renewing lives on.
	Retention time.Duration
	// MaxStreamBytes bounds the event data of one stream; MaxBytes the
	// event data of all streams of every replica; MaxStreams their number.
	MaxStreamBytes int64
	MaxBytes       int64
	MaxStreams     int
	// Timeout bounds one call to Redis; 0 means a second.
	Timeout time.Duration
	// MaxWaiting bounds the reads of this replica waiting in Redis at once
	// (each holds a connection while it waits); 0 means 128. A read that
	// finds them all taken waits here for one, up to its own wait.
	MaxWaiting int
}

// StreamLog is the stream log shared by replicas: the events of a
// generation in a Redis stream whose entry ids are the events' sequence
// numbers ("<seq>-0"), its state in a hash beside it, both expiring with
// PEXPIREAT on Redis's clock. Every call but a waiting Read is one round trip
// (a Lua script, or one command); a Read that waits blocks in XREAD on a
// connection of its own pool and answers with what woke it (two round
// trips), and Finish adds an entry ("<last>-2") only to wake those reads.
//
// The bounds are kept in Redis for all replicas together: a counter of the
// event bytes held, each stream's share of it in a hash, and a sorted set of
// the live streams scored by when they expire. Expired streams are taken
// off (and their bytes released) by the next Create, or by an Append that
// would otherwise pass the total bound, so the bounds count exactly the
// streams whose retention has not ended. Bytes are event data only; Redis's
// own overhead per entry (tens of bytes) comes on top.
//
// The scripts touch the shared counters and the stream's keys together, so
// the log needs one Redis (or a primary with replicas), not a Cluster.
type StreamLog struct {
	rdb, block *goredis.Client
	opt        StreamLogOptions
	waiting    chan struct{} // a slot per read waiting in Redis
	ops        atomic.Int64
	idle       chan *waitConn // connections for waiting reads, not in use

	create, append, renew, finish, cancel, read *goredis.Script
}

// NewStreamLog returns a stream log on the Redis at url. It does not
// connect yet. Close closes its connections.
func NewStreamLog(url string, opt StreamLogOptions) (*StreamLog, error) {
	ro, err := goredis.ParseURL(url)
	if err != nil {
		return nil, errors.New("redis: the URL is not valid; write it like redis://HOST:6379/0")
	}
	if opt.Prefix == "" {
		opt.Prefix = "grokgate:sl:"
	}
	if opt.Retention <= 0 {
		opt.Retention = eventlog.DefaultRetention
	}
	if opt.MaxStreamBytes <= 0 {
		opt.MaxStreamBytes = eventlog.DefaultMaxStreamBytes
	}
	if opt.MaxBytes <= 0 {
		opt.MaxBytes = eventlog.DefaultMaxBytes
	}
	if opt.MaxStreams <= 0 {
		opt.MaxStreams = eventlog.DefaultMaxStreams
	}
	if opt.Timeout <= 0 {
		opt.Timeout = time.Second
	}
	if opt.MaxWaiting <= 0 {
		opt.MaxWaiting = 128
	}
	ro.DialTimeout, ro.ReadTimeout, ro.WriteTimeout = opt.Timeout, opt.Timeout, opt.Timeout
	ro.PoolTimeout = 2 * opt.Timeout
	ro.MaxRetries = -1 // a retried Append could append twice
	ro.MaintNotificationsConfig = noMaintNotifications()
	bo := *ro
	bo.MaintNotificationsConfig = noMaintNotifications()
	ro.PoolSize = 64
	ro.MinIdleConns = 4
	// Waiting reads get their own pool, so they never hold the connections
	// the runners append on.
	bo.PoolSize = opt.MaxWaiting
	// A waiting read's deadline is its wait plus Timeout, not go-redis's
	// wait plus 10 s, so a Redis that hangs costs a reader little more than
	// its wait.
	bo.ContextTimeoutEnabled = true
	s := &StreamLog{rdb: goredis.NewClient(ro), block: goredis.NewClient(&bo), opt: opt,
		waiting: make(chan struct{}, opt.MaxWaiting), idle: make(chan *waitConn, opt.MaxWaiting),
		create: goredis.NewScript(slCreate), append: goredis.NewScript(slAppend), renew: goredis.NewScript(slRenew),
		finish: goredis.NewScript(slFinish), cancel: goredis.NewScript(slCancel), read: goredis.NewScript(slRead)}
	s.rdb.AddHook(counter{&s.ops})
	s.block.AddHook(counter{&s.ops})
	return s, nil
}

// Ping checks that Redis answers.
func (s *StreamLog) Ping(ctx context.Context) error { return s.rdb.Ping(ctx).Err() }

// Close closes the connections, which ends the reads waiting in Redis.
func (s *StreamLog) Close() error {
	for {
		select {
		case w := <-s.idle:
			w.c.Close()
			continue
		default:
		}
		break
	}
	return errors.Join(s.rdb.Close(), s.block.Close())
}

// RoundTrips returns how many commands and pipelines this log has sent to
// Redis, for benchmarks and metrics.
func (s *StreamLog) RoundTrips() int64 { return s.ops.Load() }

// counter is a go-redis hook counting round trips.
type counter struct{ n *atomic.Int64 }

func (counter) DialHook(next goredis.DialHook) goredis.DialHook { return next }
func (c counter) ProcessHook(next goredis.ProcessHook) goredis.ProcessHook {
	return func(ctx context.Context, cmd goredis.Cmder) error {
		c.n.Add(1)
		return next(ctx, cmd)
	}
}
func (c counter) ProcessPipelineHook(next goredis.ProcessPipelineHook) goredis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []goredis.Cmder) error {
		c.n.Add(1)
		return next(ctx, cmds)
	}
}

func (s *StreamLog) keys(id string) []string {
	p := s.opt.Prefix + "{" + id + "}:" // the stream's keys in one hash slot
	return []string{p + "m", p + "e"}
}

// Script results below zero are these errors.
func scriptErr(n int64) error {
	switch n {
	case -1:
		return grokgate.ErrStreamNotFound
	case -2:
		return grokgate.ErrStreamEnded
	case -3:
		return grokgate.ErrStreamLogFull
	case -4:
		return grokgate.ErrStreamExists
	}
	return fmt.Errorf("redis: stream log script returned %d", n)
}

func (s *StreamLog) fail(what string, err error) error {
	return fmt.Errorf("redis: stream log %s: %w", what, err)
}

// Create starts a log for id. ErrStreamExists if id is taken;
// ErrStreamLogFull when MaxStreams streams exist or MaxBytes are held.
func (s *StreamLog) Create(ctx context.Context, id string, meta grokgate.StreamMeta) error {
	created := ""
	if !meta.Created.IsZero() {
		created = strconv.FormatInt(meta.Created.UnixNano(), 10)
	}
	n, err := s.create.Run(ctx, s.rdb, s.keys(id), s.opt.Prefix, id, meta.Owner, meta.Dialect, meta.Model, created,
		ms(s.opt.Retention), s.opt.MaxStreams, s.opt.MaxBytes).Int64()
	if err != nil {
		return s.fail("create", err)
	}
	if n < 0 {
		return scriptErr(n)
	}
	return nil
}

// Append adds data as id's next event and returns its sequence number, in
// one round trip. ErrStreamLogFull when the stream's or the total bound
// would be passed; ErrStreamEnded after Finish; ErrStreamNotFound.
func (s *StreamLog) Append(ctx context.Context, id string, data []byte) (int64, error) {
	n, err := s.append.Run(ctx, s.rdb, s.keys(id), s.opt.Prefix, id, data, s.opt.MaxStreamBytes, s.opt.MaxBytes).Int64()
	if err != nil {
		return 0, s.fail("append", err)
	}
	if n < 0 {
		return 0, scriptErr(n)
	}
	return n, nil
}

// Renew renews the runner's lease (RunnerSeen = now, and the log's expiry
// unless it has ended) and returns the state.
func (s *StreamLog) Renew(ctx context.Context, id string) (grokgate.StreamState, error) {
	v, err := s.renew.Run(ctx, s.rdb, s.keys(id), s.opt.Prefix, id, ms(s.opt.Retention)).Slice()
	if err != nil {
		return grokgate.StreamState{}, s.stateErr("renew", err)
	}
	return parseState(v)
}

// Finish marks the generation ended with status and wakes its readers; the
// log is kept for Retention from now. ErrStreamEnded when already finished.
func (s *StreamLog) Finish(ctx context.Context, id, status string) error {
	n, err := s.finish.Run(ctx, s.rdb, s.keys(id), s.opt.Prefix, id, status, ms(s.opt.Retention)).Int64()
	if err != nil {
		return s.fail("finish", err)
	}
	if n < 0 {
		return scriptErr(n)
	}
	return nil
}

// Cancel sets the Cancelled flag for the runner to act on.
func (s *StreamLog) Cancel(ctx context.Context, id string) error {
	n, err := s.cancel.Run(ctx, s.rdb, s.keys(id)).Int64()
	if err != nil {
		return s.fail("cancel", err)
	}
	if n < 0 {
		return scriptErr(n)
	}
	return nil
}

// stateFields is how many hash fields parseState reads: o d m c e s l r rd x
// (owner, dialect, model, created, ended, status, last, runner seen, read
// seen, cancelled), in the scripts' order.
const stateFields = 10

// State returns the state without counting as a read.
func (s *StreamLog) State(ctx context.Context, id string) (grokgate.StreamState, error) {
	v, err := s.rdb.HMGet(ctx, s.keys(id)[0], "o", "d", "m", "c", "e", "s", "l", "r", "rd", "x").Result()
	if err != nil {
		return grokgate.StreamState{}, s.fail("state", err)
	}
	return parseState(v)
}

func (s *StreamLog) stateErr(what string, err error) error {
	if errors.Is(err, goredis.Nil) {
		return grokgate.ErrStreamNotFound
	}
	return s.fail(what, err)
}

// parseState reads the hash fields of stateFields; a missing owner field
// means the stream does not exist.
func parseState(v []any) (grokgate.StreamState, error) {
	if len(v) != stateFields || v[0] == nil {
		return grokgate.StreamState{}, grokgate.ErrStreamNotFound
	}
	str := func(i int) string {
		s, _ := v[i].(string)
		return s
	}
	num := func(i int) int64 {
		switch x := v[i].(type) {
		case string:
			n, _ := strconv.ParseInt(x, 10, 64)
			return n
		case int64:
			return x
		}
		return 0
	}
	st := grokgate.StreamState{
		Meta:      grokgate.StreamMeta{Owner: str(0), Dialect: str(1), Model: str(2)},
		Ended:     str(4) == "1",
		Status:    str(5),
		Last:      num(6),
		Cancelled: str(9) == "1",
	}
	if c := str(3); c != "" {
		st.Meta.Created = time.Unix(0, num(3))
	}
	if r := num(7); r > 0 {
		st.RunnerSeen = time.UnixMilli(r)
	}
	if r := num(8); r > 0 {
		st.ReadSeen = time.UnixMilli(r)
	}
	return st, nil
}

// Read returns up to max events (all when max < 1) with Seq > after. When
// there are none and the stream has not ended, it waits up to wait for one
// in XREAD BLOCK, returning early on a new event or Finish; if ctx ends
// first it returns ctx's error. It records the read (ReadSeen = now) and
// returns the state as of its look, brought up to date by what woke it.
func (s *StreamLog) Read(ctx context.Context, id string, after int64, max int, wait time.Duration) ([]grokgate.StreamEvent, grokgate.StreamState, error) {
	after = max64(after, 0)
	max = max0(max)
	var deadline time.Time
	if wait > 0 {
		deadline = time.Now().Add(wait)
	}
	keys := s.keys(id)
	for {
		v, err := s.read.Run(ctx, s.rdb, keys, after, max).Slice()
		if err != nil {
			return nil, grokgate.StreamState{}, s.stateErr("read", err)
		}
		if len(v) != 2 {
			return nil, grokgate.StreamState{}, s.fail("read", errors.New("unexpected reply"))
		}
		sv, _ := v[0].([]any)
		st, err := parseState(sv)
		if err != nil {
			return nil, st, err
		}
		data, _ := v[1].([]any)
		left := time.Until(deadline)
		if len(data) > 0 || st.Ended || wait <= 0 || left < time.Millisecond {
			evs := make([]grokgate.StreamEvent, len(data))
			for i, d := range data {
				ds, _ := d.(string)
				evs[i] = grokgate.StreamEvent{Seq: after + 1 + int64(i), Data: []byte(ds)}
			}
			return evs, st, nil
		}
		msgs, err := s.await(ctx, keys[1], st.Last, left, max)
		if err != nil {
			return nil, grokgate.StreamState{}, err
		}
		// What woke the read is its answer, without another look.
		if evs, st := woken(msgs, st, after, max); len(evs) > 0 || st.Ended {
			return evs, st, nil
		}
		wait = time.Until(deadline)
	}
}

// woken turns the entries a waiting read was woken by into its answer: the
// events after seq after (up to max), and the state of the read's look with
// Last, Ended and Status brought up to date (RunnerSeen and Cancelled are
// as the look found them, at most the wait before).
func woken(msgs []goredis.XMessage, st grokgate.StreamState, after int64, max int) ([]grokgate.StreamEvent, grokgate.StreamState) {
	var evs []grokgate.StreamEvent
	for _, m := range msgs {
		seq, kind, ok := entryID(m.ID)
		switch {
		case !ok:
			return evs, st
		case kind == 0 && seq == st.Last+1:
			st.Last = seq
			if seq > after && (max == 0 || len(evs) < max) {
				d, _ := m.Values["d"].(string)
				evs = append(evs, grokgate.StreamEvent{Seq: seq, Data: []byte(d)})
			}
		case kind == 2 && seq == st.Last:
			f, _ := m.Values["f"].(string)
			st.Ended, st.Status = true, f
		default:
			return evs, st
		}
	}
	return evs, st
}

// entryID splits a stream entry id "<seq>-<kind>".
func entryID(id string) (seq, kind int64, ok bool) {
	i := strings.IndexByte(id, '-')
	if i < 0 {
		return 0, 0, false
	}
	seq, err1 := strconv.ParseInt(id[:i], 10, 64)
	kind, err2 := strconv.ParseInt(id[i+1:], 10, 64)
	return seq, kind, err1 == nil && err2 == nil
}

// await blocks in Redis until the stream has an entry after last (the event
// after it, or Finish's marker "<last>-2"; XREAD starts after "<last>-1",
// which also skips Create's 0-1) or left has passed, and returns the
// entries after it (none when left passed), or ctx's error if ctx ends
// first.
//
// It waits on a connection whose client id it knows, so a reader that
// leaves (ctx ends) is unblocked at once with CLIENT UNBLOCK and gives its
// slot back, rather than holding it for the rest of its wait.
func (s *StreamLog) await(ctx context.Context, stream string, last int64, left time.Duration, count int) ([]goredis.XMessage, error) {
	timer := time.NewTimer(left)
	select {
	case s.waiting <- struct{}{}:
		timer.Stop()
	case <-timer.C:
		return nil, nil
	case <-ctx.Done():
		timer.Stop()
		return nil, ctx.Err()
	}
	defer func() { <-s.waiting }()
	w, err := s.waitConn(ctx)
	if err != nil {
		return nil, s.fail("wait", err)
	}
	// The reader may leave before XREAD reaches Redis, when UNBLOCK has
	// nothing to unblock yet: it is sent again until one takes or XREAD ends.
	finished, unblocked := make(chan struct{}), make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		defer close(unblocked)
		for {
			uctx, cancel := context.WithTimeout(context.Background(), s.opt.Timeout)
			n, err := s.rdb.ClientUnblock(uctx, w.id).Result()
			cancel()
			if err != nil || n == 1 {
				return
			}
			select {
			case <-finished:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	})
	bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), left+s.opt.Timeout)
	if count > 0 {
		count++ // room for Finish's marker after a full page
	}
	res, err := w.c.XRead(bctx, &goredis.XReadArgs{
		Streams: []string{stream, strconv.FormatInt(last, 10) + "-1"},
		Count:   int64(count),
		Block:   max(left.Truncate(time.Millisecond), time.Millisecond),
	}).Result()
	cancel()
	close(finished)
	if !stop() {
		<-unblocked // no UNBLOCK may reach w's next wait
	}
	if err != nil && !errors.Is(err, goredis.Nil) {
		w.c.Close()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, s.fail("wait", err)
	}
	s.idle <- w
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	if len(res) == 0 {
		return nil, nil
	}
	return res[0].Messages, nil
}

// waitConn is a connection for blocking reads with its client id.
type waitConn struct {
	c  *goredis.Conn
	id int64
}

// waitConn takes an idle waiting connection or opens one; a slot of
// s.waiting is held, so there are never more than MaxWaiting.
func (s *StreamLog) waitConn(ctx context.Context) (*waitConn, error) {
	select {
	case w := <-s.idle:
		return w, nil
	default:
	}
	c := s.block.Conn()
	id, err := c.ClientID(ctx).Result()
	if err != nil {
		c.Close()
		return nil, err
	}
	return &waitConn{c, id}, nil
}

func max64(a, b int64) int64 {
	if a > b {
		return a
	}
	return b
}

func max0(n int) int {
	if n < 0 {
		return 0
	}
	return n
}
