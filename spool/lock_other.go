//go:build !unix

package spool

import "os"

// lockFile does nothing where flock is missing: one process per spool
// directory is then the operator's to ensure.
func lockFile(*os.File) error { return nil }
