package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/grokgate/grokgate"
)

// RecordResponseOwner remembers that each o.KeyID created response
// o.ResponseID, all in one statement, so concurrent streams share one
// commit. Recording an id again changes nothing: its first owner keeps it,
// so no other key can take over a response by claiming its id, whichever
// replica claims it.
func (s *DB) RecordResponseOwner(ctx context.Context, owners ...grokgate.ResponseOwner) error {
	if len(owners) == 0 {
		return nil
	}
	ids, keys, at := make([]string, len(owners)), make([]string, len(owners)), make([]time.Time, len(owners))
	for i, o := range owners {
		if o.ResponseID == "" || o.KeyID == "" {
			return errors.New("a response owner needs a response id and a key id")
		}
		ids[i], keys[i], at[i] = o.ResponseID, o.KeyID, ts(o.CreatedAt)
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO response_owners (response_id, key_id, created_at)
		SELECT * FROM unnest($1::text[], $2::text[], $3::timestamptz[]) ON CONFLICT (response_id) DO NOTHING`, ids, keys, at)
	return err
}

// ResponseOwner returns the owner of response id as of now, or
// grokgate.ErrNotFound when grokgate never issued the id, forgot it, or it
// is ResponseRetention old.
func (s *DB) ResponseOwner(ctx context.Context, id string, now time.Time) (grokgate.ResponseOwner, error) {
	o := grokgate.ResponseOwner{ResponseID: id}
	err := s.pool.QueryRow(ctx, `SELECT key_id, created_at FROM response_owners WHERE response_id = $1`, id).
		Scan(&o.KeyID, &o.CreatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return grokgate.ResponseOwner{}, grokgate.ErrNotFound
	} else if err != nil {
		return grokgate.ResponseOwner{}, err
	}
	o.CreatedAt = o.CreatedAt.UTC()
	if o.Expired(now) {
		return grokgate.ResponseOwner{}, grokgate.ErrNotFound
	}
	return o, nil
}

// ForgetResponse drops response id's owner, as when it is deleted; an
// unknown id is no error.
func (s *DB) ForgetResponse(ctx context.Context, id string) error {
	_, err := s.pool.Exec(ctx, `DELETE FROM response_owners WHERE response_id = $1`, id)
	return err
}

// PruneResponseOwners deletes the owners of responses created before
// before and returns how many it deleted.
func (s *DB) PruneResponseOwners(ctx context.Context, before time.Time) (int64, error) {
	// Times are kept to the microsecond: round up, so an owner stored at
	// 10µs is pruned before 10.5µs.
	tag, err := s.pool.Exec(ctx, `DELETE FROM response_owners WHERE created_at < $1`, ts(before.Add(time.Microsecond-1)))
	if err != nil {
		return 0, err
	}
	return tag.RowsAffected(), nil
}
