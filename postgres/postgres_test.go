package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/grokgate/grokgate"
	"github.com/grokgate/grokgate/internal/pgtest"
	"github.com/grokgate/grokgate/keys"
	"github.com/grokgate/grokgate/postgres"
	"github.com/grokgate/grokgate/storetest"
)

func open(t testing.TB, dsn string) *postgres.DB {
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

// TestMigratesForward: a database written before server-side tools and
// response owners existed opens with its keys and records intact; its keys
// allow every tool and its records made no tool calls.
func TestMigratesForward(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.Schema(t)
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `CREATE TABLE schema_migrations (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
		t.Fatal(err)
	}
	for v, name := range []string{"0001_init.sql", "0002_limits.sql"} {
		body, err := os.ReadFile(filepath.Join("migrations", name))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := conn.Exec(ctx, string(body)); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if _, err := conn.Exec(ctx, `INSERT INTO schema_migrations (version) VALUES ($1)`, v+1); err != nil {
			t.Fatal(err)
		}
	}
	created := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	if _, err := conn.Exec(ctx, `INSERT INTO keys (id, name, prefix, hash, role, created_at, allowed_models, rpm)
		VALUES ('key_old', 'old', 'gg-old', $1, 'user', $2, '{grok-3}', 60)`, make([]byte, 32), created); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `INSERT INTO usage_records VALUES
		('req_old', $1, 'key_old', '/chat/completions', 'grok-3', 'grok-3', false, false, 200, 'completed', 10, 2, 1, 3, 500, false, 900, 0, 'up')`,
		created); err != nil {
		t.Fatal(err)
	}

	s := open(t, dsn)
	defer s.Close()
	storetest.CheckMigrated(t, s, created)
}

// TestPoisonedRecordIsolated: PostgreSQL refuses a NUL byte in text; the
// batch holding such a record stores every other record and names the one
// it refused, with PostgreSQL's reason.
func TestPoisonedRecordIsolated(t *testing.T) {
	s := open(t, pgtest.Schema(t))
	defer s.Close()
	ctx := context.Background()
	at := time.Date(2026, 11, 3, 22, 30, 0, 0, time.UTC)
	var batch []grokgate.Record
	for i := range 256 {
		batch = append(batch, grokgate.Record{Time: at.Add(time.Duration(i) * time.Millisecond), RequestID: fmt.Sprintf("req_%03d", i),
			KeyID: "key_victim", Route: "/chat/completions", RequestedModel: "grok-4.3", Status: 200, Outcome: grokgate.OutcomeCompleted, Count: 1})
	}
	batch[100].KeyID, batch[100].RequestedModel = "key_attacker", "grok\x00"
	err := s.InsertUsage(ctx, batch)
	var rej *grokgate.RejectedRecordsError
	if !errors.As(err, &rej) || len(rej.Rejected) != 1 || rej.Rejected[0].Record.RequestID != "req_100" ||
		!strings.Contains(rej.Rejected[0].Reason, "0x00") {
		t.Fatalf("InsertUsage: %v", err)
	}
	got, err := s.UsageRecords(ctx, time.Time{}, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 255 {
		t.Fatalf("%d records stored, want the 255 good ones", len(got))
	}
	for _, r := range got {
		if r.KeyID != "key_victim" {
			t.Fatalf("stored %+v", r)
		}
	}
}

// TestCreateFirstKeyRace: trial after trial, of eight callers on a new,
// empty schema exactly one creates the first key.
func TestCreateFirstKeyRace(t *testing.T) {
	for trial := range 10 {
		s := open(t, pgtest.Schema(t))
		var wg sync.WaitGroup
		var mu sync.Mutex
		created := 0
		for i := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				k, _, err := keys.Mint(keys.Random(), fmt.Sprint("admin", i), grokgate.RoleAdmin, time.Now())
				if err != nil {
					t.Error(err)
					return
				}
				ok, err := s.CreateFirstKey(context.Background(), k)
				if err != nil {
					t.Error(err)
				}
				mu.Lock()
				defer mu.Unlock()
				if ok {
					created++
				}
			}()
		}
		wg.Wait()
		s.Close()
		if created != 1 {
			t.Fatalf("trial %d: %d callers created the first key; want 1", trial, created)
		}
	}
}
