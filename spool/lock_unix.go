//go:build unix

package spool

import (
	"errors"
	"os"
	"syscall"
)

// lockFile takes an exclusive lock on f for the life of the process (the
// kernel drops it when the process ends, however it ends).
func lockFile(f *os.File) error {
	err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	if errors.Is(err, syscall.EWOULDBLOCK) {
		return errLocked
	}
	return err
}
