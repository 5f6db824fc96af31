package sqlite_test

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/grokgate/grokgate/sqlite"
	"github.com/grokgate/grokgate/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.Store {
		path := filepath.Join(t.TempDir(), "grokgate.db")
		s, err := sqlite.Open(context.Background(), path)
		if err != nil {
			t.Fatal(err)
		}
		return poisonable{s, path}
	})
}

// poisonable lets the suite make a usage insert fail: a trigger, added from
// another connection as a migration by a newer binary would be, aborts the
// insert of one request id.
type poisonable struct {
	*sqlite.DB
	path string
}

func (p poisonable) PoisonUsage(ctx context.Context, requestID string) error {
	db, err := sql.Open("sqlite", "file:"+p.path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		return err
	}
	defer db.Close()
	_, err = db.ExecContext(ctx, `CREATE TRIGGER poison BEFORE INSERT ON usage_records
		WHEN NEW.request_id = '`+strings.ReplaceAll(requestID, "'", "''")+`'
		BEGIN SELECT RAISE(ABORT, 'poisoned request id'); END`)
	return err
}

// TestConcurrentOpen: a server and the CLI may start on a fresh file at once;
// both must end up with the same, fully migrated schema.
func TestConcurrentOpen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "grokgate.db")
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := sqlite.Open(context.Background(), path)
			if err == nil {
				_, err = s.UsageRecords(context.Background(), time.Time{}, time.Time{})
				s.Close()
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("opener %d: %v", i, err)
		}
	}
}

// TestMigratesForward: a database written before server-side tools and
// response owners existed opens with its keys and records intact; its keys
// allow every tool and its records made no tool calls.
func TestMigratesForward(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "old.db")
	old, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := old.ExecContext(ctx, `CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	for v, name := range []string{"0001_keys.sql", "0002_usage.sql", "0003_limits.sql"} {
		body, err := os.ReadFile(filepath.Join("migrations", name))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := old.ExecContext(ctx, string(body)); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if _, err := old.ExecContext(ctx, `INSERT INTO schema_migrations VALUES (?, 0)`, v+1); err != nil {
			t.Fatal(err)
		}
	}
	created := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	if _, err := old.ExecContext(ctx, `INSERT INTO keys (id, name, prefix, hash, role, created_at, allowed_models, rpm)
		VALUES ('key_old', 'old', 'gg-old', x'`+strings.Repeat("ab", 32)+`', 'user', ?, '["grok-3"]', 60)`, created.UnixMicro()); err != nil {
		t.Fatal(err)
	}
	if _, err := old.ExecContext(ctx, `INSERT INTO usage_records VALUES
		('req_old', ?, 'key_old', '/chat/completions', 'grok-3', 'grok-3', 0, 0, 200, 'completed', 10, 2, 1, 3, 500, 0, 900, 0, 'up')`,
		created.UnixMicro()); err != nil {
		t.Fatal(err)
	}
	old.Close()

	s, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatalf("opening the old database: %v", err)
	}
	defer s.Close()
	storetest.CheckMigrated(t, s, created)
}
