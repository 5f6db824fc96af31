//go:build !linux

package main

import (
	"errors"
	"syscall"
)

// childAttr: only Linux can tie a child's life to its parent's, and
// grokbench refuses to run elsewhere anyway (it reads /proc).
func childAttr() *syscall.SysProcAttr { return nil }

// selfCPU and raiseNoFile exist so the module builds everywhere.
func selfCPU() float64 { return 0 }

func raiseNoFile(uint64) (uint64, error) {
	return 0, errors.New("raising the open-files limit is done on Linux only")
}
