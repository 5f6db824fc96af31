package sqlite_test

import (
	"context"
	"database/sql"
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
