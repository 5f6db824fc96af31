// Package logtest holds what tests use to read back a log, or any output,
// written from many goroutines.
package logtest

import (
	"bytes"
	"sync"
)

// Buffer keeps what is written to it. Its methods are safe to call from
// any goroutine; the zero value is ready to use.
type Buffer struct {
	mu     sync.Mutex
	b      bytes.Buffer
	writes int
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.writes++
	return b.b.Write(p)
}

// String returns all that was written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// Writes counts the calls to Write: how a writer batched its output.
func (b *Buffer) Writes() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.writes
}
