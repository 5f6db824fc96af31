//go:build unix

package sqlite_test

import (
	"syscall"
	"time"
)

// processCPU is the CPU time (user and system, every thread) the test
// process has used, so a benchmark can report CPU apart from waiting.
func processCPU() (time.Duration, bool) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, false
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), true
}
