package spool

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/grokgate/grokgate"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func recs(from, n int) []grokgate.Record {
	var out []grokgate.Record
	for i := from; i < from+n; i++ {
		out = append(out, grokgate.Record{Time: time.Unix(1700000000, int64(i)*1000).UTC(), RequestID: fmt.Sprintf("req_%05d", i),
			KeyID: "key_a", Route: "/chat/completions", RequestedModel: "grok-4.3", Status: 200, Outcome: grokgate.OutcomeCompleted,
			PromptTokens: int64(i), Latency: time.Duration(i) * time.Millisecond, Count: 1})
	}
	return out
}

func open(t *testing.T, dir string, opts Options) *Spool {
	t.Helper()
	s, err := Open(dir, quiet, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// drain peeks and removes until the spool is empty, returning the request
// ids in the order they came.
func drain(t *testing.T, s *Spool, batch int) []string {
	t.Helper()
	var ids []string
	for range 10000 {
		got, err := s.Peek(batch)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) == 0 {
			return ids
		}
		for _, r := range got {
			ids = append(ids, r.RequestID)
		}
		if err := s.Remove(); err != nil {
			t.Fatal(err)
		}
	}
	t.Fatal("the spool never emptied")
	return nil
}

func wantIDs(t *testing.T, got []string, from, n int) {
	t.Helper()
	if len(got) != n {
		t.Fatalf("%d records, want %d", len(got), n)
	}
	for i, id := range got {
		if want := fmt.Sprintf("req_%05d", from+i); id != want {
			t.Fatalf("record %d is %s, want %s", i, id, want)
		}
	}
}

// TestOrderAcrossFilesAndRestarts: records come back in the order they were
// appended, across spool files and a restart, each exactly once, and the
// files replayed are removed.
func TestOrderAcrossFilesAndRestarts(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, Options{SegmentBytes: 2 << 10})
	for i := 0; i < 300; i += 30 {
		if err := s.Append(recs(i, 30)); err != nil {
			t.Fatal(err)
		}
	}
	if s.Pending() != 300 {
		t.Fatalf("pending %d", s.Pending())
	}
	// Replay a part, then restart.
	var first []string
	for range 4 {
		got, _ := s.Peek(25)
		for _, r := range got {
			first = append(first, r.RequestID)
		}
		s.Remove()
	}
	if got, _ := s.Peek(25); len(got) != 25 {
		t.Fatal("peek without remove")
	} // peeked, not removed: comes again after the restart
	s.Close()
	left := int64(300 - len(first))
	if p, d, err := Count(dir); err != nil || p != left || d != 0 {
		t.Fatalf("Count: %d %d %v; want %d pending", p, d, err, left)
	}
	s = open(t, dir, Options{SegmentBytes: 2 << 10})
	if s.Pending() != left {
		t.Fatalf("pending after restart %d, want %d", s.Pending(), left)
	}
	s.Append(recs(300, 10))
	wantIDs(t, append(first, drain(t, s, 64)...), 0, 310)
	if s.Pending() != 0 {
		t.Fatalf("pending %d", s.Pending())
	}
	files, _ := filepath.Glob(filepath.Join(dir, "usage-*.spool"))
	if len(files) != 1 {
		t.Fatalf("files left after replay: %v", files)
	}
	if st, _ := os.Stat(files[0]); st.Size() != 0 {
		t.Fatalf("the file being written is not emptied once replayed: %d bytes", st.Size())
	}
}

// TestRecordRoundTrip: a record comes back field for field, NUL bytes
// included.
func TestRecordRoundTrip(t *testing.T) {
	s := open(t, t.TempDir(), Options{})
	r := recs(0, 1)[0]
	r.RequestedModel, r.Estimated, r.ToolCalls.WebSearch, r.TTFB, r.UpstreamID = "a\x00b", true, 3, time.Microsecond*1234, "up"
	s.Append([]grokgate.Record{r})
	got, err := s.Peek(10)
	if err != nil || len(got) != 1 || got[0] != r {
		t.Fatalf("got %+v, %v\nwant %+v", got, err, r)
	}
}

// TestTornLastLine: a line a crash cut short, or damaged, is skipped; the
// records around it are read, and appending goes on.
func TestTornLastLine(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, Options{})
	s.Append(recs(0, 5))
	s.Close()
	files, _ := filepath.Glob(filepath.Join(dir, "usage-*.spool"))
	f, _ := os.OpenFile(files[0], os.O_WRONLY|os.O_APPEND, 0)
	b, _ := os.ReadFile(files[0])
	lines := strings.SplitAfter(string(b), "\n")
	f.WriteString(lines[0][:len(lines[0])/2]) // torn
	f.Close()
	// A damaged line in the middle of another file.
	os.WriteFile(filepath.Join(dir, "usage-0000000000000000.spool"), []byte(lines[1]+strings.Replace(lines[2], "req", "REQ", 1)+lines[3]), 0o600)
	s = open(t, dir, Options{})
	if s.Pending() != 7 {
		t.Fatalf("pending %d, want 7 (2 + 5 good lines)", s.Pending())
	}
	s.Append(recs(5, 2))
	got := drain(t, s, 3)
	want := "req_00001 req_00003 req_00000 req_00001 req_00002 req_00003 req_00004 req_00005 req_00006"
	if strings.Join(got, " ") != want {
		t.Fatalf("got %v\nwant %s", got, want)
	}
}

// TestOneProcessPerDirectory: a second Open of a directory in use fails
// and says what to do.
func TestOneProcessPerDirectory(t *testing.T) {
	dir := t.TempDir()
	open(t, dir, Options{})
	_, err := Open(dir, quiet, Options{})
	if err == nil || !strings.Contains(err.Error(), "GROKGATE_SPOOL_DIR") {
		t.Fatalf("second Open: %v", err)
	}
}

// TestDeadLetters: a dead letter keeps the record and the reason, and is
// counted after a restart.
func TestDeadLetters(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, Options{})
	r := recs(0, 1)[0]
	if err := s.DeadLetter(r, "invalid byte sequence"); err != nil {
		t.Fatal(err)
	}
	s.Close()
	b, _ := os.ReadFile(filepath.Join(dir, deadName))
	if !strings.Contains(string(b), `"reason":"invalid byte sequence"`) || !strings.Contains(string(b), r.RequestID) {
		t.Fatalf("dead-letter file: %s", b)
	}
	s = open(t, dir, Options{})
	if s.DeadLetters() != 1 || s.Pending() != 0 {
		t.Fatalf("dead %d pending %d", s.DeadLetters(), s.Pending())
	}
}

// kill stops j as a killed process would: what was written stays, and the
// file is neither emptied, nor cut to its lines, nor synced. (The writer
// goroutine is let finish the lines queued, which it writes microseconds
// after they are.) TestJournalSurvivesSIGKILL kills a real process.
func kill(j *Journal) {
	close(j.stop)
	<-j.done
	j.out.drop()
}

// openJournal opens a journal and keeps what the last one left.
func openJournal(s *Spool, opts JournalOptions) (*Journal, int, error) {
	j, rec, err := s.OpenJournal(opts)
	if err != nil {
		return nil, 0, err
	}
	n, err := rec.Keep(interruptedRecord)
	return j, n, err
}

func interruptedRecord(u Unfinished) grokgate.Record {
	r := u.Begun
	r.Outcome, r.Estimated = grokgate.OutcomeInterrupted, true
	r.CompletionTokens, r.ReasoningTokens = u.Content/4, u.Reasoning/4
	r.Latency = u.Seen.Sub(r.Time)
	return r
}

// TestJournalRecovery: after a process dies, each request it journaled
// without a durable record comes back: as its final record when it had
// one, else as an interrupted record from its last progress; requests
// whose records were safe do not.
func TestJournalRecovery(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, Options{})
	j, n, err := openJournal(s, JournalOptions{Interval: time.Hour})
	if err != nil || n != 0 {
		t.Fatal(n, err)
	}
	rs := recs(0, 4)
	var ps [4]grokgate.Progress
	for i := range rs {
		j.Begin(rs[i], &ps[i])
	}
	j.tick() // asks for the counts
	for i := range ps {
		if !ps[i].Due() {
			t.Fatal("the journal did not ask for progress")
		}
		ps[i].Publish(int64(400*(i+1)), 40)
	}
	j.tick() // writes them
	if ps[0].Due() != true {
		t.Fatal("progress not asked again")
	}
	final := rs[2]
	final.Outcome, final.CompletionTokens = grokgate.OutcomeCompleted, 99
	j.Final(final)           // its record handed to the recorder, not yet safe
	j.Final(rs[3])           // safe:
	j.Durable(rs[3:4])       // stored
	orphan := recs(10, 1)[0] // a record without a begin (a refusal), not yet safe
	j.Final(orphan)
	if j.Open() != 4 {
		t.Fatalf("open %d", j.Open())
	}
	// The process dies: nothing is closed but the lock.
	kill(j)
	s.Close()

	s = open(t, dir, Options{})
	j2, n, err := openJournal(s, JournalOptions{Interval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer j2.Close()
	if n != 4 || s.Pending() != 4 {
		t.Fatalf("recovered %d, pending %d; want 4", n, s.Pending())
	}
	got, _ := s.Peek(10)
	if got[0].RequestID != "req_00000" || got[0].Outcome != grokgate.OutcomeInterrupted || !got[0].Estimated || got[0].CompletionTokens != 100 || got[0].ReasoningTokens != 10 {
		t.Fatalf("interrupted: %+v", got[0])
	}
	if got[1].RequestID != "req_00001" || got[1].CompletionTokens != 200 {
		t.Fatalf("interrupted: %+v", got[1])
	}
	if got[2] != final {
		t.Fatalf("final record: %+v", got[2])
	}
	if got[3] != orphan {
		t.Fatalf("orphan final record: %+v", got[3])
	}
	// The next start finds nothing more.
	s.Remove()
	j2.Close()
	s.Close()
	s = open(t, dir, Options{})
	_, n, err = openJournal(s, JournalOptions{})
	if err != nil || n != 0 || s.Pending() != 0 {
		t.Fatalf("second recovery: %d, pending %d, %v", n, s.Pending(), err)
	}
}

// TestJournalRecoveryOutlivesACrash: a process that dies after setting an
// old journal aside but before keeping its records leaves it for the next
// start, which recovers it together with its own predecessor's.
func TestJournalRecoveryOutlivesACrash(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, Options{})
	j, _, _ := openJournal(s, JournalOptions{Interval: time.Hour})
	j.Begin(recs(0, 1)[0], new(grokgate.Progress))
	kill(j)
	s.Close()
	// The next process sets it aside, journals a request of its own, and
	// dies before Keep.
	s = open(t, dir, Options{})
	j, rec, err := s.OpenJournal(JournalOptions{Interval: time.Hour})
	if err != nil || rec.Len() != 1 {
		t.Fatalf("%v, %d recovered", err, rec.Len())
	}
	j.Begin(recs(1, 1)[0], new(grokgate.Progress))
	kill(j)
	s.Close()
	s = open(t, dir, Options{})
	_, n, err := openJournal(s, JournalOptions{})
	got, _ := s.Peek(10)
	if err != nil || n != 2 || len(got) != 2 || got[0].RequestID != "req_00000" || got[1].RequestID != "req_00001" {
		t.Fatalf("recovered %d %v: %+v", n, err, got)
	}
	if old, _ := filepath.Glob(filepath.Join(dir, "journal.old.*")); len(old) != 0 {
		t.Fatalf("old journals left after Keep: %v", old)
	}
}

// TestJournalRewrite: a journal past its size is rewritten with the open
// requests only, and recovers the same.
func TestJournalRewrite(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, Options{})
	j, _, _ := openJournal(s, JournalOptions{Interval: time.Hour, MaxBytes: 4 << 10})
	var p grokgate.Progress
	all := recs(0, 200)
	for i, r := range all {
		j.Begin(r, &p)
		if i != 7 {
			j.Final(r)
			j.Durable([]grokgate.Record{r})
		}
	}
	p.Publish(800, 0)
	j.tick()
	// A mapped journal's file is longer than its lines: zeros follow them.
	b, _ := os.ReadFile(filepath.Join(dir, journalName))
	if n := len(bytes.TrimRight(b, "\x00")); n > 4<<10 || n == 0 {
		t.Fatalf("journal %d bytes after the rewrite", n)
	}
	kill(j)
	s.Close()
	s = open(t, dir, Options{})
	_, n, err := openJournal(s, JournalOptions{})
	got, _ := s.Peek(10)
	if err != nil || n != 1 || got[0].RequestID != "req_00007" || got[0].CompletionTokens != 200 {
		t.Fatalf("recovered %d %v: %+v", n, err, got)
	}
}

// BenchmarkJournalRequest is what the journal costs one request: its
// begin, its final record and, batched by 64 as the recorder does, the
// note that it is safe (compare with gateway's BenchmarkChat).
func BenchmarkJournalRequest(b *testing.B) {
	s, err := Open(b.TempDir(), quiet, Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	j, _, err := openJournal(s, JournalOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer j.Close()
	r := recs(0, 1)[0]
	batch := make([]grokgate.Record, 0, 64)
	var p grokgate.Progress
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		r.RequestID = fmt.Sprintf("req_%09d", i)
		j.Begin(r, &p)
		j.Final(r)
		if batch = append(batch, r); len(batch) == cap(batch) {
			j.Durable(batch)
			batch = batch[:0]
		}
	}
}

// BenchmarkSpoolAppend is one batch of 256 records spooled: one write and
// one fsync.
func BenchmarkSpoolAppend(b *testing.B) {
	s, err := Open(b.TempDir(), quiet, Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	batch := recs(0, 256)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if err := s.Append(batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(batch)), "ns/record")
}

// TestAppendRecordMatchesEncodingJSON: the hand-written encoding of a
// record decodes, with encoding/json, to what encoding/json's own does:
// every field, and strings with quotes, escapes, control characters,
// multi-byte and invalid UTF-8.
func TestAppendRecordMatchesEncodingJSON(t *testing.T) {
	r := grokgate.Record{Time: time.Date(2026, 1, 2, 3, 4, 5, 6789, time.FixedZone("x", 3600)), RequestID: "req_\"q\"\\",
		KeyID: "key\x00\x01\x1f", Route: "/chat/completions", RequestedModel: "grök-\xff-\u2028", Model: "m\t\n\r",
		Stream: true, Fallback: true, Status: 499, Outcome: grokgate.OutcomeInterrupted, PromptTokens: 1, CompletionTokens: -2,
		ReasoningTokens: 3, CachedTokens: 4, CostTicks: 1 << 62, Estimated: true, Latency: 7 * time.Millisecond, TTFB: 8,
		UpstreamID: "up</script>", ToolCalls: grokgate.ToolCalls{WebSearch: 1, XSearch: 2, CodeInterpreter: 3, FileSearch: 4, MCP: 5, DocumentSearch: 6},
		Count: 9}
	// And a request's begin: most fields zero, which are left out.
	begun := grokgate.Record{Time: r.Time, RequestID: "req_1", KeyID: "key_1", Route: "/chat/completions", RequestedModel: "grok-4.3", Status: 200, Count: 1}
	for _, r := range []grokgate.Record{r, begun} {
		var mine, theirs grokgate.Record
		if err := json.Unmarshal(appendRecord(nil, &r), &mine); err != nil {
			t.Fatalf("%v: %s", err, appendRecord(nil, &r))
		}
		std, _ := json.Marshal(&r)
		json.Unmarshal(std, &theirs)
		if !mine.Time.Equal(theirs.Time) {
			t.Fatalf("time %v, want %v", mine.Time, theirs.Time)
		}
		mine.Time = theirs.Time
		if mine != theirs {
			t.Fatalf("decoded\n %+v\nwant\n %+v", mine, theirs)
		}
	}
	if n := len(appendRecord(nil, &begun)); n > 200 {
		t.Errorf("a begun record takes %d bytes: %s", n, appendRecord(nil, &begun))
	}
}

// TestSpent: the spool reports a key's cost in the records it has not
// replayed yet, by day and by month, across its files and a restart; what
// is replayed, other keys' records and records before the month do not
// count, nor does a key whose id starts like the key's.
func TestSpent(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, Options{SegmentBytes: 600}) // a few records per file
	monthStart := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	dayStart := time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC)
	rec := func(id, key string, at time.Time, cost int64) grokgate.Record {
		return grokgate.Record{Time: at, RequestID: id, KeyID: key, Route: "/chat/completions", RequestedModel: "grok-4.3",
			Status: 200, Outcome: grokgate.OutcomeCompleted, CostTicks: cost, Count: 1}
	}
	// The first record is replayed: the read position moves past it in a
	// file that still holds the second.
	replayed := rec("req_0", "key_a", dayStart.Add(time.Hour), 1)
	if err := s.Append([]grokgate.Record{replayed, rec("req_1", "key_a", dayStart.Add(2*time.Hour), 10)}); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Peek(1); err != nil || len(got) != 1 {
		t.Fatalf("peek: %v %v", got, err)
	}
	if err := s.Remove(); err != nil {
		t.Fatal(err)
	}
	if s.Pending() != 1 {
		t.Fatalf("%d records pending, want 1", s.Pending())
	}
	batch := []grokgate.Record{
		rec("req_2", "key_a", dayStart.Add(-24*time.Hour), 100),        // this month, not today
		rec("req_3", "key_a", monthStart.Add(-time.Second), 1000),      // last month
		rec("req_4", "key_b", dayStart.Add(3*time.Hour), 10000),        // another key
		rec("req_5", "key_ab", dayStart.Add(4*time.Hour), 100000),      // a key whose id starts like it
		rec("req_6", "key_a", dayStart.Add(5*time.Hour), 1000000),      // today, in a later file
		rec("req_7", "key_b", dayStart.Add(6*time.Hour), 10000000),     // another key again
		rec("req_8", "key_a", dayStart.Add(7*time.Hour), 100000000),    // today
		rec("req_9", "key_a", dayStart.Add(-48*time.Hour), 1000000000), // this month
	}
	for _, r := range batch {
		if err := s.Append([]grokgate.Record{r}); err != nil {
			t.Fatal(err)
		}
	}
	if n, _ := listSegments(dir); len(n) < 3 {
		t.Fatalf("the records fill %d files; the test needs several", len(n))
	}
	const wantDay, wantMonth = 10 + 1000000 + 100000000, 10 + 100 + 1000000 + 100000000 + 1000000000
	check := func(s *Spool, when string) {
		t.Helper()
		day, month, err := s.Spent("key_a", dayStart, monthStart)
		if err != nil || day != wantDay || month != wantMonth {
			t.Errorf("%s: spent %d today, %d this month (%v); want %d and %d", when, day, month, err, wantDay, wantMonth)
		}
	}
	check(s, "before a restart")
	s.Close()
	s = open(t, dir, Options{SegmentBytes: 600})
	check(s, "after a restart")

	// A key id with characters encoding/json would escape (it writes < as
	// \u003c) is found as the spool writes it.
	odd := rec("req_odd", "key_<&>", dayStart.Add(time.Hour), 7)
	if err := s.Append([]grokgate.Record{odd}); err != nil {
		t.Fatal(err)
	}
	if day, month, err := s.Spent("key_<&>", dayStart, monthStart); err != nil || day != 7 || month != 7 {
		t.Errorf("key_<&>: %d and %d (%v), want 7", day, month, err)
	}

	// Replayed, the records leave the spool's figures (the store has them).
	drain(t, s, 4)
	if day, month, err := s.Spent("key_a", dayStart, monthStart); err != nil || day != 0 || month != 0 {
		t.Errorf("after the replay: %d and %d (%v), want 0", day, month, err)
	}
}

// TestSpentWhileReplaying: Spent reads the files while records are appended
// and replayed, the spool emptying and beginning its files again, and
// never fails or counts a record it was not given.
func TestSpentWhileReplaying(t *testing.T) {
	s := open(t, t.TempDir(), Options{SegmentBytes: 2000})
	day := time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC)
	r := recs(0, 1)[0]
	r.Time, r.CostTicks = day.Add(time.Hour), 1
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 300 {
			r.RequestID = fmt.Sprintf("req_%05d", i)
			if err := s.Append([]grokgate.Record{r, r, r}); err != nil {
				t.Error(err)
				return
			}
			if i%3 == 2 {
				drain(t, s, 4)
			}
		}
	}()
	for {
		select {
		case <-done:
			return
		default:
		}
		d, m, err := s.Spent("key_a", day, day)
		if err != nil || d != m || d < 0 || d > 9 {
			t.Fatalf("spent %d and %d (%v) with at most 9 records waiting", d, m, err)
		}
	}
}
