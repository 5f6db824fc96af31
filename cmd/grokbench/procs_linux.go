package main

import "syscall"

// childAttr makes children die with the bench, even if it is killed.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
