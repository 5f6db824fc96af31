package main

import (
	"context"
	"errors"
	"time"

	"github.com/grokgate/grokgate"
	"github.com/grokgate/grokgate/postgres"
	"github.com/grokgate/grokgate/sqlite"
)

// store is everything the commands need from the database; both the SQLite
// and the PostgreSQL store provide it.
type store interface {
	CreateKey(ctx context.Context, k grokgate.Key) error
	CreateFirstKey(ctx context.Context, k grokgate.Key) (bool, error)
	KeyByID(ctx context.Context, id string) (grokgate.Key, error)
	KeyByHash(ctx context.Context, h [32]byte) (grokgate.Key, error)
	ListKeys(ctx context.Context) ([]grokgate.Key, error)
	UpdateKey(ctx context.Context, id string, u grokgate.KeyUpdate) (grokgate.Key, error)
	RevokeKey(ctx context.Context, id string, at time.Time) error
	KeysGeneration(ctx context.Context) (int64, error)
	KeysChangedSince(ctx context.Context, after int64) ([]grokgate.Key, int64, error)
	InsertUsage(ctx context.Context, recs []grokgate.Record) error
	UsageSummary(ctx context.Context, q grokgate.UsageQuery) ([]grokgate.UsageTotals, error)
	RecordResponseOwner(ctx context.Context, owners ...grokgate.ResponseOwner) error
	ResponseOwner(ctx context.Context, id string, now time.Time) (grokgate.ResponseOwner, error)
	ForgetResponse(ctx context.Context, id string) error
	PruneResponseOwners(ctx context.Context, before time.Time) (int64, error)
	RecentRecords(ctx context.Context, f grokgate.RecordFilter) ([]grokgate.Record, error)
	CreateSession(ctx context.Context, se grokgate.Session) error
	SessionByHash(ctx context.Context, h [32]byte, now time.Time) (grokgate.Session, error)
	DeleteSession(ctx context.Context, h [32]byte) error
	PruneSessions(ctx context.Context, before time.Time) (int64, error)
	Spent(ctx context.Context, keyID string, dayStart, monthStart time.Time) (day, month int64, err error)
	Ping(ctx context.Context) error
	Close() error
}

const dbHelp = "SQLite database file, or a postgres:// URL for PostgreSQL"

// defaultStoreTimeout bounds each store call on a request path
// (GROKGATE_STORE_TIMEOUT) and the connection to PostgreSQL.
const defaultStoreTimeout = 5 * time.Second

// openStore opens PostgreSQL for a postgres:// or postgresql:// URL and a
// SQLite file for anything else.
func openStore(ctx context.Context, db string) (store, error) {
	return openStoreWith(ctx, db, defaultStoreTimeout)
}

// openStoreWith is openStore giving a PostgreSQL server timeout to take a
// connection and answer a first query.
func openStoreWith(ctx context.Context, db string, timeout time.Duration) (store, error) {
	if postgres.IsDSN(db) {
		return postgres.OpenWith(ctx, db, postgres.Options{Timeout: timeout})
	}
	return sqlite.Open(ctx, db)
}

// checkDB reports a GROKGATE_DB value that cannot work, without echoing it
// (a URL may hold a password).
func checkDB(s *settings, db string) {
	switch {
	case db == "":
		s.errs = append(s.errs, errors.New("GROKGATE_DB/--db must name a SQLite database file or a postgres:// URL"))
	case postgres.IsDSN(db):
		if _, err := postgres.ParseConfig(db); err != nil {
			s.errs = append(s.errs, errors.New("GROKGATE_DB/--db is not a valid PostgreSQL URL; write it like postgres://USER:PASSWORD@HOST:5432/DATABASE?sslmode=disable"))
		}
	}
}
