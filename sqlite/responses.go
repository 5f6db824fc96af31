package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/grokgate/grokgate"
)

// RecordResponseOwner remembers that each o.KeyID created response
// o.ResponseID, all in one statement, so concurrent streams share one
// commit. Recording an id again changes nothing: its first owner keeps it,
// so no other key can take over a response by claiming its id.
func (s *DB) RecordResponseOwner(ctx context.Context, owners ...grokgate.ResponseOwner) error {
	if len(owners) == 0 {
		return nil
	}
	q := make([]byte, 0, 80+10*len(owners))
	q = append(q, "INSERT INTO response_owners (response_id, key_id, created_at) VALUES "...)
	args := make([]any, 0, 3*len(owners))
	for i, o := range owners {
		if o.ResponseID == "" || o.KeyID == "" {
			return errors.New("a response owner needs a response id and a key id")
		}
		if i > 0 {
			q = append(q, ',')
		}
		q = append(q, "(?, ?, ?)"...)
		args = append(args, o.ResponseID, o.KeyID, o.CreatedAt.UnixMicro())
	}
	q = append(q, " ON CONFLICT (response_id) DO NOTHING"...)
	_, err := s.db.ExecContext(ctx, string(q), args...)
	return err
}

// ResponseOwner returns the owner of response id as of now, or
// grokgate.ErrNotFound when grokgate never issued the id, forgot it, or it
// is ResponseRetention old.
func (s *DB) ResponseOwner(ctx context.Context, id string, now time.Time) (grokgate.ResponseOwner, error) {
	o := grokgate.ResponseOwner{ResponseID: id}
	var created int64
	err := s.db.QueryRowContext(ctx, `SELECT key_id, created_at FROM response_owners WHERE response_id = ?`, id).
		Scan(&o.KeyID, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return grokgate.ResponseOwner{}, grokgate.ErrNotFound
	} else if err != nil {
		return grokgate.ResponseOwner{}, err
	}
	o.CreatedAt = time.UnixMicro(created).UTC()
	if o.Expired(now) {
		return grokgate.ResponseOwner{}, grokgate.ErrNotFound
	}
	return o, nil
}

// ForgetResponse drops response id's owner, as when it is deleted; an
// unknown id is no error.
func (s *DB) ForgetResponse(ctx context.Context, id string) error {
	_, err := s.db.ExecContext(ctx, `DELETE FROM response_owners WHERE response_id = ?`, id)
	return err
}

// PruneResponseOwners deletes the owners of responses created before
// before and returns how many it deleted.
func (s *DB) PruneResponseOwners(ctx context.Context, before time.Time) (int64, error) {
	// Times are kept to the microsecond: round up, so an owner stored at
	// 10µs is pruned before 10.5µs.
	before = before.Add(time.Microsecond - 1)
	res, err := s.db.ExecContext(ctx, `DELETE FROM response_owners WHERE created_at < ?`, before.UnixMicro())
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}
