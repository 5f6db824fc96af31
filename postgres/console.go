package postgres

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/grokgate/grokgate"
)

// RecentRecords returns the ledger records f selects, newest first (time,
// then request id byte-wise, descending, as SQLite orders), at most f.Limit
// of them.
func (s *DB) RecentRecords(ctx context.Context, f grokgate.RecordFilter) ([]grokgate.Record, error) {
	if f.Limit <= 0 {
		return nil, errors.New("RecentRecords needs a positive limit")
	}
	var where string
	var args []any
	if f.KeyID != "" {
		where, args = and(where, args, "key_id = $?", f.KeyID)
	}
	if f.Model != "" {
		where, args = and(where, args, "(model = $? OR requested_model = $?)", f.Model)
	}
	if f.Outcome != "" {
		where, args = and(where, args, "outcome = $?", string(f.Outcome))
	}
	if f.Status != 0 {
		where, args = and(where, args, "status = $?", f.Status)
	}
	if !f.BeforeTime.IsZero() {
		id := "$" + strconv.Itoa(len(args)+2) // the parameter after the time's
		where, args = and(where, args, `(time < $? OR (time = $? AND request_id COLLATE "C" < `+id+`))`, ts(f.BeforeTime))
		args = append(args, f.BeforeID)
	}
	rows, err := s.pool.Query(ctx, `SELECT `+usageColumns+` FROM usage_records`+where+
		` ORDER BY time DESC, request_id COLLATE "C" DESC LIMIT `+strconv.Itoa(f.Limit), args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	return scanRecords(rows)
}

// CreateSession stores a console session.
func (s *DB) CreateSession(ctx context.Context, se grokgate.Session) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO sessions (id, key_id, created_at, expires_at) VALUES ($1, $2, $3, $4)`,
		se.Hash[:], se.KeyID, ts(se.CreatedAt), ts(se.ExpiresAt))
	return err
}

// SessionByHash returns the session whose token hashes to h as of now, or
// grokgate.ErrNotFound when there is none or it has expired.
func (s *DB) SessionByHash(ctx context.Context, h [32]byte, now time.Time) (grokgate.Session, error) {
	se := grokgate.Session{Hash: h}
	err := s.pool.QueryRow(ctx, `SELECT key_id, created_at, expires_at FROM sessions WHERE id = $1`, h[:]).
		Scan(&se.KeyID, &se.CreatedAt, &se.ExpiresAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return grokgate.Session{}, grokgate.ErrNotFound
	} else if err != nil {
		return grokgate.Session{}, err
	}
	se.CreatedAt, se.ExpiresAt = se.CreatedAt.UTC(), se.ExpiresAt.UTC()
	if !now.Before(se.ExpiresAt) {
		return grokgate.Session{}, grokgate.ErrNotFound
	}
	return se, nil
}

// DeleteSession ends the session whose token hashes to h; an unknown one is
// no error.
func (s *DB) DeleteSession(ctx context.Context, h [32]byte) error {
	_, err := s.pool.Exec(ctx, `DELETE FROM sessions WHERE id = $1`, h[:])
	return err
}

// PruneSessions deletes the sessions expired at before and returns how many.
func (s *DB) PruneSessions(ctx context.Context, before time.Time) (int64, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM sessions WHERE expires_at <= $1`, ts(before))
	if err != nil {
		return 0, err
	}
	return tag.RowsAffected(), nil
}
