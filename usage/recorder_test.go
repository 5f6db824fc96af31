package usage

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/grokgate/grokgate"
	"github.com/grokgate/grokgate/internal/logtest"
)

// fakeSink stores batches; gate, when set, holds every insert until closed.
type fakeSink struct {
	mu      sync.Mutex
	batches [][]grokgate.Record
	ids     map[string]bool
	gate    chan struct{}
	fail    error
	calls   int
}

func (s *fakeSink) InsertUsage(ctx context.Context, recs []grokgate.Record) error {
	if s.gate != nil {
		select {
		case <-s.gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	if s.fail != nil {
		return s.fail
	}
	if s.ids == nil {
		s.ids = map[string]bool{}
	}
	s.batches = append(s.batches, append([]grokgate.Record(nil), recs...))
	for _, r := range recs {
		s.ids[r.RequestID] = true
	}
	return nil
}

func (s *fakeSink) count() (records, batches int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.ids), len(s.batches)
}

func newLog() (*slog.Logger, *logtest.Buffer) {
	var buf logtest.Buffer
	return slog.New(slog.NewTextHandler(&buf, nil)), &buf
}

func rec(i int) grokgate.Record {
	return grokgate.Record{RequestID: fmt.Sprintf("req_%d", i), KeyID: "key_1", PromptTokens: int64(i)}
}

func TestRecorderBatchesAndFlushesOnClose(t *testing.T) {
	sink := &fakeSink{gate: make(chan struct{})}
	log, _ := newLog()
	r := NewRecorder(sink, log, Options{BatchSize: 50})
	for i := range 500 {
		r.Record(rec(i))
	}
	close(sink.gate) // the writer was stuck on its first insert; the rest queued up
	if err := r.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	n, batches := sink.count()
	if n != 500 {
		t.Errorf("%d records stored, want 500", n)
	}
	if batches > 500/50+2 {
		t.Errorf("%d inserts for 500 records: not batched", batches)
	}
	if st := r.Stats(); st != (Stats{Written: 500}) {
		t.Errorf("stats %+v", st)
	}
}

func TestRecorderDropsWhenFullAndSaysSo(t *testing.T) {
	sink := &fakeSink{gate: make(chan struct{})}
	log, logs := newLog()
	r := NewRecorder(sink, log, Options{QueueSize: 4, BatchSize: 1, MaxBlock: 10 * time.Millisecond})
	start := time.Now()
	for i := range 20 {
		r.Record(rec(i))
	}
	// At most QueueSize+1 fit (one in the writer's hands); each of the
	// others waited MaxBlock.
	if el := time.Since(start); el > 2*time.Second {
		t.Errorf("Record blocked %v in all", el)
	}
	st := r.Stats()
	if st.Dropped < 20-5 || st.Dropped > 20-4 {
		t.Errorf("dropped %d of 20 with room for 5", st.Dropped)
	}
	if c := strings.Count(logs.String(), "usage record dropped"); int64(c) != st.Dropped {
		t.Errorf("%d drop lines logged for %d drops", c, st.Dropped)
	}
	if !strings.Contains(logs.String(), "request_id=req_19") {
		t.Error("the dropped record's request id is not in the log")
	}
	close(sink.gate)
	if err := r.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if st := r.Stats(); st.Written+st.Dropped != 20 || st.Failed != 0 {
		t.Errorf("stats %+v do not add up to 20", st)
	}
	r.Record(rec(99))
	if st := r.Stats(); st.Dropped+st.Written != 21 || !strings.Contains(logs.String(), "recorder is closed") {
		t.Errorf("a record after Close was not counted and logged: %+v", st)
	}
}

func TestRecorderRetriesThenCountsFailures(t *testing.T) {
	sink := &fakeSink{fail: errors.New("database is down")}
	log, logs := newLog()
	r := NewRecorder(sink, log, Options{Attempts: 3, Backoff: time.Millisecond})
	r.Record(rec(1))
	r.Record(rec(2))
	if err := r.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	st := r.Stats()
	if st.Failed != 2 || st.Written != 0 {
		t.Errorf("stats %+v, want 2 failed", st)
	}
	if sink.calls < 3 {
		t.Errorf("%d attempts, want at least 3", sink.calls)
	}
	out := logs.String()
	for _, want := range []string{"request_id=req_1", "request_id=req_2", "database is down", "usage record not written"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
}

func TestRecorderCloseDeadline(t *testing.T) {
	sink := &fakeSink{gate: make(chan struct{})} // never opens
	log, logs := newLog()
	r := NewRecorder(sink, log, Options{})
	for i := range 10 {
		r.Record(rec(i))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := r.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Close = %v, want the deadline error", err)
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Errorf("Close took %v past its deadline", el)
	}
	if st := r.Stats(); st.Failed != 10 {
		t.Errorf("stats %+v, want all 10 failed", st)
	}
	if c := strings.Count(logs.String(), "usage record not written"); c != 10 {
		t.Errorf("%d records logged as not written, want 10", c)
	}
}

// TestRecorderLingerEndsEarly: a lingering writer still writes a full batch
// at once, and Close does not wait out the linger.
func TestRecorderLingerEndsEarly(t *testing.T) {
	sink := &fakeSink{}
	log, _ := newLog()
	r := NewRecorder(sink, log, Options{BatchSize: 8, Linger: time.Hour})
	r.Record(rec(0))
	// Once the writer holds the first record and lingers, seven more make a
	// batch (the queue then holds only seven).
	deadline := time.Now().Add(10 * time.Second)
	for r.Stats().Queued > 0 {
		if time.Now().After(deadline) {
			t.Fatal("the writer did not take the first record within 10s")
		}
		time.Sleep(time.Millisecond)
	}
	for i := 1; i < 8; i++ {
		r.Record(rec(i))
	}
	for n, _ := sink.count(); n < 8; n, _ = sink.count() {
		if time.Now().After(deadline) {
			t.Fatalf("a full batch of 8 was not written within 10s (%d stored): the writer waited out its hour-long linger", n)
		}
		time.Sleep(time.Millisecond)
	}
	r.Record(rec(8)) // one record: the writer lingers for more
	closed := make(chan error, 1)
	go func() { closed <- r.Close(context.Background()) }()
	select {
	case err := <-closed:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not return within 10s: the writer waited out its hour-long linger")
	}
	if n, batches := sink.count(); n != 9 || batches != 2 {
		t.Errorf("stored %d records in %d batches, want 9 in 2", n, batches)
	}
}
