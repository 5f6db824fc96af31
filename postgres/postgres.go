// Package postgres is grokgate's store for scaled-out deployments: several
// replicas share one PostgreSQL database through pgx's pool. It keeps the
// same semantics as package sqlite (the storetest suite checks both).
package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/grokgate/grokgate"
)

//go:embed migrations/*.sql
var migrations embed.FS

// migrateLock is the advisory lock key that makes replicas starting at once
// apply migrations one after the other ("grokgate" in ASCII).
const migrateLock int64 = 0x67726f6b67617465

// DB is the PostgreSQL store.
type DB struct {
	pool *pgxpool.Pool
}

// IsDSN reports whether s names a PostgreSQL database rather than a file.
func IsDSN(s string) bool {
	return strings.HasPrefix(s, "postgres://") || strings.HasPrefix(s, "postgresql://")
}

// ParseConfig checks a connection string without connecting.
func ParseConfig(dsn string) (*pgxpool.Config, error) { return pgxpool.ParseConfig(dsn) }

// Open connects to the database named by dsn and applies pending migrations.
// Tables live in the first schema of the connection's search_path (the dsn
// may set it, such as ?search_path=grokgate).
func Open(ctx context.Context, dsn string) (*DB, error) {
	return OpenWith(ctx, dsn, Options{})
}

// Options tunes OpenWith.
type Options struct {
	// Timeout bounds each connection's set-up (unless the dsn sets
	// connect_timeout) and the first round trip, so a database that
	// refuses or does not answer fails the open at once rather than
	// when ctx ends; migrations still run under ctx alone, since a large
	// table may take a while. 0 leaves both to ctx.
	Timeout time.Duration
}

// OpenWith is Open with options.
func OpenWith(ctx context.Context, dsn string, o Options) (*DB, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// pgx's message may quote the DSN, password included: keep it out.
		return nil, errors.New("postgres: the connection string is not valid")
	}
	if o.Timeout > 0 && cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = o.Timeout
	}
	return openConfig(ctx, cfg, o)
}

// OpenConfig is Open with a parsed configuration.
func OpenConfig(ctx context.Context, cfg *pgxpool.Config) (*DB, error) {
	return openConfig(ctx, cfg, Options{})
}

func openConfig(ctx context.Context, cfg *pgxpool.Config, o Options) (*DB, error) {
	where := fmt.Sprintf("postgres %s@%s/%s", cfg.ConnConfig.User, cfg.ConnConfig.Host, cfg.ConnConfig.Database)
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	s := &DB{pool: pool}
	if o.Timeout > 0 {
		pctx, cancel := context.WithTimeout(ctx, o.Timeout)
		err := pool.Ping(pctx)
		cancel()
		if err != nil {
			pool.Close()
			return nil, fmt.Errorf("%s did not answer within %s: %w", where, o.Timeout, err)
		}
	}
	if err := s.migrate(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	return s, nil
}

// Close closes the pool.
func (s *DB) Close() error {
	s.pool.Close()
	return nil
}

// Ping checks that the database answers.
func (s *DB) Ping(ctx context.Context) error { return s.pool.Ping(ctx) }

// migrate applies every embedded migration not yet recorded, holding a
// session advisory lock so concurrent starters take turns.
func (s *DB) migrate(ctx context.Context) error {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, migrateLock); err != nil {
		return fmt.Errorf("taking the migration lock: %w", err)
	}
	defer conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, migrateLock)
	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
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
		if err := apply(ctx, conn.Conn(), v, string(body)); err != nil {
			return fmt.Errorf("migration %s: %w", base, err)
		}
	}
	return nil
}

func apply(ctx context.Context, conn *pgx.Conn, version int, body string) error {
	return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		var done bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM schema_migrations WHERE version = $1)`, version).Scan(&done); err != nil || done {
			return err
		}
		if _, err := tx.Exec(ctx, body); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version) VALUES ($1)`, version)
		return err
	})
}

// ts is how times are written: UTC, whole microseconds, as PostgreSQL keeps them.
func ts(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

func nullTS(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	v := ts(t)
	return &v
}

// models renders an allow-list (models or tools) for a NOT NULL array
// column; empty allows everything.
func models(m []string) []string {
	if m == nil {
		return []string{}
	}
	return m
}

// inTx runs fn with the number of this key change: the keys generation,
// bumped first in the same transaction. The bump locks meta's row until the
// commit, so changes commit in the order of their numbers and a replica
// reading the keys changed after the last number it saw (KeysChangedSince)
// never misses one committed late with a lower number.
func (s *DB) inTx(ctx context.Context, fn func(tx pgx.Tx, seq int64) error) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var seq int64
		if err := tx.QueryRow(ctx, `UPDATE meta SET value = value + 1 WHERE name = 'keys_generation' RETURNING value`).Scan(&seq); err != nil {
			return err
		}
		return fn(tx, seq)
	})
}

// CreateKey stores a new key.
func (s *DB) CreateKey(ctx context.Context, k grokgate.Key) error {
	return s.inTx(ctx, func(tx pgx.Tx, seq int64) error {
		_, err := tx.Exec(ctx, `INSERT INTO keys (`+keyColumns+`, seq)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)`, keyArgs(k, seq)...)
		return err
	})
}

// firstKeyLock is the advisory lock key that makes replicas starting at once
// on an empty store take turns creating the first admin key.
const firstKeyLock int64 = migrateLock + 1

// CreateFirstKey stores k if the store holds no key at all, and reports
// whether it did: of replicas starting together on an empty database,
// exactly one creates (and prints) the first admin key. The transaction's
// advisory lock makes them take turns, and each looks for a key only once
// it holds the lock (a new snapshot in READ COMMITTED), so the later ones
// see the first one's key.
func (s *DB) CreateFirstKey(ctx context.Context, k grokgate.Key) (bool, error) {
	created := false
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, firstKeyLock); err != nil {
			return err
		}
		var exists bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM keys)`).Scan(&exists); err != nil || exists {
			return err
		}
		var seq int64
		if err := tx.QueryRow(ctx, `UPDATE meta SET value = value + 1 WHERE name = 'keys_generation' RETURNING value`).Scan(&seq); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO keys (`+keyColumns+`, seq)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)`, keyArgs(k, seq)...); err != nil {
			return err
		}
		created = true
		return nil
	})
	return created && err == nil, err
}

// keyArgs are k's values in keyColumns order, then the change number.
func keyArgs(k grokgate.Key, seq int64) []any {
	l := k.Limits
	return []any{k.ID, k.Name, k.Prefix, k.Hash[:], string(k.Role), ts(k.CreatedAt), nullTS(k.RevokedAt),
		models(k.AllowedModels), nullTS(k.ExpiresAt), l.RPM, l.TPM, l.MaxStreams, l.BudgetTicksPerDay, l.BudgetTicksPerMonth,
		models(k.AllowedTools), seq}
}

// RevokeKey marks key id revoked at time at. Revoking a revoked key keeps the
// first revocation time.
func (s *DB) RevokeKey(ctx context.Context, id string, at time.Time) error {
	return s.inTx(ctx, func(tx pgx.Tx, seq int64) error {
		tag, err := tx.Exec(ctx, `UPDATE keys SET revoked_at = COALESCE(revoked_at, $1), seq = $3 WHERE id = $2`, ts(at), id, seq)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return grokgate.ErrNotFound
		}
		return nil
	})
}

// UpdateKey applies u to key id and returns the key as stored.
func (s *DB) UpdateKey(ctx context.Context, id string, u grokgate.KeyUpdate) (grokgate.Key, error) {
	var out grokgate.Key
	err := s.inTx(ctx, func(tx pgx.Tx, seq int64) error {
		k, err := scanKey(tx.QueryRow(ctx, `SELECT `+keyColumns+` FROM keys WHERE id = $1 FOR UPDATE`, id))
		if err != nil {
			return err
		}
		if u.Name != nil {
			k.Name = *u.Name
		}
		if u.AllowedModels != nil {
			k.AllowedModels = *u.AllowedModels
			if len(k.AllowedModels) == 0 {
				k.AllowedModels = nil
			}
		}
		if u.AllowedTools != nil {
			k.AllowedTools = *u.AllowedTools
			if len(k.AllowedTools) == 0 {
				k.AllowedTools = nil
			}
		}
		if u.ExpiresAt != nil {
			k.ExpiresAt = time.Time{}
			if !u.ExpiresAt.IsZero() {
				k.ExpiresAt = ts(*u.ExpiresAt)
			}
		}
		k.Limits = u.Limits.Apply(k.Limits)
		l := k.Limits
		if _, err := tx.Exec(ctx, `UPDATE keys SET name = $1, allowed_models = $2, expires_at = $3,
			rpm = $4, tpm = $5, max_streams = $6, budget_ticks_per_day = $7, budget_ticks_per_month = $8,
			allowed_tools = $9, seq = $11 WHERE id = $10`,
			k.Name, models(k.AllowedModels), nullTS(k.ExpiresAt), l.RPM, l.TPM, l.MaxStreams, l.BudgetTicksPerDay, l.BudgetTicksPerMonth,
			models(k.AllowedTools), id, seq); err != nil {
			return err
		}
		out = k
		return nil
	})
	return out, err
}

// KeysGeneration returns a counter bumped by every key mutation.
func (s *DB) KeysGeneration(ctx context.Context) (int64, error) {
	var g int64
	err := s.pool.QueryRow(ctx, `SELECT value FROM meta WHERE name = 'keys_generation'`).Scan(&g)
	return g, err
}

const keyColumns = `id, name, prefix, hash, role, created_at, revoked_at, allowed_models, expires_at,
	rpm, tpm, max_streams, budget_ticks_per_day, budget_ticks_per_month, allowed_tools`

// ListKeys returns all keys, oldest first.
func (s *DB) ListKeys(ctx context.Context) ([]grokgate.Key, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+keyColumns+` FROM keys ORDER BY created_at, id COLLATE "C"`)
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
// when none). Replicas poll it with the number they last saw: a poll that
// finds nothing reads one row of meta, and one that finds changes reads them
// through the index on seq, whatever the number of keys.
func (s *DB) KeysChangedSince(ctx context.Context, after int64) ([]grokgate.Key, int64, error) {
	// The generation test is a one-time filter: when nothing changed, the
	// keys are not even looked at, however the planner rates the index
	// (statistics lag behind a bulk load of keys until autovacuum runs).
	rows, err := s.pool.Query(ctx, `SELECT `+keyColumns+`, seq FROM keys
		WHERE seq > $1 AND (SELECT value FROM meta WHERE name = 'keys_generation') > $1 ORDER BY seq`, after)
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
	return scanKey(s.pool.QueryRow(ctx, `SELECT `+keyColumns+` FROM keys WHERE hash = $1`, h[:]))
}

// KeyByID returns the key with this id.
func (s *DB) KeyByID(ctx context.Context, id string) (grokgate.Key, error) {
	return scanKey(s.pool.QueryRow(ctx, `SELECT `+keyColumns+` FROM keys WHERE id = $1`, id))
}

// scanKey reads keyColumns, then into extra any columns that follow them.
func scanKey(row pgx.Row, extra ...any) (grokgate.Key, error) {
	var (
		k                grokgate.Key
		hash             []byte
		role             string
		revoked, expires *time.Time
	)
	l := &k.Limits
	err := row.Scan(append([]any{&k.ID, &k.Name, &k.Prefix, &hash, &role, &k.CreatedAt, &revoked, &k.AllowedModels, &expires,
		&l.RPM, &l.TPM, &l.MaxStreams, &l.BudgetTicksPerDay, &l.BudgetTicksPerMonth, &k.AllowedTools}, extra...)...)
	if errors.Is(err, pgx.ErrNoRows) {
		return k, grokgate.ErrNotFound
	} else if err != nil {
		return k, err
	}
	if len(hash) != len(k.Hash) {
		return k, fmt.Errorf("key %s: stored hash has %d bytes", k.ID, len(hash))
	}
	copy(k.Hash[:], hash)
	k.Role = grokgate.Role(role)
	k.CreatedAt = k.CreatedAt.UTC()
	if revoked != nil {
		k.RevokedAt = revoked.UTC()
	}
	if expires != nil {
		k.ExpiresAt = expires.UTC()
	}
	if len(k.AllowedModels) == 0 {
		k.AllowedModels = nil
	}
	if len(k.AllowedTools) == 0 {
		k.AllowedTools = nil
	}
	return k, nil
}
