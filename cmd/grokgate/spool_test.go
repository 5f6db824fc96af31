package main

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/grokgate/grokgate"
	"github.com/grokgate/grokgate/ratelimit"
	"github.com/grokgate/grokgate/spool"
	"github.com/grokgate/grokgate/sqlite"
)

// TestBudgetCountsSpooledRecords: a budget rebuilt after its limiter state
// was lost counts what the key spent in records still in the spool (the
// store was down, or the replay has not reached them), not only what the
// store holds: a key at its daily budget stays refused.
func TestBudgetCountsSpooledRecords(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	store, err := sqlite.Open(ctx, filepath.Join(dir, "grokgate.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	sp, err := spool.Open(filepath.Join(dir, "spool"), slog.New(slog.NewTextHandler(io.Discard, nil)), spool.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()

	now := time.Date(2026, 12, 6, 18, 0, 0, 0, time.UTC)
	rec := func(id string, at time.Time, cost int64) grokgate.Record {
		return grokgate.Record{Time: at, RequestID: id, KeyID: "key_a", Route: "/chat/completions", RequestedModel: "grok-4.3",
			Model: "grok-4.3", Status: 200, Outcome: grokgate.OutcomeCompleted, CostTicks: cost, Count: 1}
	}
	if err := store.InsertUsage(ctx, []grokgate.Record{rec("req_stored", now.Add(-time.Hour), 300)}); err != nil {
		t.Fatal(err)
	}
	if err := sp.Append([]grokgate.Record{rec("req_spooled", now.Add(-30*time.Minute), 700), rec("req_yesterday", now.Add(-24*time.Hour), 5)}); err != nil {
		t.Fatal(err)
	}
	ledger := spentWithSpool{store, sp}
	day, month, err := ledger.Spent(ctx, "key_a", ratelimit.DayStart(now), ratelimit.MonthStart(now))
	if err != nil || day != 1000 || month != 1005 {
		t.Fatalf("spent %d today, %d this month (%v); want 1000 and 1005", day, month, err)
	}

	// A limiter starting afresh (a restart) learns the key has spent its
	// daily budget of 1,000; from the store alone it would admit.
	a := grokgate.Admission{Key: "key_a", ID: "req_next", Limits: grokgate.Limits{BudgetTicksPerDay: 1000}, Cost: 1}
	v, err := ratelimit.New(func() time.Time { return now }, 0).WithLedger(ledger).Admit(ctx, a)
	if err != nil || v.Allowed || v.Refused != grokgate.LimitBudget {
		t.Errorf("with the spool: %+v (%v), want refused for the budget", v, err)
	}
	v, err = ratelimit.New(func() time.Time { return now }, 0).WithLedger(store).Admit(ctx, a)
	if err != nil || !v.Allowed {
		t.Fatalf("the store alone: %+v (%v); the test's figures are wrong", v, err)
	}
}
