package spool

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/grokgate/grokgate"
)

const (
	segPrefix    = "usage-"
	segSuffix    = ".spool"
	deadName     = "dead-letter.jsonl"
	replayedName = "replayed"
	lockName     = "lock"
)

var errLocked = errors.New("locked")

// ErrInUse is Open's error when another process holds the directory.
var ErrInUse = errors.New("usage spool directory in use by another grokgate process")

// Options tunes a Spool; zero values mean the defaults.
type Options struct {
	// SegmentBytes is the size past which the spool file being written is
	// closed and a new one begun, so the files already replayed can be
	// removed while an outage lasts (default 8 MiB).
	SegmentBytes int64
	// Now is the clock of dead letters and the journal (default time.Now).
	Now func() time.Time
}

// Spool is an append-only, fsynced queue of usage records on local disk,
// read back in the order they were written. One process owns a spool
// directory at a time (an exclusive lock on its lock file); its methods are
// safe for concurrent use.
//
// The records are in files usage-SEQ.spool, oldest first; the file being
// written is the newest. Replayed records are forgotten by moving a read
// position (kept in the file "replayed", so a restart does not write them
// again; if it is lost they are written again, which the store's
// idempotence by request id makes harmless), and a file is removed once
// all of it is replayed.
type Spool struct {
	dir  string
	log  *slog.Logger
	opts Options
	lock *os.File

	mu      sync.Mutex
	segs    []uint64 // oldest first; the last is active
	active  *os.File
	size    int64 // the active file's size
	head    int64 // the read position in segs[0]
	pending int64 // records not yet replayed
	resets  int   // times every record was replayed and the files begun again
	peek    peekState
	dead    *os.File
	deadN   int64
	buf     []byte
}

// peekState is what the last Peek returned, for Remove.
type peekState struct {
	seg uint64
	end int64
	n   int
}

// Open opens the spool in dir, creating it, and counts the records that an
// earlier process left there. It fails when another process holds dir.
func Open(dir string, log *slog.Logger, opts Options) (*Spool, error) {
	if opts.SegmentBytes <= 0 {
		opts.SegmentBytes = 8 << 20
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("usage spool: %w (set GROKGATE_SPOOL_DIR to a writable directory)", err)
	}
	lf, err := os.OpenFile(filepath.Join(dir, lockName), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("usage spool: %w (set GROKGATE_SPOOL_DIR to a writable directory)", err)
	}
	if err := lockFile(lf); err != nil {
		lf.Close()
		if errors.Is(err, errLocked) {
			return nil, fmt.Errorf("%w: %s; give each process its own GROKGATE_SPOOL_DIR", ErrInUse, dir)
		}
		return nil, fmt.Errorf("usage spool: locking %s: %w", dir, err)
	}
	s := &Spool{dir: dir, log: log, opts: opts, lock: lf}
	if err := s.load(); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// load counts what earlier processes left and opens the files to write.
func (s *Spool) load() error {
	segs, err := listSegments(s.dir)
	if err != nil {
		return fmt.Errorf("usage spool: %w", err)
	}
	headSeg, headOff := readReplayed(s.dir)
	for _, seg := range segs {
		from := int64(0)
		if seg == headSeg {
			from = headOff
		} else if seg < headSeg {
			from = -1 // replayed whole
		}
		n, bad := int64(0), 0
		if from >= 0 {
			n, bad, err = countRecords(s.segPath(seg), from)
			if err != nil {
				return fmt.Errorf("usage spool: %w", err)
			}
		}
		if bad > 0 {
			s.log.Warn("usage spool: skipping damaged lines (a crash cut the last one short, or the disk damaged them)", "file", s.segPath(seg), "lines", bad)
		}
		if n == 0 {
			os.Remove(s.segPath(seg))
			continue
		}
		if len(s.segs) == 0 {
			s.head = max(from, 0)
		}
		s.segs = append(s.segs, seg)
		s.pending += n
	}
	next := uint64(1)
	if len(segs) > 0 {
		next = segs[len(segs)-1] + 1
	}
	if err := s.openSegment(next); err != nil {
		return err
	}
	s.dead, err = os.OpenFile(filepath.Join(s.dir, deadName), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("usage spool: %w", err)
	}
	if s.deadN, _, err = countRecords(filepath.Join(s.dir, deadName), 0); err != nil {
		return fmt.Errorf("usage spool: %w", err)
	}
	return nil
}

// openSegment begins the spool file seq and makes it the one written.
func (s *Spool) openSegment(seq uint64) error {
	f, err := os.OpenFile(s.segPath(seq), os.O_WRONLY|os.O_APPEND|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("usage spool: %w", err)
	}
	if err := syncDir(s.dir); err != nil {
		f.Close()
		return fmt.Errorf("usage spool: %w", err)
	}
	if s.active != nil {
		s.active.Close()
	}
	s.active, s.size = f, 0
	if len(s.segs) == 0 {
		s.head = 0
	}
	s.segs = append(s.segs, seq)
	return nil
}

func (s *Spool) segPath(seq uint64) string {
	return filepath.Join(s.dir, fmt.Sprintf("%s%016d%s", segPrefix, seq, segSuffix))
}

func listSegments(dir string) ([]uint64, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, err
	}
	var segs []uint64
	for _, e := range ents {
		name := e.Name()
		if !strings.HasPrefix(name, segPrefix) || !strings.HasSuffix(name, segSuffix) {
			continue
		}
		n, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimPrefix(name, segPrefix), segSuffix), 10, 64)
		if err == nil {
			segs = append(segs, n)
		}
	}
	slices.Sort(segs)
	return segs, nil
}

// readReplayed reads the read position: the file and the offset in it
// before which everything was replayed. 0, 0 when there is none.
func readReplayed(dir string) (seg uint64, off int64) {
	b, err := os.ReadFile(filepath.Join(dir, replayedName))
	if err != nil {
		return 0, 0
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return 0, 0
	}
	seg, err1 := strconv.ParseUint(f[0], 10, 64)
	off, err2 := strconv.ParseInt(f[1], 10, 64)
	if err1 != nil || err2 != nil || off < 0 {
		return 0, 0
	}
	return seg, off
}

// countRecords counts the good lines of path from offset from on.
func countRecords(path string, from int64) (n int64, bad int, err error) {
	bad, err = eachLine(path, from, func([]byte) { n++ })
	return n, bad, err
}

// eachLine calls fn with the JSON of each good line of path from offset
// from on (valid only during the call) and counts the damaged ones. A file
// that is gone has no lines.
func eachLine(path string, from int64, fn func(p []byte)) (bad int, err error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return 0, nil
		}
		return 0, err
	}
	defer f.Close()
	if _, err := f.Seek(from, io.SeekStart); err != nil {
		return 0, err
	}
	lr := newLineReader(f, from)
	for {
		p, err := lr.next()
		switch {
		case err == io.EOF:
			return bad, nil
		case errors.Is(err, errBadLine):
			bad++
		case err != nil:
			return bad, err
		default:
			fn(p)
		}
	}
}

// Append writes recs at the end of the spool and returns once they are on
// disk (fsynced): one write and one fsync for the whole batch.
func (s *Spool) Append(recs []grokgate.Record) error {
	if len(recs) == 0 {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.active == nil {
		return errors.New("usage spool is closed")
	}
	buf := s.buf[:0]
	for i := range recs {
		start := len(buf)
		buf = appendRecord(append(buf, "00000000 "...), &recs[i])
		sealLine(buf[start:])
		buf = append(buf, '\n')
	}
	s.buf = buf
	if s.size >= s.opts.SegmentBytes {
		if err := s.openSegment(s.segs[len(s.segs)-1] + 1); err != nil {
			return err
		}
	}
	if n, err := s.active.Write(buf); err != nil {
		if n > 0 {
			s.active.Truncate(s.size) // no torn line before the next batch
		}
		return fmt.Errorf("usage spool: %w", err)
	}
	if err := s.active.Sync(); err != nil {
		return fmt.Errorf("usage spool: fsync: %w", err)
	}
	s.size += int64(len(buf))
	s.pending += int64(len(recs))
	return nil
}

// Peek returns up to n of the oldest records not yet replayed, in the order
// they were written; Remove forgets them once they are stored.
func (s *Spool) Peek(n int) ([]grokgate.Record, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.peek = peekState{}
	for len(s.segs) > 0 {
		seg := s.segs[0]
		recs, end, err := s.read(seg, n)
		if err != nil {
			return nil, err
		}
		if len(recs) > 0 {
			s.peek = peekState{seg: seg, end: end, n: len(recs)}
			return recs, nil
		}
		if len(s.segs) == 1 {
			// Only lines that do not decode were left: nothing waits.
			s.head, s.pending = end, 0
			return nil, nil
		}
		s.dropHead()
	}
	return nil, nil
}

// read reads up to n records of file seg from the read position.
func (s *Spool) read(seg uint64, n int) ([]grokgate.Record, int64, error) {
	f, err := os.Open(s.segPath(seg))
	if err != nil {
		return nil, 0, fmt.Errorf("usage spool: %w", err)
	}
	defer f.Close()
	if _, err := f.Seek(s.head, io.SeekStart); err != nil {
		return nil, 0, fmt.Errorf("usage spool: %w", err)
	}
	lr := newLineReader(f, s.head)
	var recs []grokgate.Record
	for len(recs) < n {
		p, err := lr.next()
		if err == io.EOF {
			break
		}
		if errors.Is(err, errBadLine) {
			continue // counted and logged when the spool was opened
		}
		if err != nil {
			return nil, 0, fmt.Errorf("usage spool: %w", err)
		}
		var rec grokgate.Record
		if err := json.Unmarshal(p, &rec); err != nil {
			s.log.Error("usage spool: skipping a record that does not decode", "file", s.segPath(seg), "err", err)
			continue
		}
		recs = append(recs, rec)
	}
	return recs, lr.off, nil
}

// dropHead removes the oldest file, wholly replayed.
func (s *Spool) dropHead() {
	os.Remove(s.segPath(s.segs[0]))
	s.segs, s.head = s.segs[1:], 0
}

// Remove forgets the records the last Peek returned: they are stored.
func (s *Spool) Remove() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.peek
	s.peek = peekState{}
	if p.n == 0 || len(s.segs) == 0 || s.segs[0] != p.seg {
		return nil
	}
	s.head = p.end
	s.pending -= int64(p.n)
	if s.pending <= 0 {
		// Everything is replayed: start again from empty files.
		s.pending = 0
		for len(s.segs) > 1 {
			s.dropHead()
		}
		if err := s.active.Truncate(0); err != nil {
			return fmt.Errorf("usage spool: %w", err)
		}
		s.size, s.head = 0, 0
		s.resets++
	}
	return os.WriteFile(filepath.Join(s.dir, replayedName), fmt.Appendf(nil, "%d %d\n", s.segs[0], s.head), 0o600)
}

// deadLetter is one line of the dead-letter file.
type deadLetter struct {
	Time   time.Time       `json:"time"`
	Reason string          `json:"reason"`
	Record grokgate.Record `json:"record"`
}

// DeadLetter keeps rec, which the store refused as invalid, in the
// dead-letter file with the store's reason, and returns once it is on disk.
func (s *Spool) DeadLetter(rec grokgate.Record, reason string) error {
	p, err := json.Marshal(deadLetter{Time: s.opts.Now().UTC(), Reason: reason, Record: rec})
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dead == nil {
		return errors.New("usage spool is closed")
	}
	if _, err := s.dead.Write(appendLine(nil, p)); err != nil {
		return fmt.Errorf("usage dead letters: %w", err)
	}
	if err := s.dead.Sync(); err != nil {
		return fmt.Errorf("usage dead letters: fsync: %w", err)
	}
	s.deadN++
	return nil
}

// Spent returns what key spent (cost_in_usd_ticks) from dayStart and from
// monthStart (dayStart within the month) in the records not yet replayed:
// what the store's own figures lack while it is down or catching up, when
// a budget whose limiter state was lost is rebuilt from them. The files
// are read without holding the spool, which records go on being appended
// to; a batch replayed meanwhile may be counted both here and in the
// store, which errs towards refusing a request, never towards overspending.
// Should the replay catch up meanwhile and the files begin again, they are
// read again (a few times: a spool that empties that often holds little).
func (s *Spool) Spent(keyID string, dayStart, monthStart time.Time) (day, month int64, err error) {
	for attempt := 1; ; attempt++ {
		s.mu.Lock()
		segs, head, resets := slices.Clone(s.segs), s.head, s.resets
		s.mu.Unlock()
		day, month, err = s.spentIn(segs, head, keyID, dayStart, monthStart)
		s.mu.Lock()
		again := s.resets != resets
		s.mu.Unlock()
		if err != nil || !again || attempt == 3 {
			return day, month, err
		}
	}
}

// spentIn is Spent over files segs, the first read from head.
func (s *Spool) spentIn(segs []uint64, head int64, keyID string, dayStart, monthStart time.Time) (day, month int64, err error) {
	// Only lines naming the key, as appendRecord writes it, are decoded.
	needle := appendStringField(nil, "KeyID", keyID)
	var rec struct {
		Time      time.Time
		KeyID     string
		CostTicks int64
	}
	for i, seg := range segs {
		from := int64(0)
		if i == 0 {
			from = head
		}
		_, err := eachLine(s.segPath(seg), from, func(p []byte) {
			if !bytes.Contains(p, needle) {
				return
			}
			rec.Time, rec.KeyID, rec.CostTicks = time.Time{}, "", 0
			if json.Unmarshal(p, &rec) != nil || rec.KeyID != keyID || rec.Time.Before(monthStart) {
				return
			}
			month += rec.CostTicks
			if !rec.Time.Before(dayStart) {
				day += rec.CostTicks
			}
		})
		if err != nil {
			return 0, 0, fmt.Errorf("usage spool: %w", err)
		}
	}
	return day, month, nil
}

// Pending is the number of records waiting to be replayed.
func (s *Spool) Pending() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pending
}

// DeadLetters is the number of records in the dead-letter file.
func (s *Spool) DeadLetters() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.deadN
}

// Dir is the spool's directory.
func (s *Spool) Dir() string { return s.dir }

// Close closes the spool's files and releases the directory. Records not
// yet replayed stay for the next process.
func (s *Spool) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	if s.active != nil {
		errs = append(errs, s.active.Close())
		s.active = nil
	}
	if s.dead != nil {
		errs = append(errs, s.dead.Close())
		s.dead = nil
	}
	if s.lock != nil {
		errs = append(errs, s.lock.Close())
		s.lock = nil
	}
	return errors.Join(errs...)
}

// Count reads, without taking the directory, how many records wait in the
// spool in dir and how many are in its dead-letter file (the CLI's view
// while a server owns the spool).
func Count(dir string) (pending, dead int64, err error) {
	segs, err := listSegments(dir)
	if err != nil {
		return 0, 0, err
	}
	headSeg, headOff := readReplayed(dir)
	for _, seg := range segs {
		from := int64(0)
		switch {
		case seg < headSeg:
			continue
		case seg == headSeg:
			from = headOff
		}
		n, _, err := countRecords(filepath.Join(dir, fmt.Sprintf("%s%016d%s", segPrefix, seg, segSuffix)), from)
		if err != nil {
			return 0, 0, err
		}
		pending += n
	}
	dead, _, err = countRecords(filepath.Join(dir, deadName), 0)
	return pending, dead, err
}
