package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/grokgate/grokgate"
	"github.com/grokgate/grokgate/postgres"
	"github.com/grokgate/grokgate/pricing"
	"github.com/grokgate/grokgate/redis"
	"github.com/grokgate/grokgate/spool"
	ledger "github.com/grokgate/grokgate/usage"
)

const spoolDirHelp = "local directory of the usage spool and the in-flight journal, one process each: DIR.2, DIR.3, ... are taken while it is (default: DB.spool beside a SQLite file, ./grokgate-spool for PostgreSQL)"

// spoolSlots is how many spool directories the processes of a host may
// take in turn (DIR, DIR.2, ...).
const spoolSlots = 16

// spoolDirs lists the spool directories to try: dir (by default beside the
// SQLite file, or in the working directory for PostgreSQL), then numbered
// ones, so replicas given one directory each take their own, and a
// restarted one takes (and replays) what a dead one left.
func spoolDirs(db, dir string) []string {
	base := dir
	switch {
	case base != "":
	case postgres.IsDSN(db):
		base = "grokgate-spool"
	default:
		base = db + ".spool"
	}
	dirs := []string{base}
	for i := 2; i <= spoolSlots; i++ {
		dirs = append(dirs, fmt.Sprintf("%s.%d", base, i))
	}
	return dirs
}

// openSpool opens the usage spool and the in-flight journal in the first
// free spool directory. What the journals of earlier processes left
// unfinished is returned, for keepRecovered once prices are known.
func (in *instance) openSpool(db, dir string) (*spool.Spool, *spool.Journal, *spool.Recovered, error) {
	log := in.log.With("component", "usage")
	var sp *spool.Spool
	var err error
	for _, d := range spoolDirs(db, dir) {
		if sp, err = spool.Open(d, log, spool.Options{}); !errors.Is(err, spool.ErrInUse) {
			break
		}
	}
	if err != nil {
		return nil, nil, nil, err
	}
	in.onClose(func() { sp.Close() })
	journal, recovered, err := sp.OpenJournal(spool.JournalOptions{})
	if err != nil {
		return nil, nil, nil, err
	}
	in.onClose(func() { journal.Close() })
	abs, _ := filepath.Abs(sp.Dir())
	if n := sp.Pending(); n > 0 {
		log.Warn("usage records of an earlier run wait in the spool; replaying them", "records", n, "spool_dir", abs)
	}
	if n := sp.DeadLetters(); n > 0 {
		log.Warn("the usage dead-letter file holds records the database refused", "records", n, "file", filepath.Join(abs, "dead-letter.jsonl"))
	}
	return sp, journal, recovered, nil
}

// keepRecovered spools a record for each request the last run left
// unfinished, those in flight priced by cost, and has the recorder replay
// them.
func (in *instance) keepRecovered(rec *spool.Recovered, sp *spool.Spool, r *ledger.Recorder, cost func(string, pricing.Tokens) int64) error {
	if rec.Len() == 0 {
		_, err := rec.Keep(nil)
		return err
	}
	n, err := rec.Keep(func(u spool.Unfinished) grokgate.Record { return interrupted(u, cost) })
	if err != nil {
		return err
	}
	abs, _ := filepath.Abs(sp.Dir())
	in.log.Warn("the last run ended with requests in flight or records not yet written; recorded from its journal",
		"component", "usage", "records", n, "spool_dir", abs)
	r.ReplaySpool()
	return nil
}

// spoolCounts adds up what waits in the spool directories a server on db
// would use, without taking them; dirs lists those that exist.
func spoolCounts(db, dir string) (pending, dead int64, dirs []string, err error) {
	for _, d := range spoolDirs(db, dir) {
		if _, err := os.Stat(d); err != nil {
			continue
		}
		p, x, err := spool.Count(d)
		if err != nil {
			return 0, 0, nil, fmt.Errorf("reading the usage spool %s: %w", d, err)
		}
		pending, dead, dirs = pending+p, dead+x, append(dirs, d)
	}
	return pending, dead, dirs, nil
}

// interrupted is the record of a request a process that died had in
// flight: outcome interrupted, its tokens estimated from what it had
// relayed, and its cost from those at the model's prices.
func interrupted(u spool.Unfinished, cost func(string, pricing.Tokens) int64) grokgate.Record {
	rec := u.Begun
	rec.Outcome, rec.Estimated = grokgate.OutcomeInterrupted, true
	rec.CompletionTokens = ledger.TokensForBytes(u.Content)
	rec.ReasoningTokens = ledger.TokensForBytes(u.Reasoning)
	if d := u.Seen.Sub(rec.Time); d > 0 {
		rec.Latency = d
	}
	rec.CostTicks = cost(rec.RequestedModel, pricing.Tokens{Prompt: rec.PromptTokens, Completion: rec.CompletionTokens, Reasoning: rec.ReasoningTokens})
	return rec
}

// spentWithSpool is what the limiter rebuilds a key's budget from when its
// state was lost (a restart; Redis flushed): the store's figures plus the
// records this process's spool holds that the store has not got yet (it
// was down, or the replay has not reached them), which would otherwise go
// uncounted until the day or month ends.
type spentWithSpool struct {
	store redis.Ledger
	spool *spool.Spool
}

// Spent reads the spool first: a record replayed between the two reads is
// then counted twice, refusing a little early, rather than not at all.
func (l spentWithSpool) Spent(ctx context.Context, keyID string, dayStart, monthStart time.Time) (day, month int64, err error) {
	sday, smonth, err := l.spool.Spent(keyID, dayStart, monthStart)
	if err != nil {
		return 0, 0, err
	}
	day, month, err = l.store.Spent(ctx, keyID, dayStart, monthStart)
	if err != nil {
		return 0, 0, err
	}
	return day + sday, month + smonth, nil
}
