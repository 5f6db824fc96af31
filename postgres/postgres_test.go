package postgres_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/grokgate/grokgate/internal/pgtest"
	"github.com/grokgate/grokgate/postgres"
	"github.com/grokgate/grokgate/storetest"
)

func open(t *testing.T, dsn string) *postgres.DB {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := postgres.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.Store {
		dsn := pgtest.Schema(t)
		return poisonable{open(t, dsn), dsn}
	})
}

// poisonable lets the suite make a usage insert fail: a trigger, added from
// another connection, rejects one request id.
type poisonable struct {
	*postgres.DB
	dsn string
}

func (p poisonable) PoisonUsage(ctx context.Context, requestID string) error {
	conn, err := pgx.Connect(ctx, p.dsn)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, `CREATE FUNCTION poison_usage() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			IF NEW.request_id = `+quote(requestID)+` THEN
				RAISE EXCEPTION 'poisoned request id';
			END IF;
			RETURN NEW;
		END $$;
		CREATE TRIGGER poison BEFORE INSERT ON usage_records FOR EACH ROW EXECUTE FUNCTION poison_usage();`)
	return err
}

func quote(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// TestConcurrentOpen: replicas starting at once on an empty schema must not
// trip over each other's migrations (the advisory lock serialises them).
func TestConcurrentOpen(t *testing.T) {
	dsn := pgtest.Schema(t)
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := postgres.Open(context.Background(), dsn)
			if err == nil {
				_, err = s.KeysGeneration(context.Background())
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

func TestBadDSNHidesPassword(t *testing.T) {
	_, err := postgres.Open(context.Background(), "postgres://u:s3cret@127.0.0.1:1/x?sslmode=bogus")
	if err == nil {
		t.Fatal("a bad connection string was accepted")
	}
	if got := err.Error(); strings.Contains(got, "s3cret") {
		t.Errorf("error shows the password: %s", got)
	}
}
