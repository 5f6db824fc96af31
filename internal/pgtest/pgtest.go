// Package pgtest gives tests their own PostgreSQL schema on the database
// named by GROKGATE_TEST_POSTGRES, so tests (and packages) can run in
// parallel against one server without seeing each other's tables.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// DefaultDSN is used when GROKGATE_TEST_POSTGRES is unset.
const DefaultDSN = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

// Schema creates a fresh schema, drops it when the test ends, and returns a
// connection string whose search_path puts grokgate's tables there. When the
// server cannot be reached the test is skipped, or fails if
// GROKGATE_REQUIRE_SERVICES=1 (CI sets it so a missing database is noticed).
func Schema(t testing.TB) string {
	t.Helper()
	base := os.Getenv("GROKGATE_TEST_POSTGRES")
	if base == "" {
		base = DefaultDSN
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		msg := "PostgreSQL at " + redact(base) + " is not reachable (" + errText(err, base) +
			"); set GROKGATE_TEST_POSTGRES to a reachable database"
		if os.Getenv("GROKGATE_REQUIRE_SERVICES") == "1" {
			t.Fatal(msg + " (GROKGATE_REQUIRE_SERVICES=1 makes this a failure)")
		}
		t.Skip(msg + " (skipping; GROKGATE_REQUIRE_SERVICES=1 makes this a failure)")
	}
	defer conn.Close(context.Background())
	var b [6]byte
	rand.Read(b[:])
	schema := "grokgate_test_" + hex.EncodeToString(b[:])
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatalf("create schema: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, base)
		if err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
			return
		}
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
	})
	return WithSearchPath(base, schema)
}

// WithSearchPath returns dsn with its search_path set to schema; pgx passes
// the parameter to the server at connect, for every pooled connection.
func WithSearchPath(dsn, schema string) string {
	if u, err := url.Parse(dsn); err == nil && (u.Scheme == "postgres" || u.Scheme == "postgresql") {
		q := u.Query()
		q.Set("search_path", schema)
		u.RawQuery = q.Encode()
		return u.String()
	}
	return dsn + " search_path=" + schema
}

// redact hides a password in a URL-form DSN.
func redact(dsn string) string {
	if u, err := url.Parse(dsn); err == nil && u.User != nil {
		if _, ok := u.User.Password(); ok {
			u.User = url.UserPassword(u.User.Username(), "xxxxx")
		}
		return u.String()
	}
	return dsn
}

func errText(err error, dsn string) string {
	msg := err.Error()
	if u, e := url.Parse(dsn); e == nil && u.User != nil {
		if p, ok := u.User.Password(); ok && p != "" {
			msg = strings.ReplaceAll(msg, p, "xxxxx")
		}
	}
	return msg
}

// Exec runs sql on the database dsn names (its search_path included), for
// tests that set up data the store's API has no quick way to write, such
// as 100,000 keys in one statement.
func Exec(t testing.TB, dsn, sql string, args ...any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("pgtest: connect: %v", errText(err, dsn))
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, sql, args...); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
}

// BulkKeysSQL inserts $1 user keys with ids key_bulk00000001 onwards, made
// up hashes and no secrets, into a migrated grokgate schema: the key
// tables of large deployments, for tests and benchmarks of following them.
const BulkKeysSQL = `INSERT INTO keys (id, name, prefix, hash, role, created_at)
	SELECT 'key_bulk' || lpad(i::text, 8, '0'), 'bulk ' || i, 'gg-bulk', sha256(('bulk' || i)::bytea), 'user', now()
	FROM generate_series(1, $1::int) AS i`
