// Package eventlogtest is the conformance suite every grokgate stream log
// must pass, so the in-memory and the Redis log keep the same semantics:
// sequence numbers, replay and paging, waiting readers woken by events and
// by Finish, the runner's lease and the cancel flag, bounds, retention, and
// byte-exact events of any size.
package eventlogtest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/grokgate/grokgate"
	"github.com/grokgate/grokgate/gateway"
)

// Log is what the suite exercises: the interface the gateway declares, so
// the two cannot drift apart.
type Log = gateway.StreamLog

// Bounds is what a test asks of the log it opens; zero fields mean the
// implementation's defaults.
type Bounds struct {
	MaxStreamBytes int64
	MaxBytes       int64
	MaxStreams     int
}

// Env is one test's log.
type Env struct {
	L Log
	// Replica returns another log sharing L's state, as another grokgate
	// replica would; nil when the log is process-local.
	Replica func() Log
	// Retention the log was opened with.
	Retention time.Duration
	// Advance lets d pass on the log's clock: an injected clock moves, a
	// log on a server's clock waits.
	Advance func(d time.Duration)
	// Resolution is how finely the log records times (RunnerSeen,
	// ReadSeen); 0 means exactly.
	Resolution time.Duration
}

// Run runs the suite; open returns a fresh log for each test. The tests
// run in parallel (many wait on a clock), so open must give each its own
// log, and a leak check belongs in t.Cleanup, which runs after them.
func Run(t *testing.T, open func(t *testing.T, b Bounds) Env) {
	for _, tc := range []struct {
		name string
		fn   func(t *testing.T, open func(t *testing.T, b Bounds) Env)
	}{
		{"CreateAndState", testCreate},
		{"CreateTwice", testCreateTwice},
		{"UnknownID", testUnknown},
		{"AppendSequence", testAppendSequence},
		{"ReadAfterAndMax", testPaging},
		{"ReadSeen", testReadSeen},
		{"RenewRunnerSeen", testRenew},
		{"CancelVisibleToRenew", testCancel},
		{"Finish", testFinish},
		{"WaitTimesOut", testWaitTimeout},
		{"WaitWokenByAppend", testWaitAppend},
		{"WaitWokenByFinish", testWaitFinish},
		{"WaitEndsWithContext", testWaitContext},
		{"FollowersOfLiveWriter", testFollowers},
		{"StreamBound", testStreamBound},
		{"TotalBytesBound", testTotalBound},
		{"StreamsBound", testStreamsBound},
		{"RetentionAfterFinish", testRetentionFinish},
		{"RetentionAfterDeadRunner", testRetentionDeadRunner},
		{"IDsIsolated", testIsolated},
		{"LargeBinaryEvents", testLargeBinary},
		{"AppendCopiesData", testAppendCopies},
		{"Replicas", testReplicas},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, open)
		})
	}
}

var bg = context.Background()

// NewID returns a stream id no other test uses.
func NewID() string {
	var b [8]byte
	rand.Read(b[:])
	return "s_" + hex.EncodeToString(b[:])
}

func meta() grokgate.StreamMeta {
	return grokgate.StreamMeta{Owner: "key_1", Dialect: "responses", Model: "grok-4",
		Created: time.Unix(1_700_000_000, 123_456_789).UTC()}
}

func create(t testing.TB, l Log) string {
	t.Helper()
	id := NewID()
	if err := l.Create(bg, id, meta()); err != nil {
		t.Fatalf("Create: %v", err)
	}
	return id
}

func appendData(t testing.TB, l Log, id string, data []byte) int64 {
	t.Helper()
	seq, err := l.Append(bg, id, data)
	if err != nil {
		t.Fatalf("Append: %v", err)
	}
	return seq
}

func state(t testing.TB, l Log, id string) grokgate.StreamState {
	t.Helper()
	st, err := l.State(bg, id)
	if err != nil {
		t.Fatalf("State: %v", err)
	}
	return st
}

func read(t testing.TB, l Log, id string, after int64, max int) ([]grokgate.StreamEvent, grokgate.StreamState) {
	t.Helper()
	evs, st, err := l.Read(bg, id, after, max, 0)
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	return evs, st
}

// event returns the data of the event with sequence number seq in tests
// that append numbered events.
func event(seq int64) []byte { return fmt.Appendf(nil, "data: {\"n\":%d}\n\n", seq) }

// checkEvents asserts evs are the numbered events from..to.
func checkEvents(t testing.TB, evs []grokgate.StreamEvent, from, to int64) {
	t.Helper()
	if int64(len(evs)) != to-from+1 {
		t.Fatalf("got %d events, want %d (%d..%d)", len(evs), to-from+1, from, to)
	}
	for i, e := range evs {
		seq := from + int64(i)
		if e.Seq != seq || !bytes.Equal(e.Data, event(seq)) {
			t.Fatalf("event %d: seq %d data %q, want seq %d data %q", i, e.Seq, e.Data, seq, event(seq))
		}
	}
}

// near says whether got is want within the log's resolution.
func near(e Env, got, want time.Time) bool {
	d := got.Sub(want)
	return d >= -e.Resolution && d <= e.Resolution
}

func testCreate(t *testing.T, open func(*testing.T, Bounds) Env) {
	e := open(t, Bounds{})
	before := time.Now()
	id := create(t, e.L)
	st := state(t, e.L, id)
	m := meta()
	if st.Meta.Owner != m.Owner || st.Meta.Dialect != m.Dialect || st.Meta.Model != m.Model || !st.Meta.Created.Equal(m.Created) {
		t.Fatalf("meta %+v, want %+v", st.Meta, m)
	}
	if st.Ended || st.Status != "" || st.Last != 0 || st.Cancelled || !st.ReadSeen.IsZero() {
		t.Fatalf("a new stream's state: %+v", st)
	}
	// The runner's lease starts with the stream.
	if st.RunnerSeen.IsZero() || (e.Resolution > 0 && st.RunnerSeen.Before(before.Add(-time.Minute))) {
		t.Fatalf("RunnerSeen %v at Create", st.RunnerSeen)
	}
	evs, st2 := read(t, e.L, id, 0, 10)
	if len(evs) != 0 || st2.Last != 0 {
		t.Fatalf("a new stream has events: %v %+v", evs, st2)
	}
}

func testCreateTwice(t *testing.T, open func(*testing.T, Bounds) Env) {
	e := open(t, Bounds{})
	id := create(t, e.L)
	appendData(t, e.L, id, event(1))
	if err := e.L.Create(bg, id, grokgate.StreamMeta{Owner: "other"}); !errors.Is(err, grokgate.ErrStreamExists) {
		t.Fatalf("second Create: %v, want ErrStreamExists", err)
	}
	// The first stream is untouched.
	st := state(t, e.L, id)
	if st.Meta.Owner != "key_1" || st.Last != 1 {
		t.Fatalf("the second Create changed the stream: %+v", st)
	}
}

func testUnknown(t *testing.T, open func(*testing.T, Bounds) Env) {
	e := open(t, Bounds{})
	create(t, e.L) // another stream exists
	id := NewID()
	check := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, grokgate.ErrStreamNotFound) {
			t.Errorf("%s of an unknown id: %v, want ErrStreamNotFound", what, err)
		}
	}
	_, err := e.L.Append(bg, id, event(1))
	check("Append", err)
	_, err = e.L.Renew(bg, id)
	check("Renew", err)
	check("Finish", e.L.Finish(bg, id, "completed"))
	_, _, err = e.L.Read(bg, id, 0, 10, time.Second)
	check("Read", err)
	_, err = e.L.State(bg, id)
	check("State", err)
	check("Cancel", e.L.Cancel(bg, id))
	// None of them made the stream.
	_, err = e.L.State(bg, id)
	check("State after the others", err)
}

func testAppendSequence(t *testing.T, open func(*testing.T, Bounds) Env) {
	e := open(t, Bounds{})
	id := create(t, e.L)
	for i := int64(1); i <= 50; i++ {
		if seq := appendData(t, e.L, id, event(i)); seq != i {
			t.Fatalf("Append %d returned seq %d", i, seq)
		}
	}
	if st := state(t, e.L, id); st.Last != 50 {
		t.Fatalf("Last %d, want 50", st.Last)
	}
	evs, st := read(t, e.L, id, 0, 0)
	checkEvents(t, evs, 1, 50)
	if st.Last != 50 {
		t.Fatalf("Read's state Last %d", st.Last)
	}
	// An empty event is an event.
	if seq := appendData(t, e.L, id, nil); seq != 51 {
		t.Fatalf("empty Append: seq %d", seq)
	}
	evs, _ = read(t, e.L, id, 50, 10)
	if len(evs) != 1 || evs[0].Seq != 51 || len(evs[0].Data) != 0 {
		t.Fatalf("empty event read back as %+v", evs)
	}
}

func testPaging(t *testing.T, open func(*testing.T, Bounds) Env) {
	e := open(t, Bounds{})
	id := create(t, e.L)
	for i := int64(1); i <= 25; i++ {
		appendData(t, e.L, id, event(i))
	}
	for _, tc := range []struct {
		after    int64
		max      int
		from, to int64
	}{
		{0, 10, 1, 10}, {10, 10, 11, 20}, {20, 10, 21, 25}, {24, 10, 25, 25},
		{25, 10, 26, 25}, {30, 10, 31, 30}, {7, 1, 8, 8}, {-5, 3, 1, 3}, {3, 0, 4, 25},
	} {
		evs, st := read(t, e.L, id, tc.after, tc.max)
		checkEvents(t, evs, tc.from, tc.to)
		if st.Last != 25 {
			t.Fatalf("Last %d", st.Last)
		}
	}
	// Paging through follows the whole stream.
	var got []grokgate.StreamEvent
	for after := int64(0); ; {
		evs, _ := read(t, e.L, id, after, 4)
		if len(evs) == 0 {
			break
		}
		got = append(got, evs...)
		after = evs[len(evs)-1].Seq
	}
	checkEvents(t, got, 1, 25)
}

func testReadSeen(t *testing.T, open func(*testing.T, Bounds) Env) {
	e := open(t, Bounds{})
	id := create(t, e.L)
	appendData(t, e.L, id, event(1))
	if st := state(t, e.L, id); !st.ReadSeen.IsZero() {
		t.Fatalf("ReadSeen %v before any read", st.ReadSeen)
	}
	_, st := read(t, e.L, id, 0, 10)
	first := st.ReadSeen
	if first.IsZero() {
		t.Fatal("Read did not record ReadSeen in the state it returned")
	}
	if got := state(t, e.L, id).ReadSeen; !got.Equal(first) {
		t.Fatalf("State: ReadSeen %v, Read said %v", got, first)
	}
	e.Advance(100 * time.Millisecond)
	// State does not count as a read; Renew does not either.
	if got := state(t, e.L, id).ReadSeen; !got.Equal(first) {
		t.Fatalf("State moved ReadSeen from %v to %v", first, got)
	}
	if rs, err := e.L.Renew(bg, id); err != nil || !rs.ReadSeen.Equal(first) {
		t.Fatalf("Renew: ReadSeen %v (%v), want %v", rs.ReadSeen, err, first)
	}
	// A read that finds nothing still counts.
	_, st = read(t, e.L, id, 1, 10)
	if d := st.ReadSeen.Sub(first); d < 100*time.Millisecond-e.Resolution {
		t.Fatalf("second read: ReadSeen moved by %v, want at least 100ms", d)
	}
	if got := state(t, e.L, id).ReadSeen; !got.Equal(st.ReadSeen) {
		t.Fatalf("runner sees ReadSeen %v, the read returned %v", got, st.ReadSeen)
	}
}

func testRenew(t *testing.T, open func(*testing.T, Bounds) Env) {
	e := open(t, Bounds{})
	id := create(t, e.L)
	created := state(t, e.L, id).RunnerSeen
	e.Advance(100 * time.Millisecond)
	// Appends, reads and State do not renew the lease: only Renew does.
	appendData(t, e.L, id, event(1))
	read(t, e.L, id, 0, 10)
	if got := state(t, e.L, id).RunnerSeen; !got.Equal(created) {
		t.Fatalf("RunnerSeen moved from %v to %v without Renew", created, got)
	}
	st, err := e.L.Renew(bg, id)
	if err != nil {
		t.Fatal(err)
	}
	if d := st.RunnerSeen.Sub(created); d < 100*time.Millisecond-e.Resolution {
		t.Fatalf("Renew moved RunnerSeen by %v, want at least 100ms", d)
	}
	if st.Last != 1 || st.Ended || st.Cancelled || st.Meta.Owner != "key_1" {
		t.Fatalf("Renew's state: %+v", st)
	}
	if got := state(t, e.L, id).RunnerSeen; !got.Equal(st.RunnerSeen) {
		t.Fatalf("State: RunnerSeen %v, Renew said %v", got, st.RunnerSeen)
	}
}

func testCancel(t *testing.T, open func(*testing.T, Bounds) Env) {
	e := open(t, Bounds{})
	id, other := create(t, e.L), create(t, e.L)
	if st, _ := e.L.Renew(bg, id); st.Cancelled {
		t.Fatal("Cancelled before Cancel")
	}
	if err := e.L.Cancel(bg, id); err != nil {
		t.Fatal(err)
	}
	st, err := e.L.Renew(bg, id)
	if err != nil || !st.Cancelled {
		t.Fatalf("Renew after Cancel: %+v %v", st, err)
	}
	if st, _ := e.L.Renew(bg, other); st.Cancelled {
		t.Fatal("Cancel reached another stream")
	}
	// Cancel twice is fine, and the runner can still append and finish.
	if err := e.L.Cancel(bg, id); err != nil {
		t.Fatalf("second Cancel: %v", err)
	}
	appendData(t, e.L, id, event(1))
	if err := e.L.Finish(bg, id, "cancelled"); err != nil {
		t.Fatal(err)
	}
	if st := state(t, e.L, id); !st.Cancelled || !st.Ended || st.Status != "cancelled" {
		t.Fatalf("state %+v", st)
	}
}

func testFinish(t *testing.T, open func(*testing.T, Bounds) Env) {
	e := open(t, Bounds{})
	id := create(t, e.L)
	appendData(t, e.L, id, event(1))
	appendData(t, e.L, id, event(2))
	if err := e.L.Finish(bg, id, "completed"); err != nil {
		t.Fatal(err)
	}
	st := state(t, e.L, id)
	if !st.Ended || st.Status != "completed" || st.Last != 2 {
		t.Fatalf("state after Finish: %+v", st)
	}
	if _, err := e.L.Append(bg, id, event(3)); !errors.Is(err, grokgate.ErrStreamEnded) {
		t.Fatalf("Append after Finish: %v, want ErrStreamEnded", err)
	}
	if err := e.L.Finish(bg, id, "failed"); !errors.Is(err, grokgate.ErrStreamEnded) {
		t.Fatalf("second Finish: %v, want ErrStreamEnded", err)
	}
	// The events stay readable, and a read at the end returns at once.
	start := time.Now()
	evs, st, err := e.L.Read(bg, id, 0, 10, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	checkEvents(t, evs, 1, 2)
	evs, st, err = e.L.Read(bg, id, 2, 10, 10*time.Second)
	if err != nil || len(evs) != 0 || !st.Ended || st.Status != "completed" || st.Last != 2 {
		t.Fatalf("read at the end: %v %+v %v", evs, st, err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("reads of an ended stream waited %v", d)
	}
}

func testWaitTimeout(t *testing.T, open func(*testing.T, Bounds) Env) {
	e := open(t, Bounds{})
	id := create(t, e.L)
	appendData(t, e.L, id, event(1))
	const wait = 200 * time.Millisecond
	start := time.Now()
	evs, st, err := e.L.Read(bg, id, 1, 10, wait)
	d := time.Since(start)
	if err != nil || len(evs) != 0 || st.Ended || st.Last != 1 {
		t.Fatalf("Read: %v %+v %v", evs, st, err)
	}
	if d < wait-5*time.Millisecond {
		t.Fatalf("Read returned after %v, before its wait of %v", d, wait)
	}
	// With events to return, a read does not wait.
	start = time.Now()
	evs, _, err = e.L.Read(bg, id, 0, 10, time.Minute)
	if err != nil || len(evs) != 1 {
		t.Fatalf("Read: %v %v", evs, err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("a read with events waited %v", d)
	}
}

// waitingRead starts a Read with a long wait and returns its result
// channel once the read is (very probably) waiting.
type readResult struct {
	evs []grokgate.StreamEvent
	st  grokgate.StreamState
	err error
	at  time.Time
}

func startRead(ctx context.Context, l Log, id string, after int64, wait time.Duration) <-chan readResult {
	ch := make(chan readResult, 1)
	go func() {
		evs, st, err := l.Read(ctx, id, after, 100, wait)
		ch <- readResult{evs, st, err, time.Now()}
	}()
	return ch
}

// waitingReads returns once a reader has recorded its read, so it is past
// its first look (the wake-up then reaches it in the wait, or the look
// found the event: either is correct).
func waitForRead(t *testing.T, l Log, id string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for state(t, l, id).ReadSeen.IsZero() {
		if time.Now().After(deadline) {
			t.Fatal("the reader never read")
		}
		time.Sleep(time.Millisecond)
	}
}

func testWaitAppend(t *testing.T, open func(*testing.T, Bounds) Env) {
	e := open(t, Bounds{})
	id := create(t, e.L)
	appendData(t, e.L, id, event(1))
	const wait = time.Minute
	ch := startRead(bg, readerOf(e), id, 1, wait)
	waitForRead(t, e.L, id)
	appendData(t, e.L, id, event(2))
	appended := time.Now()
	select {
	case r := <-ch:
		if r.err != nil {
			t.Fatal(r.err)
		}
		checkEvents(t, r.evs, 2, 2)
		if r.st.Last < 2 || r.st.Ended {
			t.Fatalf("state %+v", r.st)
		}
		if d := r.at.Sub(appended); d > 10*time.Second {
			t.Fatalf("the waiting reader took %v to see the event", d)
		}
	case <-time.After(wait / 2):
		t.Fatal("the waiting reader was not woken by Append")
	}
}

func testWaitFinish(t *testing.T, open func(*testing.T, Bounds) Env) {
	e := open(t, Bounds{})
	id := create(t, e.L)
	appendData(t, e.L, id, event(1))
	const wait = time.Minute
	ch := startRead(bg, readerOf(e), id, 1, wait)
	waitForRead(t, e.L, id)
	if err := e.L.Finish(bg, id, "failed"); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-ch:
		if r.err != nil || len(r.evs) != 0 || !r.st.Ended || r.st.Status != "failed" || r.st.Last != 1 {
			t.Fatalf("woken read: %v %+v %v", r.evs, r.st, r.err)
		}
	case <-time.After(wait / 2):
		t.Fatal("the waiting reader was not woken by Finish")
	}
}

func testWaitContext(t *testing.T, open func(*testing.T, Bounds) Env) {
	e := open(t, Bounds{})
	id := create(t, e.L)
	ctx, cancel := context.WithCancel(bg)
	const wait = time.Minute
	ch := startRead(ctx, e.L, id, 0, wait)
	waitForRead(t, e.L, id)
	cancel()
	select {
	case r := <-ch:
		if !errors.Is(r.err, context.Canceled) || len(r.evs) != 0 {
			t.Fatalf("read after its context ended: %v %v", r.evs, r.err)
		}
	case <-time.After(wait / 2):
		t.Fatal("the waiting reader did not return when its context ended")
	}
	// The stream is unharmed.
	appendData(t, e.L, id, event(1))
}

// readerOf returns a replica of the log when there is one, so waits cross
// replicas, and the log itself otherwise.
func readerOf(e Env) Log {
	if e.Replica != nil {
		return e.Replica()
	}
	return e.L
}

func testFollowers(t *testing.T, open func(*testing.T, Bounds) Env) {
	e := open(t, Bounds{})
	id := create(t, e.L)
	const n, readers = 300, 6
	want := make([][]byte, n+1)
	rng := mrand.New(mrand.NewPCG(1, 2))
	for i := 1; i <= n; i++ {
		b := make([]byte, 1+rng.IntN(600))
		for j := range b {
			b[j] = byte(rng.UintN(256))
		}
		want[i] = b
	}
	var wg sync.WaitGroup
	errs := make(chan error, readers)
	logs := []Log{e.L, readerOf(e)}
	for r := range readers {
		l := logs[r%len(logs)]
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Readers start at different points and take different page
			// sizes; each must see every event once, in order.
			after := int64(r * 10)
			for {
				evs, st, err := l.Read(bg, id, after, 1+r*7, 5*time.Second)
				if err != nil {
					errs <- err
					return
				}
				for _, ev := range evs {
					if ev.Seq != after+1 || !bytes.Equal(ev.Data, want[ev.Seq]) {
						errs <- fmt.Errorf("reader %d after %d got seq %d (data equal: %v)", r, after, ev.Seq, ev.Seq > 0 && ev.Seq <= n && bytes.Equal(ev.Data, want[ev.Seq]))
						return
					}
					after = ev.Seq
				}
				if st.Ended && after == st.Last {
					if after != n || st.Status != "completed" {
						errs <- fmt.Errorf("reader %d ended at %d with %+v", r, after, st)
					}
					return
				}
			}
		}()
	}
	for i := 1; i <= n; i++ {
		if seq := appendData(t, e.L, id, want[i]); seq != int64(i) {
			t.Fatalf("seq %d, want %d", seq, i)
		}
		if i%50 == 0 {
			time.Sleep(time.Millisecond) // let readers catch up and wait
		}
	}
	if err := e.L.Finish(bg, id, "completed"); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("readers did not reach the end")
	}
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func testStreamBound(t *testing.T, open func(*testing.T, Bounds) Env) {
	e := open(t, Bounds{MaxStreamBytes: 1000})
	id, other := create(t, e.L), create(t, e.L)
	ev := bytes.Repeat([]byte{'x'}, 100)
	for i := range 10 {
		if _, err := e.L.Append(bg, id, ev); err != nil {
			t.Fatalf("Append %d of 100 bytes under a 1000-byte bound: %v", i+1, err)
		}
	}
	if _, err := e.L.Append(bg, id, []byte{'y'}); !errors.Is(err, grokgate.ErrStreamLogFull) {
		t.Fatalf("Append past the stream's bound: %v, want ErrStreamLogFull", err)
	}
	if _, err := e.L.Append(bg, other, bytes.Repeat([]byte{'z'}, 1001)); !errors.Is(err, grokgate.ErrStreamLogFull) {
		t.Fatalf("one event larger than the bound: %v, want ErrStreamLogFull", err)
	}
	// The refused appends left no trace; other streams have their own room.
	if st := state(t, e.L, id); st.Last != 10 {
		t.Fatalf("Last %d after refused appends", st.Last)
	}
	if seq := appendData(t, e.L, other, ev); seq != 1 {
		t.Fatalf("the other stream: seq %d", seq)
	}
	// A full stream can still be finished and read.
	if err := e.L.Finish(bg, id, "incomplete"); err != nil {
		t.Fatal(err)
	}
	if evs, _ := read(t, e.L, id, 0, 0); len(evs) != 10 {
		t.Fatalf("%d events", len(evs))
	}
}

func testTotalBound(t *testing.T, open func(*testing.T, Bounds) Env) {
	e := open(t, Bounds{MaxBytes: 1000})
	// The bound is shared: the second stream and every other event go
	// through the replica when there is one.
	r := readerOf(e)
	a, b := create(t, e.L), create(t, r)
	ev := bytes.Repeat([]byte{'x'}, 100)
	for i := range 10 {
		id, l := a, e.L
		if i%2 == 1 {
			id, l = b, r
		}
		if _, err := l.Append(bg, id, ev); err != nil {
			t.Fatalf("Append %d: %v", i+1, err)
		}
	}
	if _, err := e.L.Append(bg, a, []byte{'y'}); !errors.Is(err, grokgate.ErrStreamLogFull) {
		t.Fatalf("Append past the total bound: %v, want ErrStreamLogFull", err)
	}
	if _, err := r.Append(bg, b, []byte{'y'}); !errors.Is(err, grokgate.ErrStreamLogFull) {
		t.Fatalf("Append past the total bound on the other replica: %v, want ErrStreamLogFull", err)
	}
	if err := r.Create(bg, NewID(), meta()); !errors.Is(err, grokgate.ErrStreamLogFull) {
		t.Fatalf("Create with the total bytes held: %v, want ErrStreamLogFull", err)
	}
	// Empty events take no room.
	appendData(t, e.L, b, nil)
	// Once a stream's retention ends, its bytes are free again.
	if err := e.L.Finish(bg, a, "completed"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.L.Renew(bg, b); err != nil {
		t.Fatal(err)
	}
	// b renews its lease while a's retention runs out.
	e.Advance(e.Retention / 2)
	if _, err := e.L.Renew(bg, b); err != nil {
		t.Fatal(err)
	}
	e.Advance(e.Retention/2 + e.Retention/10)
	eventually(t, e, "a's bytes are released", func() bool {
		_, err := e.L.Append(bg, b, ev)
		return err == nil
	})
	if st := state(t, e.L, b); st.Last != 7 {
		t.Fatalf("b's Last %d", st.Last)
	}
	if err := e.L.Create(bg, NewID(), meta()); err != nil {
		t.Fatalf("Create after the bytes were freed: %v", err)
	}
}

func testStreamsBound(t *testing.T, open func(*testing.T, Bounds) Env) {
	e := open(t, Bounds{MaxStreams: 3})
	r := readerOf(e)
	ids := []string{create(t, e.L), create(t, r), create(t, e.L)}
	if err := r.Create(bg, NewID(), meta()); !errors.Is(err, grokgate.ErrStreamLogFull) {
		t.Fatalf("a 4th stream under a bound of 3: %v, want ErrStreamLogFull", err)
	}
	// Finished streams count until their retention ends.
	if err := e.L.Finish(bg, ids[0], "completed"); err != nil {
		t.Fatal(err)
	}
	if err := e.L.Create(bg, NewID(), meta()); !errors.Is(err, grokgate.ErrStreamLogFull) {
		t.Fatalf("a 4th stream while one is finished but kept: %v, want ErrStreamLogFull", err)
	}
	e.Advance(e.Retention / 2)
	for _, id := range ids[1:] {
		if _, err := e.L.Renew(bg, id); err != nil {
			t.Fatal(err)
		}
	}
	e.Advance(e.Retention/2 + e.Retention/10)
	eventually(t, e, "a stream can be created after one expired", func() bool {
		return e.L.Create(bg, NewID(), meta()) == nil
	})
	if err := e.L.Create(bg, NewID(), meta()); !errors.Is(err, grokgate.ErrStreamLogFull) {
		t.Fatalf("a 4th stream again: %v, want ErrStreamLogFull", err)
	}
}

// eventually polls cond until it holds or a deadline passes.
func eventually(t *testing.T, e Env, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if cond() {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("never: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func gone(l Log, id string) bool {
	_, err := l.State(bg, id)
	return errors.Is(err, grokgate.ErrStreamNotFound)
}

func testRetentionFinish(t *testing.T, open func(*testing.T, Bounds) Env) {
	e := open(t, Bounds{})
	id := create(t, e.L)
	appendData(t, e.L, id, event(1))
	e.Advance(e.Retention / 2)
	if _, err := e.L.Renew(bg, id); err != nil {
		t.Fatal(err)
	}
	if err := e.L.Finish(bg, id, "completed"); err != nil {
		t.Fatal(err)
	}
	// Retention counts from Finish, not from Create.
	e.Advance(e.Retention / 2)
	evs, st := read(t, e.L, id, 0, 10)
	if len(evs) != 1 || !st.Ended {
		t.Fatalf("within retention after Finish: %v %+v", evs, st)
	}
	// Neither reads nor a late Renew extend it.
	if _, err := e.L.Renew(bg, id); err != nil {
		t.Fatal(err)
	}
	e.Advance(e.Retention/2 + e.Retention/10)
	eventually(t, e, "the finished stream is dropped", func() bool { return gone(e.L, id) })
	if _, _, err := e.L.Read(bg, id, 0, 10, 0); !errors.Is(err, grokgate.ErrStreamNotFound) {
		t.Fatalf("Read after retention: %v", err)
	}
	if err := e.L.Cancel(bg, id); !errors.Is(err, grokgate.ErrStreamNotFound) {
		t.Fatalf("Cancel after retention: %v", err)
	}
	// The id may be used again.
	if err := e.L.Create(bg, id, meta()); err != nil {
		t.Fatalf("Create of an expired id: %v", err)
	}
	if st := state(t, e.L, id); st.Last != 0 || st.Ended {
		t.Fatalf("the new stream inherited %+v", st)
	}
}

func testRetentionDeadRunner(t *testing.T, open func(*testing.T, Bounds) Env) {
	e := open(t, Bounds{})
	id := create(t, e.L)
	appendData(t, e.L, id, event(1))
	// A live runner keeps its stream past the retention by renewing.
	for range 3 {
		e.Advance(e.Retention / 2)
		if _, err := e.L.Renew(bg, id); err != nil {
			t.Fatalf("Renew of a live runner: %v", err)
		}
	}
	if gone(e.L, id) {
		t.Fatal("a renewed stream was dropped")
	}
	// Its runner dies; appends and reads do not keep the stream.
	e.Advance(e.Retention / 2)
	appendData(t, e.L, id, event(2))
	read(t, e.L, id, 0, 10)
	e.Advance(e.Retention/2 + e.Retention/10)
	eventually(t, e, "the dead runner's stream is dropped", func() bool { return gone(e.L, id) })
	if _, err := e.L.Append(bg, id, event(3)); !errors.Is(err, grokgate.ErrStreamNotFound) {
		t.Fatalf("Append after the lease ran out: %v", err)
	}
}

func testIsolated(t *testing.T, open func(*testing.T, Bounds) Env) {
	e := open(t, Bounds{})
	// Ids that share prefixes and odd characters stay apart.
	base := NewID()
	ids := []string{base, base + "x", base + ":e", base + "}", "{" + base}
	for _, id := range ids {
		if err := e.L.Create(bg, id, grokgate.StreamMeta{Owner: "owner " + id}); err != nil {
			t.Fatal(err)
		}
	}
	for round := 1; round <= 5; round++ {
		for i, id := range ids {
			if i >= round {
				continue
			}
			appendData(t, e.L, id, []byte(id+fmt.Sprint(round)))
		}
	}
	if err := e.L.Cancel(bg, ids[1]); err != nil {
		t.Fatal(err)
	}
	if err := e.L.Finish(bg, ids[2], "completed"); err != nil {
		t.Fatal(err)
	}
	for i, id := range ids {
		evs, st := read(t, e.L, id, 0, 0)
		if st.Meta.Owner != "owner "+id || st.Cancelled != (i == 1) || st.Ended != (i == 2) {
			t.Fatalf("%q: state %+v", id, st)
		}
		if len(evs) != 5-i || st.Last != int64(5-i) {
			t.Fatalf("%q: %d events, Last %d, want %d", id, len(evs), st.Last, 5-i)
		}
		for j, ev := range evs {
			if want := id + fmt.Sprint(i+1+j); string(ev.Data) != want {
				t.Fatalf("%q event %d: %q, want %q", id, ev.Seq, ev.Data, want)
			}
		}
	}
}

func testLargeBinary(t *testing.T, open func(*testing.T, Bounds) Env) {
	e := open(t, Bounds{})
	id := create(t, e.L)
	large := make([]byte, 100<<10)
	rand.Read(large)
	all := make([]byte, 0, 512)
	for i := range 256 {
		all = append(all, byte(i))
	}
	all = append(all, "\r\n\r\n\x00data: [DONE]\n\n\xff\xfe"...)
	want := [][]byte{large, all, []byte("\x00"), bytes.Repeat([]byte("\r\n"), 1000), large[:64<<10], large[1:]}
	for i, w := range want {
		if seq := appendData(t, e.L, id, w); seq != int64(i+1) {
			t.Fatalf("seq %d", seq)
		}
	}
	evs, _ := read(t, e.L, id, 0, 0)
	if len(evs) != len(want) {
		t.Fatalf("%d events, want %d", len(evs), len(want))
	}
	for i, ev := range evs {
		if !bytes.Equal(ev.Data, want[i]) {
			t.Fatalf("event %d (%d bytes) came back as %d bytes, not equal", i+1, len(want[i]), len(ev.Data))
		}
	}
}

func testAppendCopies(t *testing.T, open func(*testing.T, Bounds) Env) {
	e := open(t, Bounds{})
	id := create(t, e.L)
	buf := []byte("first event")
	appendData(t, e.L, id, buf)
	copy(buf, "XXXXX") // the relay reuses its buffer
	appendData(t, e.L, id, []byte("second"))
	evs, _ := read(t, e.L, id, 0, 1)
	if string(evs[0].Data) != "first event" {
		t.Fatalf("the log kept the caller's buffer: %q", evs[0].Data)
	}
	// Appending to what Read returned does not reach the log.
	_ = append(evs, grokgate.StreamEvent{Seq: 99, Data: []byte("bogus")})
	_ = append(evs[0].Data, "!!!"...)
	evs, _ = read(t, e.L, id, 0, 0)
	if len(evs) != 2 || evs[1].Seq != 2 || string(evs[1].Data) != "second" || string(evs[0].Data) != "first event" {
		t.Fatalf("the log changed through a returned slice: %+v", evs)
	}
}

func testReplicas(t *testing.T, open func(*testing.T, Bounds) Env) {
	e := open(t, Bounds{})
	if e.Replica == nil {
		t.Skip("the log is process-local")
	}
	r := e.Replica()
	id := create(t, e.L)
	if err := r.Create(bg, id, meta()); !errors.Is(err, grokgate.ErrStreamExists) {
		t.Fatalf("Create on another replica: %v", err)
	}
	appendData(t, e.L, id, event(1))
	evs, st := read(t, r, id, 0, 10)
	checkEvents(t, evs, 1, 1)
	if st.Meta.Owner != "key_1" {
		t.Fatalf("state on the replica: %+v", st)
	}
	if err := r.Cancel(bg, id); err != nil {
		t.Fatal(err)
	}
	if st, err := e.L.Renew(bg, id); err != nil || !st.Cancelled || st.ReadSeen.IsZero() {
		t.Fatalf("the runner does not see the other replica's read and cancel: %+v %v", st, err)
	}
	if err := e.L.Finish(bg, id, "cancelled"); err != nil {
		t.Fatal(err)
	}
	if st, err := r.State(bg, id); err != nil || !st.Ended || st.Status != "cancelled" {
		t.Fatalf("Finish on the replica: %+v %v", st, err)
	}
}
