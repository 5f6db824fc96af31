package main

import (
	"strings"
	"testing"
	"time"

	"github.com/grokgate/grokgate/internal/logtest"
)

func TestLogWriterBatchesLinesAndFlushesWithinTheInterval(t *testing.T) {
	var out logtest.Buffer
	lw := newLogWriter(&out, 50*time.Millisecond)
	defer lw.Close()
	for i := 0; i < 100; i++ {
		lw.Write([]byte("line\n"))
	}
	if out.Writes() != 0 {
		t.Fatalf("%d writes before the interval passed, want the lines held", out.Writes())
	}
	eventually(t, 2*time.Second, "the held lines written", func() bool { return strings.Count(out.String(), "line\n") == 100 })
	if out.Writes() != 1 {
		t.Errorf("100 lines took %d writes, want 1", out.Writes())
	}
	// A later line arms the timer again.
	lw.Write([]byte("again\n"))
	eventually(t, 2*time.Second, "a line after the first flush written", func() bool { return strings.Contains(out.String(), "again\n") })
}

func TestLogWriterFlushesWhenFull(t *testing.T) {
	var out logtest.Buffer
	lw := newLogWriter(&out, time.Hour)
	defer lw.Close()
	line := []byte(strings.Repeat("x", 1023) + "\n")
	for i := 0; i < maxBuffered/len(line); i++ {
		lw.Write(line)
	}
	if got := len(out.String()); got != maxBuffered {
		t.Fatalf("%d bytes written after %d bytes of lines, want all at the bound", got, maxBuffered)
	}
}

func TestLogWriterCloseWritesEverythingAndLaterLinesPassThrough(t *testing.T) {
	var out logtest.Buffer
	lw := newLogWriter(&out, time.Hour)
	lw.Write([]byte("a\n"))
	lw.Write([]byte("b\n"))
	if err := lw.Close(); err != nil {
		t.Fatal(err)
	}
	if out.String() != "a\nb\n" {
		t.Fatalf("after Close: %q, want both lines in order", out.String())
	}
	lw.Write([]byte("c\n"))
	if out.String() != "a\nb\nc\n" {
		t.Errorf("a line after Close: %q, want it written at once", out.String())
	}
}

func TestLogWriterZeroIntervalWritesEachLine(t *testing.T) {
	var out logtest.Buffer
	lw := newLogWriter(&out, 0)
	lw.Write([]byte("a\n"))
	if out.String() != "a\n" {
		t.Errorf("interval 0: %q not written at once", out.String())
	}
}
