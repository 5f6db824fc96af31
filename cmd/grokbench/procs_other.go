//go:build !linux

package main

import "syscall"

// childAttr: only Linux can tie a child's life to its parent's, and
// grokbench refuses to run elsewhere anyway (it reads /proc).
func childAttr() *syscall.SysProcAttr { return nil }
