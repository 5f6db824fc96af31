package sqlite

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/grokgate/grokgate"
)

// TestFilesPrivate: the database, its WAL and its shared-memory file are
// created readable by their owner alone, whatever the umask: they hold key
// hashes and every caller's usage.
func TestFilesPrivate(t *testing.T) {
	old := syscall.Umask(0o022)
	defer syscall.Umask(old)
	path := filepath.Join(t.TempDir(), "gw.db")
	db, err := Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	// A write makes sure the WAL exists.
	if err := db.CreateKey(context.Background(), grokgate.Key{ID: "key_x", Name: "x", Prefix: "gg-x", Role: grokgate.RoleUser, CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{path, path + "-wal", path + "-shm"} {
		fi, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		if m := fi.Mode().Perm(); m != 0o600 {
			t.Errorf("%s has mode %o, want 600", filepath.Base(f), m)
		}
	}
}
