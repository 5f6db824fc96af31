package usage

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/grokgate/grokgate"
	"github.com/grokgate/grokgate/spool"
)

// flakySink is a store that can be down or hang, and refuses records whose
// model holds "poison" as a PostgreSQL store does a NUL: the rest of the
// batch is stored.
type flakySink struct {
	mu    sync.Mutex
	down  error
	hang  bool
	order []string
	ids   map[string]int
}

func (s *flakySink) set(down error, hang bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.down, s.hang = down, hang
}

func (s *flakySink) InsertUsage(ctx context.Context, recs []grokgate.Record) error {
	s.mu.Lock()
	hang := s.hang
	s.mu.Unlock()
	if hang {
		<-ctx.Done()
		return ctx.Err()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.down != nil {
		return s.down
	}
	if s.ids == nil {
		s.ids = map[string]int{}
	}
	var rej grokgate.RejectedRecordsError
	for _, r := range recs {
		if strings.Contains(r.RequestedModel, "poison") {
			rej.Rejected = append(rej.Rejected, grokgate.RejectedRecord{Record: r, Reason: "invalid byte sequence"})
			continue
		}
		if s.ids[r.RequestID] == 0 {
			s.order = append(s.order, r.RequestID)
		}
		s.ids[r.RequestID]++
	}
	if len(rej.Rejected) > 0 {
		return &rej
	}
	return nil
}

func (s *flakySink) stored() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.order...)
}

func openSpool(t *testing.T, dir string) *spool.Spool {
	t.Helper()
	log, _ := newLog()
	sp, err := spool.Open(dir, log, spool.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sp.Close() })
	return sp
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within 10s: %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func seqRec(i int) grokgate.Record {
	return grokgate.Record{RequestID: fmt.Sprintf("req_%05d", i), KeyID: "key_1", RequestedModel: "grok-4.3", PromptTokens: int64(i)}
}

// TestRecorderSpoolsAndReplaysInOrder: while the store refuses, records go
// to the spool; once it answers, all of them reach it, each once, in the
// order they were recorded, and later records wait behind them.
func TestRecorderSpoolsAndReplaysInOrder(t *testing.T) {
	sink := &flakySink{}
	sink.set(errors.New("connection refused"), false)
	sp := openSpool(t, t.TempDir())
	log, logs := newLog()
	r := NewRecorder(sink, log, Options{Spool: sp, BatchSize: 16, Linger: -1, Backoff: 5 * time.Millisecond, MaxBackoff: 20 * time.Millisecond})
	for i := range 200 {
		r.Record(seqRec(i))
	}
	waitFor(t, "200 records spooled", func() bool { return r.Stats().Spooled == 200 })
	if st := r.Stats(); st.SpoolPending != 200 || st.Written != 0 || st.Failed != 0 {
		t.Fatalf("stats while down: %+v", st)
	}
	sink.set(nil, false)
	for i := 200; i < 300; i++ {
		r.Record(seqRec(i))
	}
	waitFor(t, "the spool replayed", func() bool { return len(sink.stored()) == 300 })
	if err := r.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := sink.stored()
	for i, id := range got {
		if want := seqRec(i).RequestID; id != want {
			t.Fatalf("record %d stored is %s, want %s: out of order", i, id, want)
		}
	}
	st := r.Stats()
	if st.SpoolPending != 0 || st.Replayed < 200 || st.Failed != 0 || st.Dropped != 0 || st.Written+st.Replayed != 300 {
		t.Fatalf("stats %+v", st)
	}
	if !strings.Contains(logs.String(), "spooling them to disk") || !strings.Contains(logs.String(), "the spool is replayed") {
		t.Fatalf("the outage and its end are not in the log:\n%s", logs)
	}
}

// TestRecorderCloseSpoolsWhenStoreHangs: Close with a hanging store spools
// the queued records within its deadline, and a recorder started later on
// the same spool writes them once the store answers.
func TestRecorderCloseSpoolsWhenStoreHangs(t *testing.T) {
	dir := t.TempDir()
	sink := &flakySink{}
	sink.set(nil, true)
	sp := openSpool(t, dir)
	log, _ := newLog()
	r := NewRecorder(sink, log, Options{Spool: sp, WriteTimeout: time.Hour})
	for i := range 50 {
		r.Record(seqRec(i))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	r.Close(ctx)
	if el := time.Since(start); el > 5*time.Second {
		t.Fatalf("Close took %v", el)
	}
	if st := r.Stats(); st.Spooled != 50 || st.Failed != 0 || st.SpoolPending != 50 {
		t.Fatalf("stats %+v, want 50 spooled", st)
	}
	sp.Close()

	sink.set(nil, false)
	sp = openSpool(t, dir)
	r = NewRecorder(sink, log, Options{Spool: sp})
	waitFor(t, "replay on the next start", func() bool { return len(sink.stored()) == 50 })
	r.Close(context.Background())
	if st := r.Stats(); st.Replayed != 50 || st.SpoolPending != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// TestRecorderDeadLetters: a record the store refuses as invalid goes to
// the dead-letter file, its batch is stored, and the spool is not held up
// by it: directly and on replay.
func TestRecorderDeadLetters(t *testing.T) {
	sink := &flakySink{}
	sp := openSpool(t, t.TempDir())
	log, _ := newLog()
	r := NewRecorder(sink, log, Options{Spool: sp, Linger: -1, Backoff: time.Millisecond})
	bad := seqRec(1)
	bad.RequestedModel = "poison"
	r.Record(seqRec(0))
	r.Record(bad)
	r.Record(seqRec(2))
	waitFor(t, "direct write", func() bool { return len(sink.stored()) == 2 })
	sink.set(errors.New("down"), false)
	bad.RequestID = "req_bad2"
	r.Record(bad)
	r.Record(seqRec(3))
	waitFor(t, "spooled", func() bool { return r.Stats().Spooled == 2 })
	sink.set(nil, false)
	waitFor(t, "replayed", func() bool { return len(sink.stored()) == 3 })
	r.Close(context.Background())
	if st := r.Stats(); st.DeadLettered != 2 || st.DeadLetters != 2 || st.SpoolPending != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// TestRecorderJournal: the journal hears of every record when it is taken
// and when it is safe, whether stored or spooled.
func TestRecorderJournal(t *testing.T) {
	sink := &flakySink{}
	sp := openSpool(t, t.TempDir())
	j := &fakeJournal{}
	log, _ := newLog()
	r := NewRecorder(sink, log, Options{Spool: sp, Journal: j, Linger: -1})
	r.Record(seqRec(0))
	waitFor(t, "stored", func() bool { return len(sink.stored()) == 1 })
	sink.set(errors.New("down"), false)
	r.Record(seqRec(1))
	r.Close(context.Background())
	j.mu.Lock()
	defer j.mu.Unlock()
	if strings.Join(j.final, ",") != "req_00000,req_00001" || strings.Join(j.durable, ",") != "req_00000,req_00001" {
		t.Fatalf("final %v durable %v", j.final, j.durable)
	}
}

type fakeJournal struct {
	mu             sync.Mutex
	final, durable []string
}

func (j *fakeJournal) Final(rec grokgate.Record) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.final = append(j.final, rec.RequestID)
}

func (j *fakeJournal) Durable(recs []grokgate.Record) {
	j.mu.Lock()
	defer j.mu.Unlock()
	for _, r := range recs {
		j.durable = append(j.durable, r.RequestID)
	}
}

// TestSanitize: text a database cannot hold is cleaned before the sink;
// clean text is left as it is.
func TestSanitize(t *testing.T) {
	r := grokgate.Record{RequestID: "req_1", RequestedModel: "gr\x00ok\xff", Model: strings.Repeat("é", 200), UpstreamID: "ok"}
	Sanitize(&r)
	if r.RequestedModel != "grok\uFFFD" || len(r.Model) > MaxFieldBytes || !strings.HasPrefix(strings.Repeat("é", 200), r.Model) || r.UpstreamID != "ok" {
		t.Fatalf("%+v", r)
	}
	clean := grokgate.Record{RequestID: "req_1", RequestedModel: "grok-4.3"}
	if n := testing.AllocsPerRun(100, func() { Sanitize(&clean) }); n != 0 {
		t.Fatalf("%v allocations for a clean record", n)
	}
}

// TestRecorderSpoolsWhatTheQueueCannotTake: with the queue full, a record
// goes to the spool instead of being dropped, and reaches the store with
// the others once it answers.
func TestRecorderSpoolsWhatTheQueueCannotTake(t *testing.T) {
	sink := &flakySink{}
	sink.set(nil, true)
	sp := openSpool(t, t.TempDir())
	log, _ := newLog()
	r := NewRecorder(sink, log, Options{Spool: sp, QueueSize: 2, BatchSize: 1, MaxBlock: 5 * time.Millisecond, WriteTimeout: 300 * time.Millisecond, Backoff: time.Millisecond})
	for i := range 20 {
		r.Record(seqRec(i))
	}
	if st := r.Stats(); st.Dropped != 0 || st.Spooled < 15 {
		t.Fatalf("stats with a full queue: %+v", st)
	}
	sink.set(nil, false) // the insert in progress times out and is spooled; the replay writes them all
	waitFor(t, "every record stored", func() bool { return len(sink.stored()) == 20 })
	r.Close(context.Background())
	if st := r.Stats(); st.Dropped != 0 || st.Failed != 0 || st.SpoolPending != 0 {
		t.Fatalf("stats %+v", st)
	}
}
