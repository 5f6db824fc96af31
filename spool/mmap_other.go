//go:build !linux

package spool

import (
	"errors"
	"os"
)

// canMap is false: the journal is written with write(2) (see
// mmap_linux.go for why only Linux maps it).
const canMap = false

// mapFile is not called where canMap is false.
func mapFile(*os.File, int) ([]byte, error) { return nil, errors.ErrUnsupported }

func unmapFile([]byte) error { return nil }
