package main

import (
	"io"
	"sync"
	"time"
)

// logWriter batches log lines into fewer writes: one access-log line per
// request written straight to stderr is one syscall per request, a cost
// that grows with the load it logs. A line waits at most interval
// (or until maxBuffered bytes are pending); Close writes what is left, so a
// clean stop loses nothing. As with nginx's and Envoy's buffered access logs,
// a crash can lose the last interval's lines; the usage ledger does not
// depend on them.
//
// The zero interval writes every line at once.
type logWriter struct {
	w        io.Writer
	interval time.Duration

	mu     sync.Mutex
	buf    []byte
	timer  *time.Timer // armed while buf holds lines; nil before the first
	closed bool
}

// maxBuffered bounds the pending lines: past it a write flushes at once.
const maxBuffered = 32 << 10

func newLogWriter(w io.Writer, interval time.Duration) *logWriter {
	return &logWriter{w: w, interval: interval}
}

// Write takes one line (slog writes each record in one call).
func (l *logWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.interval <= 0 || l.closed {
		return l.w.Write(p)
	}
	wasEmpty := len(l.buf) == 0
	l.buf = append(l.buf, p...)
	if len(l.buf) >= maxBuffered {
		return len(p), l.flushLocked()
	}
	if wasEmpty {
		if l.timer == nil {
			l.timer = time.AfterFunc(l.interval, l.flush)
		} else {
			l.timer.Reset(l.interval)
		}
	}
	return len(p), nil
}

func (l *logWriter) flush() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.flushLocked()
}

// flushLocked writes the pending lines; mu is held, so lines keep their order.
func (l *logWriter) flushLocked() error {
	if len(l.buf) == 0 {
		return nil
	}
	_, err := l.w.Write(l.buf)
	if cap(l.buf) > 2*maxBuffered {
		l.buf = nil // one huge line should not pin its buffer
	} else {
		l.buf = l.buf[:0]
	}
	return err
}

// Close writes the pending lines; later writes go straight through.
func (l *logWriter) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed = true
	if l.timer != nil {
		l.timer.Stop()
	}
	return l.flushLocked()
}
