package spool

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/grokgate/grokgate"
)

const journalName = "journal"

// JournalOptions tunes a Journal; zero values mean the defaults.
type JournalOptions struct {
	// Interval is how often the running counts of the requests in flight
	// are written and the journal fsynced (default 1s).
	Interval time.Duration
	// MaxBytes is the size past which the journal is rewritten with only
	// the requests still open (default 4 MiB).
	MaxBytes int64
}

// Journal notes every metered request from its admission until its usage
// record is safe (in the store or the spool), so that a process that dies
// leaves none unrecorded: the next start turns each request still open into
// a record (Recovered).
//
// Its lines, in the file "journal" of the spool directory:
//
//	{"b":RECORD}                      a request was admitted (what is known of its record)
//	{"p":ID,"c":N,"r":N,"t":TIME}     bytes of text and of reasoning it had relayed at TIME
//	{"f":RECORD}                      its final record was handed to the recorder
//	{"d":[ID,...]}                    those records are stored or spooled
//
// Begin and final lines are in the file's pages in the page cache, which a
// killed process does not lose, before the request goes on. On Linux every
// line is copied there through a shared mapping of the file, without a
// system call (journalFile); elsewhere begin and final lines are written
// with write(2) and the others by a writer goroutine that gathers those
// queued meanwhile into one write. All are fsynced together once per
// Interval, which bounds what a machine crash can take. Progress is
// written at most once per Interval per request, from counts the relay
// publishes when asked (grokgate.Progress), never per event.
type Journal struct {
	dir  string
	opts JournalOptions
	now  func() time.Time
	spol *Spool

	wmu      sync.Mutex // held while writing to out with write(2) outside mu, or replacing it
	mu       sync.Mutex // the rest
	out      *journalFile
	live     map[string]*journalEntry
	unsynced bool
	renamed  bool   // rewrite replaced the file: the directory needs an fsync
	werr     error  // the first write error, logged once
	pend     []byte // lines queued for the writer goroutine (out not mapped)
	spare    []byte // the buffer the writer wrote last, for reuse
	line     []byte // the line being written, reused

	wake chan struct{} // lines were queued
	stop chan struct{}
	done chan struct{}
}

type journalEntry struct {
	rec   grokgate.Record // the begun record, then the final one
	p     *grokgate.Progress
	c, r  int64
	t     time.Time
	final bool
}

type journalLine struct {
	Begin    *grokgate.Record `json:"b,omitempty"`
	Progress string           `json:"p,omitempty"`
	Content  int64            `json:"c,omitempty"`
	Reason   int64            `json:"r,omitempty"`
	Time     time.Time        `json:"t,omitzero"`
	Final    *grokgate.Record `json:"f,omitempty"`
	Durable  []string         `json:"d,omitempty"`
}

// Unfinished is a request an earlier process journaled but did not see
// through: Begun is what was known when it was admitted, Content and
// Reasoning the bytes of text it had relayed at Seen.
type Unfinished struct {
	Begun              grokgate.Record
	Content, Reasoning int64
	Seen               time.Time
}

// OpenJournal starts a new journal in the spool's directory. What earlier
// processes left unfinished in theirs is set aside (renamed
// journal.old.N) and returned: Recovered.Keep turns it into records in the
// spool, after which the old journals are removed; until then a process
// that dies leaves them for the next start.
func (s *Spool) OpenJournal(opts JournalOptions) (*Journal, *Recovered, error) {
	if opts.Interval <= 0 {
		opts.Interval = time.Second
	}
	if opts.MaxBytes <= 0 {
		opts.MaxBytes = 4 << 20
	}
	path := filepath.Join(s.dir, journalName)
	old, err := filepath.Glob(path + ".old.*")
	if err != nil {
		return nil, nil, fmt.Errorf("usage journal: %w", err)
	}
	slices.SortFunc(old, func(a, b string) int { return oldSeq(a) - oldSeq(b) })
	if _, err := os.Stat(path); err == nil {
		next := 1
		if len(old) > 0 {
			next = oldSeq(old[len(old)-1]) + 1
		}
		aside := fmt.Sprintf("%s.old.%d", path, next)
		if err := os.Rename(path, aside); err != nil {
			return nil, nil, fmt.Errorf("usage journal: %w", err)
		}
		old = append(old, aside)
	}
	rec := &Recovered{s: s, files: old}
	bad := 0
	if rec.items, bad, err = readJournals(old); err != nil {
		return nil, nil, fmt.Errorf("usage journal: %w", err)
	}
	if bad > 0 {
		s.log.Warn("usage journal: skipping damaged lines (a crash cut the last one short)", "lines", bad)
	}
	out, err := createJournalFile(path, os.O_EXCL, mapSize(opts, 0), s.log)
	if err != nil {
		return nil, nil, fmt.Errorf("usage journal: %w", err)
	}
	if err := syncDir(s.dir); err != nil {
		out.drop()
		return nil, nil, fmt.Errorf("usage journal: %w", err)
	}
	j := &Journal{dir: s.dir, opts: opts, now: s.opts.Now, spol: s, out: out, live: map[string]*journalEntry{},
		wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	go j.run()
	return j, rec, nil
}

// mapSize is the size to map of a journal file that starts with n bytes:
// twice what the rewrite lets it grow to, so that what a burst writes
// between two ticks rarely outgrows it.
func mapSize(opts JournalOptions, n int) int64 {
	return 2 * max(opts.MaxBytes, int64(n))
}

// oldSeq is N of a journal.old.N path.
func oldSeq(path string) int {
	n, _ := strconv.Atoi(path[strings.LastIndexByte(path, '.')+1:])
	return n
}

// Recovered is what earlier processes' journals left unfinished: requests
// whose records were not yet safe, in the order they began.
type Recovered struct {
	s     *Spool
	files []string
	items []recovered
}

type recovered struct {
	final *grokgate.Record // the request's final record; nil while it was in flight
	u     Unfinished
}

// Len is the number of records Keep makes.
func (r *Recovered) Len() int { return len(r.items) }

// Keep appends to the spool a record for each request: its final record
// when it had one, else interrupted's record of it (which estimates it),
// and then removes the old journals. It returns how many it kept.
func (r *Recovered) Keep(interrupted func(Unfinished) grokgate.Record) (int, error) {
	recs := make([]grokgate.Record, 0, len(r.items))
	for _, it := range r.items {
		if it.final != nil {
			recs = append(recs, *it.final)
		} else {
			recs = append(recs, interrupted(it.u))
		}
	}
	if err := r.s.Append(recs); err != nil {
		return 0, fmt.Errorf("usage journal: keeping the records of the last run: %w", err)
	}
	for _, f := range r.files {
		os.Remove(f)
	}
	r.items, r.files = nil, nil
	return len(recs), syncDir(r.s.dir)
}

// readJournals reads the journals at paths, oldest first, and returns what
// they left unfinished, in the order the requests began.
func readJournals(paths []string) ([]recovered, int, error) {
	type open struct {
		recovered
		seq int
	}
	entries := map[string]*open{}
	seq, bad := 0, 0
	for _, path := range paths {
		f, err := os.Open(path)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, bad, err
		}
		lr := newLineReader(f, 0)
		for {
			p, err := lr.next()
			if err == io.EOF {
				break
			}
			if errors.Is(err, errBadLine) {
				bad++
				continue
			}
			if err != nil {
				f.Close()
				return nil, bad, err
			}
			var l journalLine
			if json.Unmarshal(p, &l) != nil {
				bad++
				continue
			}
			switch {
			case l.Begin != nil:
				seq++
				entries[l.Begin.RequestID] = &open{recovered{u: Unfinished{Begun: *l.Begin, Seen: l.Begin.Time}}, seq}
			case l.Progress != "":
				if e := entries[l.Progress]; e != nil {
					e.u.Content, e.u.Reasoning, e.u.Seen = l.Content, l.Reason, l.Time
				}
			case l.Final != nil:
				e := entries[l.Final.RequestID]
				if e == nil {
					seq++
					e = &open{seq: seq}
					entries[l.Final.RequestID] = e
				}
				e.final = l.Final
			case l.Durable != nil:
				for _, id := range l.Durable {
					delete(entries, id)
				}
			}
		}
		f.Close()
	}
	list := make([]*open, 0, len(entries))
	for _, e := range entries {
		list = append(list, e)
	}
	slices.SortFunc(list, func(a, b *open) int { return a.seq - b.seq })
	items := make([]recovered, len(list))
	for i, e := range list {
		items[i] = e.recovered
	}
	return items, bad, nil
}

// Begin notes an admitted request: rec is what is known of its record
// (time, request id, key, route, model, stream, prompt tokens), p where
// its relay publishes its progress.
func (j *Journal) Begin(rec grokgate.Record, p *grokgate.Progress) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.live[rec.RequestID] = &journalEntry{rec: rec, p: p, t: rec.Time}
	j.writeRecord(`{"b":`, &rec)
}

// Final notes rec, the final record of a request, before the recorder has
// it: until Durable, a process that dies leaves it in the journal.
func (j *Journal) Final(rec grokgate.Record) {
	j.mu.Lock()
	defer j.mu.Unlock()
	e := j.live[rec.RequestID]
	if e == nil {
		e = &journalEntry{}
		j.live[rec.RequestID] = e
	}
	e.rec, e.final, e.p = rec, true, nil
	j.writeRecord(`{"f":`, &rec)
}

// Durable notes that recs are stored or spooled: the journal forgets them.
func (j *Journal) Durable(recs []grokgate.Record) {
	ids := make([]string, 0, len(recs))
	for i := range recs {
		ids = append(ids, recs[i].RequestID)
	}
	line, err := json.Marshal(journalLine{Durable: ids})
	j.mu.Lock()
	defer j.mu.Unlock()
	for _, id := range ids {
		delete(j.live, id)
	}
	j.write(line, err)
}

// Open is the number of requests the journal holds.
func (j *Journal) Open() int {
	j.mu.Lock()
	defer j.mu.Unlock()
	return len(j.live)
}

// write writes one line (a request's record is safe; progress); j.mu is
// held. Into a mapped file it is copied at once. Otherwise it is queued
// for the writer goroutine, which writes whatever has queued up in one
// write(2), at once when idle, so a burst of requests costs one call.
// Were a process killed between the two, the next start would write
// records again that are already stored, which the ledger's idempotence
// makes harmless.
func (j *Journal) write(payload []byte, err error) {
	if err != nil {
		j.fail(err)
		return
	}
	if j.out != nil && j.out.mapped() {
		j.line = appendLine(j.line[:0], payload)
		j.put(j.line)
		return
	}
	if len(j.pend) == 0 {
		select {
		case j.wake <- struct{}{}:
		default:
		}
	}
	j.pend = appendLine(j.pend, payload)
}

// writeRecord writes the line {"KEY":RECORD}, key given as `{"KEY":`, at
// once: a request is not sent upstream, nor its answer finished, before
// the journal has it. j.mu is held.
func (j *Journal) writeRecord(key string, rec *grokgate.Record) {
	b := append(j.line[:0], "00000000 "...)
	b = appendRecord(append(b, key...), rec)
	b = append(b, '}')
	sealLine(b)
	b = append(b, '\n')
	j.line = b
	j.put(b)
}

// put writes b, whole lines, to the file; j.mu is held.
func (j *Journal) put(b []byte) {
	if j.out == nil {
		return
	}
	j.unsynced = true
	if err := j.out.write(b); err != nil {
		j.fail(err)
	}
}

// fail logs the first write error; j.mu is held.
func (j *Journal) fail(err error) {
	if j.werr == nil {
		j.werr = err
		j.spol.log.Error("usage journal: write failed; a crash now could lose records of requests in flight", "err", err)
	}
}

func (j *Journal) run() {
	defer close(j.done)
	t := time.NewTicker(j.opts.Interval)
	defer t.Stop()
	for {
		select {
		case <-j.stop:
			j.flush()
			return
		case <-j.wake:
			j.flush()
		case <-t.C:
			j.tick()
		}
	}
}

// flush writes the queued lines. j.wmu orders the writes (the writer
// goroutine's, and a test's tick); j.mu is not held while writing.
func (j *Journal) flush() {
	j.wmu.Lock()
	defer j.wmu.Unlock()
	j.flushLocked()
}

func (j *Journal) flushLocked() {
	j.mu.Lock()
	buf, out := j.pend, j.out
	j.pend, j.spare = j.spare[:0], nil
	if len(buf) > 0 && out != nil && out.mapped() {
		// Lines are queued only while the file is not mapped, and the
		// rewrite that maps a new one drops them; were some left, they
		// are copied, under j.mu like every store into the mapping.
		j.put(buf)
		j.mu.Unlock()
		j.giveBack(buf)
		return
	}
	j.mu.Unlock()
	if len(buf) == 0 || out == nil {
		j.giveBack(buf)
		return
	}
	// Not mapped: it stays so while j.wmu is held (only rewrite maps).
	n, err := out.f.Write(buf)
	j.mu.Lock()
	out.size += int64(n)
	j.unsynced = true
	if err != nil {
		j.fail(err)
	}
	j.mu.Unlock()
	j.giveBack(buf)
}

// giveBack keeps buf for the next round, unless it grew large.
func (j *Journal) giveBack(buf []byte) {
	if cap(buf) > 1<<20 {
		return
	}
	j.mu.Lock()
	if j.spare == nil {
		j.spare = buf[:0]
	}
	j.mu.Unlock()
}

// tick writes the progress of the requests in flight that moved, asks them
// for their next counts, fsyncs, and rewrites a journal grown too large.
func (j *Journal) tick() {
	j.wmu.Lock()
	now := j.now().UTC()
	j.mu.Lock()
	for id, e := range j.live {
		if e.p == nil {
			continue
		}
		c, r := e.p.Relayed()
		e.p.Ask()
		if c == e.c && r == e.r {
			continue
		}
		e.c, e.r, e.t = c, r, now
		p, err := json.Marshal(journalLine{Progress: id, Content: c, Reason: r, Time: now})
		j.write(p, err)
	}
	if j.out != nil && j.out.size > j.opts.MaxBytes {
		j.rewrite() // holds what was queued too
	}
	j.mu.Unlock()
	j.flushLocked()
	j.mu.Lock()
	var f *os.File
	if j.out != nil {
		f = j.out.f // closed only by rewrite and Close, neither of which runs meanwhile
	}
	sync, renamed := j.unsynced, j.renamed
	j.unsynced, j.renamed = false, false
	j.mu.Unlock()
	j.wmu.Unlock()
	// Outside the locks: requests and the writer go on meanwhile. On Linux
	// fsync writes back the pages dirtied through the mapping too.
	if sync && f != nil {
		f.Sync()
	}
	if renamed {
		syncDir(j.dir)
	}
}

// rewrite replaces the journal with one holding only the open requests,
// oldest first; j.mu is held, and it runs on the writer goroutine. It only
// writes and renames (page cache and a metadata change): tick fsyncs the
// file and the directory after it, outside the lock, so requests never wait
// on the disk.
func (j *Journal) rewrite() {
	entries := make([]*journalEntry, 0, len(j.live))
	for _, e := range j.live {
		entries = append(entries, e)
	}
	slices.SortFunc(entries, func(a, b *journalEntry) int { return a.rec.Time.Compare(b.rec.Time) })
	var buf []byte
	for _, e := range entries {
		var l journalLine
		if e.final {
			l.Final = &e.rec
		} else {
			l.Begin = &e.rec
		}
		if p, err := json.Marshal(l); err == nil {
			buf = appendLine(buf, p)
		}
		if !e.final && (e.c > 0 || e.r > 0) {
			if p, err := json.Marshal(journalLine{Progress: e.rec.RequestID, Content: e.c, Reason: e.r, Time: e.t}); err == nil {
				buf = appendLine(buf, p)
			}
		}
	}
	path := filepath.Join(j.dir, journalName)
	out, err := createJournalFile(path+".tmp", os.O_TRUNC, mapSize(j.opts, len(buf)), j.spol.log)
	if err == nil {
		if err = out.write(buf); err == nil {
			err = os.Rename(path+".tmp", path)
		}
		if err != nil {
			out.drop()
		}
	}
	if err != nil {
		j.spol.log.Error("usage journal: rewriting failed; it keeps growing", "err", err)
		return
	}
	j.out.drop()
	j.out = out
	j.unsynced, j.renamed = true, true
	j.pend = j.pend[:0] // the open requests' state, which the rewrite holds
}

// Close stops the journal. When every request it noted is safe, the file
// is emptied; otherwise it stays, cut to its lines, for the next start to
// recover.
func (j *Journal) Close() error {
	select {
	case <-j.stop:
	default:
		close(j.stop)
	}
	<-j.done
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.out == nil {
		return nil
	}
	err := j.out.close(len(j.live) > 0)
	j.out = nil
	return err
}
