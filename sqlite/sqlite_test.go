package sqlite_test

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/grokgate/grokgate/sqlite"
	"github.com/grokgate/grokgate/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.Store {
		s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "grokgate.db"))
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
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
