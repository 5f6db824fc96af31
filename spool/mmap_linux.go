//go:build linux

package spool

import (
	"os"
	"syscall"
)

// canMap says the journal is written through a shared mapping (mapFile).
const canMap = true

// mapFile maps the first size bytes of f shared and writable: stores into
// it go to f's pages in the page cache, as write(2) would.
//
// Only Linux: its fsync writes back the pages dirtied through a shared
// mapping (msync is not needed there); elsewhere that takes msync, which
// the syscall package does not offer, so those systems write(2) instead.
func mapFile(f *os.File, size int) ([]byte, error) {
	return syscall.Mmap(int(f.Fd()), 0, size, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED)
}

func unmapFile(m []byte) error { return syscall.Munmap(m) }
