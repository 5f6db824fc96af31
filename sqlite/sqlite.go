// Package sqlite is grokgate's default store: one SQLite file in WAL mode,
// through the pure-Go modernc.org/sqlite driver, so the binary needs no cgo.
// Several processes (a server and the keys CLI) may share the file.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/grokgate/grokgate"
	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

//go:embed migrations/*.sql
var migrations embed.FS

// DB is the SQLite store.
type DB struct {
	db *sql.DB
	// insertUsage[k] writes 1<<k usage records (prepareInsertUsage).
	insertUsage [usageChunkShift + 1]*sql.Stmt
}

// Open opens (creating if needed) the database file at path and applies any
// pending migrations.
func Open(ctx context.Context, path string) (*DB, error) {
	q := url.Values{}
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "synchronous(NORMAL)")
	q.Add("_pragma", "foreign_keys(1)")
	// A multi-row INSERT in a transaction keeps a statement journal, to
	// undo its own rows should it fail halfway; in a temporary file, its
	// writes were a third of the CPU a usage batch cost.
	q.Add("_pragma", "temp_store(MEMORY)")
	q.Set("_txlock", "immediate")
	if err := createPrivate(path); err != nil {
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	db, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	s := &DB{db: db}
	if err := s.migrate(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("sqlite %s: %w", path, err)
	}
	if err := s.prepareInsertUsage(ctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("sqlite %s: %w", path, err)
	}
	return s, nil
}

// createPrivate creates the database file, if it does not exist, readable
// by its owner alone: it holds key hashes and every caller's usage. SQLite
// gives the WAL and shared-memory files the database file's mode, so they
// are private too. An existing file keeps the mode its operator gave it.
func createPrivate(path string) error {
	if path == ":memory:" || strings.HasPrefix(path, "file:") {
		return nil
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return nil
	}
	if err != nil {
		return err
	}
	return f.Close()
}

// Close closes the database.
func (s *DB) Close() error {
	for _, stmt := range s.insertUsage {
		if stmt != nil {
			stmt.Close()
		}
	}
	return s.db.Close()
}

// Ping checks that the database answers.
func (s *DB) Ping(ctx context.Context) error { return s.db.PingContext(ctx) }

func (s *DB) migrate(ctx context.Context) error {
	// The first connection to a new file switches it to WAL, which SQLite
	// can refuse with SQLITE_BUSY at once, without its busy timeout, while
	// another process does the same; it is tried again for a while.
	err := s.createMigrationsTable(ctx)
	for try := 0; err != nil && strings.Contains(err.Error(), "SQLITE_BUSY") && try < 200; try++ {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
		err = s.createMigrationsTable(ctx)
	}
	if err != nil {
		return fmt.Errorf("create schema_migrations: %w", err)
	}
	names, err := fs.Glob(migrations, "migrations/*.sql")
	if err != nil {
		return err
	}
	sort.Strings(names)
	for _, name := range names {
		base := strings.TrimPrefix(name, "migrations/")
		v, err := strconv.Atoi(base[:strings.IndexByte(base, '_')])
		if err != nil {
			return fmt.Errorf("migration %s: bad version: %w", name, err)
		}
		body, err := migrations.ReadFile(name)
		if err != nil {
			return err
		}
		if err := s.apply(ctx, v, string(body)); err != nil {
			return fmt.Errorf("migration %s: %w", base, err)
		}
	}
	return nil
}

func (s *DB) createMigrationsTable(ctx context.Context) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)`); err != nil {
		return err
	}
	return tx.Commit()
}

// apply runs one migration in a transaction unless it is already recorded;
// the immediate transaction makes concurrent starters take turns.
func (s *DB) apply(ctx context.Context, version int, body string) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM schema_migrations WHERE version = ?`, version).Scan(&n); err != nil {
		return err
	}
	if n > 0 {
		return nil
	}
	if _, err := tx.ExecContext(ctx, body); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)`,
		version, time.Now().UnixMicro()); err != nil {
		return err
	}
	return tx.Commit()
}

// CreateKey stores a new key.
func (s *DB) CreateKey(ctx context.Context, k grokgate.Key) error {
	return s.inTx(ctx, func(tx *sql.Tx, seq int64) error {
		return insertKey(ctx, tx, k, seq)
	})
}

// CreateFirstKey stores k if the store holds no key at all, and reports
// whether it did: of servers starting together on a new file, exactly one
// creates (and prints) the first admin key. Every transaction here begins
// IMMEDIATE (Open's _txlock), taking the write lock before the check.
func (s *DB) CreateFirstKey(ctx context.Context, k grokgate.Key) (bool, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return false, err
	}
	defer tx.Rollback()
	var exists bool
	if err := tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM keys)`).Scan(&exists); err != nil || exists {
		return false, err
	}
	seq, err := nextKeySeq(ctx, tx)
	if err != nil {
		return false, err
	}
	if err := insertKey(ctx, tx, k, seq); err != nil {
		return false, err
	}
	return true, tx.Commit()
}

func insertKey(ctx context.Context, tx *sql.Tx, k grokgate.Key, seq int64) error {
	models, err := modelsJSON(k.AllowedModels)
	if err != nil {
		return err
	}
	tools, err := modelsJSON(k.AllowedTools)
	if err != nil {
		return err
	}
	l := k.Limits
	_, err = tx.ExecContext(ctx, `INSERT INTO keys (`+keyColumns+`, seq)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		k.ID, k.Name, k.Prefix, k.Hash[:], string(k.Role), k.CreatedAt.UnixMicro(), nullTime(k.RevokedAt),
		models, nullTime(k.ExpiresAt), l.RPM, l.TPM, l.MaxStreams, l.BudgetTicksPerDay, l.BudgetTicksPerMonth, tools, seq)
	return err
}

// RevokeKey marks key id revoked at time at. Revoking a revoked key keeps the
// first revocation time.
func (s *DB) RevokeKey(ctx context.Context, id string, at time.Time) error {
	return s.inTx(ctx, func(tx *sql.Tx, seq int64) error {
		res, err := tx.ExecContext(ctx, `UPDATE keys SET revoked_at = COALESCE(revoked_at, ?), seq = ? WHERE id = ?`, at.UnixMicro(), seq, id)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return grokgate.ErrNotFound
		}
		return nil
	})
}

// inTx runs fn with the number of this key change: the keys generation,
// bumped in the same transaction. Writers take turns (IMMEDIATE
// transactions), so changes commit in the order of their numbers and a
// reader of the keys changed after a number (KeysChangedSince) misses none.
func (s *DB) inTx(ctx context.Context, fn func(tx *sql.Tx, seq int64) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	seq, err := nextKeySeq(ctx, tx)
	if err != nil {
		return err
	}
	if err := fn(tx, seq); err != nil {
		return err
	}
	return tx.Commit()
}

func nextKeySeq(ctx context.Context, tx *sql.Tx) (int64, error) {
	var seq int64
	err := tx.QueryRowContext(ctx, `UPDATE meta SET value = value + 1 WHERE name = 'keys_generation' RETURNING value`).Scan(&seq)
	return seq, err
}

// KeysGeneration returns a counter bumped by every key mutation.
func (s *DB) KeysGeneration(ctx context.Context) (int64, error) {
	var g int64
	err := s.db.QueryRowContext(ctx, `SELECT value FROM meta WHERE name = 'keys_generation'`).Scan(&g)
	return g, err
}

const keyColumns = `id, name, prefix, hash, role, created_at, revoked_at, allowed_models, expires_at,
	rpm, tpm, max_streams, budget_ticks_per_day, budget_ticks_per_month, allowed_tools`

// ListKeys returns all keys, oldest first.
func (s *DB) ListKeys(ctx context.Context) ([]grokgate.Key, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+keyColumns+` FROM keys ORDER BY created_at, id`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []grokgate.Key
	for rows.Next() {
		k, err := scanKey(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, k)
	}
	return out, rows.Err()
}

// KeysChangedSince returns the keys created, changed or revoked after the
// change numbered after (every key when after is negative), in the order of
// their changes, and the number of the last change it returned (after, or 0,
// when none).
func (s *DB) KeysChangedSince(ctx context.Context, after int64) ([]grokgate.Key, int64, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+keyColumns+`, seq FROM keys WHERE seq > ? ORDER BY seq`, after)
	if err != nil {
		return nil, after, err
	}
	defer rows.Close()
	last := max(after, 0)
	var out []grokgate.Key
	for rows.Next() {
		var seq int64
		k, err := scanKey(rows, &seq)
		if err != nil {
			return nil, after, err
		}
		out = append(out, k)
		last = max(last, seq)
	}
	if err := rows.Err(); err != nil {
		return nil, after, err
	}
	return out, last, nil
}

// KeyByHash returns the key whose secret hashes to h.
func (s *DB) KeyByHash(ctx context.Context, h [32]byte) (grokgate.Key, error) {
	k, err := scanKey(s.db.QueryRowContext(ctx, `SELECT `+keyColumns+` FROM keys WHERE hash = ?`, h[:]))
	if errors.Is(err, sql.ErrNoRows) {
		return k, grokgate.ErrNotFound
	}
	return k, err
}

type scanner interface{ Scan(...any) error }

// scanKey reads keyColumns, then into extra any columns that follow them.
func scanKey(row scanner, extra ...any) (grokgate.Key, error) {
	var (
		k       grokgate.Key
		hash    []byte
		role    string
		created int64
		revoked sql.NullInt64
		models  string
		tools   string
		expires sql.NullInt64
	)
	l := &k.Limits
	if err := row.Scan(append([]any{&k.ID, &k.Name, &k.Prefix, &hash, &role, &created, &revoked, &models, &expires,
		&l.RPM, &l.TPM, &l.MaxStreams, &l.BudgetTicksPerDay, &l.BudgetTicksPerMonth, &tools}, extra...)...); err != nil {
		return k, err
	}
	if err := json.Unmarshal([]byte(models), &k.AllowedModels); err != nil {
		return k, fmt.Errorf("key %s: allowed_models: %w", k.ID, err)
	}
	if len(k.AllowedModels) == 0 {
		k.AllowedModels = nil
	}
	if err := json.Unmarshal([]byte(tools), &k.AllowedTools); err != nil {
		return k, fmt.Errorf("key %s: allowed_tools: %w", k.ID, err)
	}
	if len(k.AllowedTools) == 0 {
		k.AllowedTools = nil
	}
	if expires.Valid {
		k.ExpiresAt = time.UnixMicro(expires.Int64).UTC()
	}
	if len(hash) != len(k.Hash) {
		return k, fmt.Errorf("key %s: stored hash has %d bytes", k.ID, len(hash))
	}
	copy(k.Hash[:], hash)
	k.Role = grokgate.Role(role)
	k.CreatedAt = time.UnixMicro(created).UTC()
	if revoked.Valid {
		k.RevokedAt = time.UnixMicro(revoked.Int64).UTC()
	}
	return k, nil
}

func nullTime(t time.Time) sql.NullInt64 {
	if t.IsZero() {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: t.UnixMicro(), Valid: true}
}
