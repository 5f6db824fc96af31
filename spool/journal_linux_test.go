package spool

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/grokgate/grokgate"
)

// TestJournalMappingFaultFallsBackToWrite: a store into the mapping that
// faults (SIGBUS: here past the end of a file something shrank; in
// earnest a full disk) does not end the process: the line, and those
// after it, are written with write(2), and the next start recovers them.
func TestJournalMappingFaultFallsBackToWrite(t *testing.T) {
	dir := t.TempDir()
	s, lb := openLogged(t, dir)
	j, _, err := openJournal(s, JournalOptions{Interval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if !j.out.mapped() {
		t.Fatal("the journal is not mapped")
	}
	rs := recs(0, 3)
	j.Begin(rs[0], new(grokgate.Progress))
	if err := os.Truncate(filepath.Join(dir, journalName), 0); err != nil {
		t.Fatal(err)
	}
	j.Begin(rs[1], new(grokgate.Progress)) // faults
	j.Final(rs[2])
	if j.out.mapped() || !strings.Contains(lb.String(), "faulted") {
		t.Fatalf("mapped %v after the fault; log: %s", j.out.mapped(), lb.String())
	}
	kill(j)
	s.Close()
	s = open(t, dir, Options{})
	_, n, err := openJournal(s, JournalOptions{})
	got, _ := s.Peek(10)
	// The first line went with the truncation: zeros stand in its place.
	if err != nil || n != 2 || got[0].RequestID != rs[1].RequestID || got[1].RequestID != rs[2].RequestID {
		t.Fatalf("recovered %d %v: %+v", n, err, got)
	}
}
