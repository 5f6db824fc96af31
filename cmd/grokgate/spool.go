package main

import (
	"path/filepath"

	"github.com/grokgate/grokgate"
	"github.com/grokgate/grokgate/postgres"
	"github.com/grokgate/grokgate/spool"
	ledger "github.com/grokgate/grokgate/usage"
)

const spoolDirHelp = "directory of the usage spool and the in-flight journal, on local disk (default: DB.spool beside a SQLite file, ./grokgate-spool for PostgreSQL); one process per directory"

// spoolDirFor is the spool directory: dir when given, else beside the
// SQLite file, or in the working directory for PostgreSQL.
func spoolDirFor(db, dir string) string {
	switch {
	case dir != "":
		return dir
	case postgres.IsDSN(db):
		return "grokgate-spool"
	default:
		return db + ".spool"
	}
}

// openSpool opens the usage spool and the in-flight journal in dir. The
// journal an earlier process left is recovered first: its unfinished
// requests become records in the spool, which the recorder replays.
func (in *instance) openSpool(dir string) (*spool.Spool, *spool.Journal, error) {
	log := in.log.With("component", "usage")
	sp, err := spool.Open(dir, log, spool.Options{})
	if err != nil {
		return nil, nil, err
	}
	in.onClose(func() { sp.Close() })
	journal, recovered, err := sp.OpenJournal(spool.JournalOptions{}, interrupted)
	if err != nil {
		return nil, nil, err
	}
	in.onClose(func() { journal.Close() })
	abs, _ := filepath.Abs(dir)
	switch {
	case recovered > 0:
		log.Warn("the last run ended with requests in flight or records not yet written; recorded from its journal", "records", recovered, "spool_dir", abs)
	case sp.Pending() > 0:
		log.Warn("usage records of an earlier run wait in the spool; replaying them", "records", sp.Pending(), "spool_dir", abs)
	}
	if n := sp.DeadLetters(); n > 0 {
		log.Warn("the usage dead-letter file holds records the database refused", "records", n, "file", filepath.Join(abs, "dead-letter.jsonl"))
	}
	return sp, journal, nil
}

// interrupted is the record of a request a process that died had in
// flight: outcome interrupted, its tokens estimated from what it had
// relayed, and a cost estimated from them.
func interrupted(u spool.Unfinished) grokgate.Record {
	rec := u.Begun
	rec.Outcome, rec.Estimated = grokgate.OutcomeInterrupted, true
	rec.CompletionTokens = ledger.TokensForBytes(u.Content)
	rec.ReasoningTokens = ledger.TokensForBytes(u.Reasoning)
	if d := u.Seen.Sub(rec.Time); d > 0 {
		rec.Latency = d
	}
	rec.CostTicks = ledger.EstimateCost(rec)
	return rec
}
