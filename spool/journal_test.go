package spool

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/grokgate/grokgate"
	"github.com/grokgate/grokgate/internal/logtest"
)

func openLogged(t *testing.T, dir string) (*Spool, *logtest.Buffer) {
	t.Helper()
	lb := &logtest.Buffer{}
	s, err := Open(dir, slog.New(slog.NewTextHandler(lb, nil)), Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, lb
}

// readAll reads every line of b with a lineReader: the good lines' JSON
// and the number of damaged ones.
func readAll(t *testing.T, b []byte) (lines []string, bad int) {
	t.Helper()
	lr := newLineReader(bytes.NewReader(b), 0)
	for {
		p, err := lr.next()
		switch {
		case err == io.EOF:
			if lr.off != int64(len(b)) {
				t.Fatalf("consumed %d of %d bytes", lr.off, len(b))
			}
			return lines, bad
		case errors.Is(err, errBadLine):
			bad++
		case err != nil:
			t.Fatal(err)
		default:
			lines = append(lines, string(p))
		}
	}
}

// TestLineReaderZeroTail: NULs after the last line end the file (the
// unused tail of a mapped journal), not damage; a line NULs cut short is
// damaged, and so is a run of NULs with lines after it (pages a crash
// lost), whose following lines are still read.
func TestLineReaderZeroTail(t *testing.T) {
	a := appendLine(nil, []byte(`{"a":1}`))
	b := appendLine(nil, []byte(`{"b":2}`))
	zeros := make([]byte, 200<<10) // longer than the reader's buffer
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	for _, c := range []struct {
		name  string
		file  []byte
		lines []string
		bad   int
	}{
		{"lines then zeros", cat(a, b, zeros), []string{`{"a":1}`, `{"b":2}`}, 0},
		{"zeros only", zeros, nil, 0},
		{"torn line then zeros", cat(a, b[:9], zeros), []string{`{"a":1}`}, 1},
		{"torn line at the end", cat(a, b[:len(b)-1]), []string{`{"a":1}`}, 1},
		{"zeros between lines", cat(a, zeros, b), []string{`{"a":1}`, `{"b":2}`}, 1},
		{"torn line, zeros, a line", cat(a[:5], zeros[:10], b, zeros[:3]), []string{`{"b":2}`}, 2},
	} {
		lines, bad := readAll(t, c.file)
		if strings.Join(lines, ",") != strings.Join(c.lines, ",") || bad != c.bad {
			t.Errorf("%s: lines %q, %d damaged; want %q, %d", c.name, lines, bad, c.lines, c.bad)
		}
	}
}

// TestJournalZeroTailIsNotDamage: a killed process leaves its mapped
// journal longer than its lines; the next start recovers every request
// without warning of damaged lines.
func TestJournalZeroTailIsNotDamage(t *testing.T) {
	dir := t.TempDir()
	s, _ := openLogged(t, dir)
	j, _, err := openJournal(s, JournalOptions{Interval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs(0, 3) {
		j.Begin(r, new(grokgate.Progress))
	}
	used := j.out.size
	kill(j)
	s.Close()
	st, err := os.Stat(filepath.Join(dir, journalName))
	if err != nil {
		t.Fatal(err)
	}
	if canMap && st.Size() <= used {
		t.Fatalf("journal file %d bytes for %d bytes of lines: no zero tail", st.Size(), used)
	}
	s, lb := openLogged(t, dir)
	_, n, err := openJournal(s, JournalOptions{})
	if err != nil || n != 3 {
		t.Fatalf("recovered %d, %v; want 3", n, err)
	}
	if strings.Contains(lb.String(), "damaged") {
		t.Fatalf("warned of damage: %s", lb.String())
	}
}

// TestJournalBurstOutgrowsMapping: lines written faster than the journal
// is rewritten outgrow the file's mapping, which grows; none is lost, and
// Close leaves the file holding exactly its lines.
func TestJournalBurstOutgrowsMapping(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, Options{})
	j, _, err := openJournal(s, JournalOptions{Interval: time.Hour, MaxBytes: 4 << 10})
	if err != nil {
		t.Fatal(err)
	}
	first := len(j.out.m)
	all := recs(0, 2000)
	for i, r := range all {
		j.Begin(r, new(grokgate.Progress))
		if i%3 == 0 {
			j.Final(r)
		}
		if i%6 == 0 {
			j.Durable([]grokgate.Record{r})
		}
	}
	if canMap && (!j.out.mapped() || len(j.out.m) < 100*first) {
		t.Fatalf("mapped %v, %d bytes (first %d) for %d bytes of lines", j.out.mapped(), len(j.out.m), first, j.out.size)
	}
	used := j.out.size
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(filepath.Join(dir, journalName))
	if st.Size() != used {
		t.Fatalf("closed journal %d bytes, its lines %d", st.Size(), used)
	}
	s.Close()
	s = open(t, dir, Options{})
	_, n, err := openJournal(s, JournalOptions{})
	if err != nil || n != 2000-334 {
		t.Fatalf("recovered %d, %v; want %d", n, err, 2000-334)
	}
	got, _ := s.Peek(2000)
	k := 0
	for i, r := range all {
		if i%6 == 0 {
			continue
		}
		if got[k].RequestID != r.RequestID || (i%3 == 0) != (got[k].Outcome == grokgate.OutcomeCompleted) {
			t.Fatalf("record %d: %+v, want %s", k, got[k], r.RequestID)
		}
		k++
	}
}

// journalChildEnv selects the helper process of
// TestJournalSurvivesSIGKILL: its value is the spool directory.
const journalChildEnv = "GROKGATE_SPOOL_TEST_JOURNAL_CHILD"

// TestJournalSurvivesSIGKILL: a real process that begins requests and is
// killed with SIGKILL, before any fsync, leaves them all to the next start,
// which recovers each as unfinished.
func TestJournalSurvivesSIGKILL(t *testing.T) {
	const n = 500 // past the first mapping of a 4 KiB journal
	if dir := os.Getenv(journalChildEnv); dir != "" {
		journalChild(dir, n)
		return
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestJournalSurvivesSIGKILL$", "-test.count=1")
	cmd.Env = append(os.Environ(), journalChildEnv+"="+dir)
	cmd.Stderr = os.Stderr
	stdin, _ := cmd.StdinPipe()
	defer stdin.Close()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if strings.TrimSpace(line) != "ready" {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("child said %q, %v", line, err)
	}
	if err := cmd.Process.Kill(); err != nil { // SIGKILL
		t.Fatal(err)
	}
	err = cmd.Wait()
	if ee, ok := errors.AsType[*exec.ExitError](err); !ok || ee.ExitCode() != -1 {
		t.Fatalf("child ended with %v, not by the signal", err)
	}
	s, lb := openLogged(t, dir)
	j, rec, err := s.OpenJournal(JournalOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	if rec.Len() != n {
		t.Fatalf("recovered %d of %d", rec.Len(), n)
	}
	kept, err := rec.Keep(interruptedRecord)
	if err != nil || kept != n {
		t.Fatalf("kept %d, %v", kept, err)
	}
	got, _ := s.Peek(n)
	for i, r := range got {
		if want := fmt.Sprintf("req_%05d", i); r.RequestID != want || r.Outcome != grokgate.OutcomeInterrupted {
			t.Fatalf("record %d: %+v, want %s interrupted", i, r, want)
		}
	}
	if strings.Contains(lb.String(), "damaged") {
		t.Fatalf("warned of damage: %s", lb.String())
	}
}

// journalChild begins n requests in a journal in dir, says "ready" and
// waits to be killed (or for its parent to go: stdin closes).
func journalChild(dir string, n int) {
	s, err := Open(dir, quiet, Options{})
	if err != nil {
		fmt.Println(err)
		os.Exit(2)
	}
	j, _, err := s.OpenJournal(JournalOptions{Interval: time.Hour, MaxBytes: 4 << 10})
	if err != nil {
		fmt.Println(err)
		os.Exit(2)
	}
	for _, r := range recs(0, n) {
		j.Begin(r, new(grokgate.Progress))
	}
	fmt.Println("ready")
	io.Copy(io.Discard, os.Stdin)
	os.Exit(3)
}
