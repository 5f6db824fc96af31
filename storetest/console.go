package storetest

import (
	"crypto/sha256"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/grokgate/grokgate"
)

// recordIDs lists the request ids of recs, in order.
func recordIDs(recs []grokgate.Record) []string {
	ids := []string{}
	for _, r := range recs {
		ids = append(ids, r.RequestID)
	}
	return ids
}

func testRecentRecords(t *testing.T, s Store) {
	c := ctx(t)
	// Records 0..9 one second apart; 10 and 11 share record 9's time, so
	// the request id breaks the tie.
	var recs []grokgate.Record
	for i := range 12 {
		at := base.Add(time.Duration(min(i, 9)) * time.Second)
		key, model := "key_a", "grok-4.3"
		if i%2 == 1 {
			key = "key_b"
		}
		if i%3 == 0 {
			model = "grok-3-mini"
		}
		r := record(i, at, key, model)
		if i == 4 {
			r.Status, r.Outcome = 502, grokgate.OutcomeUpstreamError
		}
		recs = append(recs, r)
	}
	if err := s.InsertUsage(c, recs); err != nil {
		t.Fatal(err)
	}
	check := func(name string, f grokgate.RecordFilter, want ...string) []grokgate.Record {
		t.Helper()
		got, err := s.RecentRecords(c, f)
		if err != nil {
			t.Fatalf("%s: RecentRecords: %v", name, err)
		}
		if want == nil {
			want = []string{}
		}
		if !reflect.DeepEqual(recordIDs(got), want) {
			t.Errorf("%s: got %v, want %v", name, recordIDs(got), want)
		}
		return got
	}
	all := check("newest first", grokgate.RecordFilter{Limit: 5},
		"req_000011", "req_000010", "req_000009", "req_000008", "req_000007")
	if len(all) > 0 && !reflect.DeepEqual(all[0], recs[11]) {
		t.Errorf("record round trip: got %+v, want %+v", all[0], recs[11])
	}
	last := all[len(all)-1]
	check("next page", grokgate.RecordFilter{Limit: 5, BeforeTime: last.Time, BeforeID: last.RequestID},
		"req_000006", "req_000005", "req_000004", "req_000003", "req_000002")
	check("page inside a tie", grokgate.RecordFilter{Limit: 2, BeforeTime: recs[10].Time, BeforeID: "req_000010"},
		"req_000009", "req_000008")
	check("key", grokgate.RecordFilter{Limit: 100, KeyID: "key_b"},
		"req_000011", "req_000009", "req_000007", "req_000005", "req_000003", "req_000001")
	check("resolved model", grokgate.RecordFilter{Limit: 100, Model: "grok-3-mini"},
		"req_000009", "req_000006", "req_000003", "req_000000")
	check("requested model", grokgate.RecordFilter{Limit: 100, Model: "grok-3-mini-alias", KeyID: "key_a"},
		"req_000006", "req_000000")
	check("outcome", grokgate.RecordFilter{Limit: 100, Outcome: grokgate.OutcomeUpstreamError}, "req_000004")
	check("status", grokgate.RecordFilter{Limit: 100, Status: 502}, "req_000004")
	check("status of another key", grokgate.RecordFilter{Limit: 100, Status: 502, KeyID: "key_b"})
	if _, err := s.RecentRecords(c, grokgate.RecordFilter{}); err == nil {
		t.Error("RecentRecords without a limit: no error")
	}
}

func testUsageSummaryOfKey(t *testing.T, s Store) {
	c := ctx(t)
	if err := s.InsertUsage(c, []grokgate.Record{record(1, base, "key_a", "m1"), record(2, base, "key_b", "m1"),
		record(3, base.Add(time.Hour), "key_a", "m2")}); err != nil {
		t.Fatal(err)
	}
	got, err := s.UsageSummary(c, grokgate.UsageQuery{GroupBy: grokgate.GroupByModel, KeyID: "key_a"})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Group != "m1" || got[0].Requests != 1 || got[1].Group != "m2" || got[1].Requests != 1 {
		t.Errorf("key_a's usage by model = %+v; want m1 and m2 with one request each", got)
	}
	got, err = s.UsageSummary(c, grokgate.UsageQuery{GroupBy: grokgate.GroupByKey, KeyID: "key_b", From: base.Add(time.Minute)})
	if err != nil || len(got) != 0 {
		t.Errorf("key_b's usage after its only record = %+v, %v; want none", got, err)
	}
}

// testUsageSummaryOfModel: the model filter names a model as GroupByModel
// does (the resolved model, else the requested one), so a model's daily
// series adds up to its row in the by-model view.
func testUsageSummaryOfModel(t *testing.T, s Store) {
	c := ctx(t)
	rejected := record(4, base.Add(24*time.Hour), "key_b", "")
	rejected.RequestedModel = "m1" // never resolved: counted under what was asked for
	if err := s.InsertUsage(c, []grokgate.Record{record(1, base, "key_a", "m1"), record(2, base, "key_b", "m1"),
		record(3, base.Add(time.Hour), "key_a", "m2"), rejected, record(5, base.Add(24*time.Hour), "key_a", "m2")}); err != nil {
		t.Fatal(err)
	}
	got, err := s.UsageSummary(c, grokgate.UsageQuery{GroupBy: grokgate.GroupByDay, Model: "m1"})
	if err != nil {
		t.Fatal(err)
	}
	d0, d1 := base.Format(time.DateOnly), base.Add(24*time.Hour).Format(time.DateOnly)
	if len(got) != 2 || got[0].Group != d0 || got[0].Requests != 2 || got[1].Group != d1 || got[1].Requests != 1 {
		t.Errorf("m1's usage by day = %+v; want %s with 2 requests and %s with 1", got, d0, d1)
	}
	got, err = s.UsageSummary(c, grokgate.UsageQuery{GroupBy: grokgate.GroupByKey, Model: "m2", KeyID: "key_b"})
	if err != nil || len(got) != 0 {
		t.Errorf("key_b's usage of m2 = %+v, %v; want none", got, err)
	}
	got, err = s.UsageSummary(c, grokgate.UsageQuery{GroupBy: grokgate.GroupByKey, Model: "m2", From: base.Add(2 * time.Hour)})
	if err != nil || len(got) != 1 || got[0].Group != "key_a" || got[0].Requests != 1 {
		t.Errorf("m2's usage by key from the next day = %+v, %v; want key_a with 1 request", got, err)
	}
	got, err = s.UsageSummary(c, grokgate.UsageQuery{GroupBy: grokgate.GroupByModel, Model: "m1-alias"})
	if err != nil || len(got) != 0 {
		t.Errorf("usage of a resolved model's requested alias = %+v, %v; want none: the filter names the model the by-model view shows", got, err)
	}
}

func testSessions(t *testing.T, s Store) {
	c := ctx(t)
	a := grokgate.Session{Hash: sha256.Sum256([]byte("a")), KeyID: "key_a", CreatedAt: base, ExpiresAt: base.Add(time.Hour)}
	b := grokgate.Session{Hash: sha256.Sum256([]byte("b")), KeyID: "key_b", CreatedAt: base, ExpiresAt: base.Add(2 * time.Hour)}
	for _, se := range []grokgate.Session{a, b} {
		if err := s.CreateSession(c, se); err != nil {
			t.Fatalf("CreateSession: %v", err)
		}
	}
	if err := s.CreateSession(c, a); err == nil {
		t.Error("CreateSession with a hash already stored: no error")
	}
	got, err := s.SessionByHash(c, a.Hash, base.Add(time.Minute))
	if err != nil || got.KeyID != "key_a" || !got.CreatedAt.Equal(a.CreatedAt) || !got.ExpiresAt.Equal(a.ExpiresAt) {
		t.Errorf("SessionByHash(a) = %+v, %v; want %+v", got, err, a)
	}
	if _, err := s.SessionByHash(c, a.Hash, a.ExpiresAt); !errors.Is(err, grokgate.ErrNotFound) {
		t.Errorf("SessionByHash(a) at its expiry: %v; want ErrNotFound", err)
	}
	if _, err := s.SessionByHash(c, sha256.Sum256([]byte("c")), base); !errors.Is(err, grokgate.ErrNotFound) {
		t.Errorf("SessionByHash(unknown): %v; want ErrNotFound", err)
	}
	n, err := s.PruneSessions(c, a.ExpiresAt)
	if err != nil || n != 1 {
		t.Errorf("PruneSessions at a's expiry = %d, %v; want 1 (a)", n, err)
	}
	if err := s.DeleteSession(c, b.Hash); err != nil {
		t.Fatalf("DeleteSession: %v", err)
	}
	if _, err := s.SessionByHash(c, b.Hash, base); !errors.Is(err, grokgate.ErrNotFound) {
		t.Errorf("SessionByHash(b) after DeleteSession: %v; want ErrNotFound", err)
	}
	if err := s.DeleteSession(c, b.Hash); err != nil {
		t.Errorf("DeleteSession of a deleted session: %v; want no error", err)
	}
}
