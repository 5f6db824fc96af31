// Package storetest is the conformance suite every grokgate store must pass,
// so SQLite and PostgreSQL keep the same semantics: keys, the keys generation
// counter other replicas poll, the usage ledger, the owners of stored
// responses and the console's sessions.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/grokgate/grokgate"
	"github.com/grokgate/grokgate/keys"
)

// Store is what the suite exercises: the whole of a grokgate store.
type Store interface {
	CreateKey(ctx context.Context, k grokgate.Key) error
	KeyByID(ctx context.Context, id string) (grokgate.Key, error)
	KeyByHash(ctx context.Context, h [32]byte) (grokgate.Key, error)
	ListKeys(ctx context.Context) ([]grokgate.Key, error)
	UpdateKey(ctx context.Context, id string, u grokgate.KeyUpdate) (grokgate.Key, error)
	RevokeKey(ctx context.Context, id string, at time.Time) error
	KeysGeneration(ctx context.Context) (int64, error)
	KeysChangedSince(ctx context.Context, after int64) ([]grokgate.Key, int64, error)
	CreateFirstKey(ctx context.Context, k grokgate.Key) (bool, error)
	InsertUsage(ctx context.Context, recs []grokgate.Record) error
	UsageRecords(ctx context.Context, from, to time.Time) ([]grokgate.Record, error)
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

// UsagePoisoner is implemented by a test's wrapper around a store that can
// make the store fail to write the usage record with one request id (with a
// trigger, say). The suite then checks that a batch holding that record
// stores nothing; without it that case is skipped.
type UsagePoisoner interface {
	PoisonUsage(ctx context.Context, requestID string) error
}

// Run runs the suite. open must return a new, empty store for each call;
// the suite closes it.
func Run(t *testing.T, open func(t *testing.T) Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s Store)
	}{
		{"KeysRoundTrip", testKeysRoundTrip},
		{"KeysUnique", testKeysUnique},
		{"UpdateKey", testUpdateKey},
		{"KeyLimits", testKeyLimits},
		{"KeyAllowedTools", testKeyAllowedTools},
		{"RevokeKey", testRevokeKey},
		{"Generation", testGeneration},
		{"KeysChangedSince", testKeysChangedSince},
		{"CreateFirstKey", testCreateFirstKey},
		{"UsageRoundTrip", testUsageRoundTrip},
		{"UsageIdempotent", testUsageIdempotent},
		{"UsageConcurrent", testUsageConcurrent},
		{"UsageBatchSizes", testUsageBatchSizes},
		{"UsageBatchDuplicates", testUsageBatchDuplicates},
		{"UsageBatchAtomic", testUsageBatchAtomic},
		{"UsagePoisonedValues", testUsagePoisonedValues},
		{"UsageSummary", testUsageSummary},
		{"UsageSummaryEmpty", testUsageSummaryEmpty},
		{"UsageToolCalls", testUsageToolCalls},
		{"UsageCountZero", testUsageCountZero},
		{"Spent", testSpent},
		{"ResponseOwnerRoundTrip", testResponseOwnerRoundTrip},
		{"ResponseOwnerFirstWins", testResponseOwnerFirstWins},
		{"ResponseOwnerBatch", testResponseOwnerBatch},
		{"ResponseOwnerConcurrentClaims", testResponseOwnerConcurrentClaims},
		{"ResponseOwnerExpiry", testResponseOwnerExpiry},
		{"ForgetResponse", testForgetResponse},
		{"PruneResponseOwners", testPruneResponseOwners},
		{"RecentRecords", testRecentRecords},
		{"UsageSummaryOfKey", testUsageSummaryOfKey},
		{"UsageSummaryOfModel", testUsageSummaryOfModel},
		{"Sessions", testSessions},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t)
			t.Cleanup(func() {
				if err := s.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			})
			if err := s.Ping(context.Background()); err != nil {
				t.Fatalf("Ping: %v", err)
			}
			tc.fn(t, s)
		})
	}
}

// base is a fixed instant with whole microseconds, the precision both
// stores keep.
var base = time.Date(2026, 11, 3, 22, 30, 0, 123456000, time.UTC)

func mintKey(t *testing.T, name string, role grokgate.Role) grokgate.Key {
	t.Helper()
	k, _, err := keys.Mint(keys.Random(), name, role, base)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return c
}

func equalKeys(a, b grokgate.Key) bool {
	// nil and empty allow-lists mean the same.
	if len(a.AllowedModels) == 0 && len(b.AllowedModels) == 0 {
		a.AllowedModels, b.AllowedModels = nil, nil
	}
	if len(a.AllowedTools) == 0 && len(b.AllowedTools) == 0 {
		a.AllowedTools, b.AllowedTools = nil, nil
	}
	return a.ID == b.ID && a.Name == b.Name && a.Prefix == b.Prefix && a.Hash == b.Hash && a.Role == b.Role &&
		a.CreatedAt.Equal(b.CreatedAt) && a.RevokedAt.Equal(b.RevokedAt) && a.ExpiresAt.Equal(b.ExpiresAt) &&
		a.Limits == b.Limits &&
		reflect.DeepEqual(a.AllowedModels, b.AllowedModels) && reflect.DeepEqual(a.AllowedTools, b.AllowedTools)
}

func testKeysRoundTrip(t *testing.T, s Store) {
	c := ctx(t)
	plain := mintKey(t, "plain", grokgate.RoleUser)
	full := mintKey(t, "full ünïcode", grokgate.RoleAdmin)
	full.CreatedAt = base.Add(time.Second)
	full.AllowedModels = []string{"grok-4.3", "grok-3-mini"}
	full.AllowedTools = []string{"x_search", "web_search"}
	full.ExpiresAt = base.Add(48 * time.Hour)
	full.Limits = grokgate.Limits{RPM: 60, TPM: 100000, MaxStreams: 2, BudgetTicksPerDay: 5e10, BudgetTicksPerMonth: grokgate.NoLimit}
	for _, k := range []grokgate.Key{plain, full} {
		if err := s.CreateKey(c, k); err != nil {
			t.Fatalf("CreateKey(%s): %v", k.Name, err)
		}
	}
	for _, want := range []grokgate.Key{plain, full} {
		got, err := s.KeyByID(c, want.ID)
		if err != nil || !equalKeys(got, want) {
			t.Errorf("KeyByID(%s) = %+v, %v; want %+v", want.ID, got, err, want)
		}
		got, err = s.KeyByHash(c, want.Hash)
		if err != nil || !equalKeys(got, want) {
			t.Errorf("KeyByHash(%s) = %+v, %v; want %+v", want.ID, got, err, want)
		}
		if got.CreatedAt.Location() != time.UTC {
			t.Errorf("CreatedAt is in %v, want UTC", got.CreatedAt.Location())
		}
	}
	list, err := s.ListKeys(c)
	if err != nil || len(list) != 2 || !equalKeys(list[0], plain) || !equalKeys(list[1], full) {
		t.Errorf("ListKeys = %+v, %v; want plain then full (oldest first)", list, err)
	}
	if _, err := s.KeyByID(c, "key_missing"); !errors.Is(err, grokgate.ErrNotFound) {
		t.Errorf("KeyByID(missing) error = %v, want ErrNotFound", err)
	}
	if _, err := s.KeyByHash(c, [32]byte{1}); !errors.Is(err, grokgate.ErrNotFound) {
		t.Errorf("KeyByHash(missing) error = %v, want ErrNotFound", err)
	}
}

func testKeysUnique(t *testing.T, s Store) {
	c := ctx(t)
	k := mintKey(t, "a", grokgate.RoleUser)
	if err := s.CreateKey(c, k); err != nil {
		t.Fatal(err)
	}
	sameID := mintKey(t, "b", grokgate.RoleUser)
	sameID.ID = k.ID
	if err := s.CreateKey(c, sameID); err == nil {
		t.Error("a second key with the same id was accepted")
	}
	sameHash := mintKey(t, "c", grokgate.RoleUser)
	sameHash.Hash = k.Hash
	if err := s.CreateKey(c, sameHash); err == nil {
		t.Error("a second key with the same hash was accepted")
	}
	if list, _ := s.ListKeys(c); len(list) != 1 {
		t.Errorf("%d keys stored, want 1", len(list))
	}
}

func testUpdateKey(t *testing.T, s Store) {
	c := ctx(t)
	k := mintKey(t, "before", grokgate.RoleUser)
	k.AllowedModels = []string{"grok-4.3"}
	if err := s.CreateKey(c, k); err != nil {
		t.Fatal(err)
	}
	name := "after"
	got, err := s.UpdateKey(c, k.ID, grokgate.KeyUpdate{Name: &name})
	want := k
	want.Name = name
	if err != nil || !equalKeys(got, want) {
		t.Fatalf("rename: %+v, %v; want %+v", got, err, want)
	}
	models := []string{"grok-3", "grok-4.5"}
	exp := base.Add(time.Hour)
	got, err = s.UpdateKey(c, k.ID, grokgate.KeyUpdate{AllowedModels: &models, ExpiresAt: &exp})
	want.AllowedModels, want.ExpiresAt = models, exp
	if err != nil || !equalKeys(got, want) {
		t.Fatalf("models+expiry: %+v, %v; want %+v", got, err, want)
	}
	none := []string{}
	var never time.Time
	got, err = s.UpdateKey(c, k.ID, grokgate.KeyUpdate{AllowedModels: &none, ExpiresAt: &never})
	want.AllowedModels, want.ExpiresAt = nil, time.Time{}
	if err != nil || !equalKeys(got, want) {
		t.Fatalf("clear: %+v, %v; want %+v", got, err, want)
	}
	if stored, _ := s.KeyByHash(c, k.Hash); !equalKeys(stored, want) {
		t.Errorf("stored %+v, want %+v", stored, want)
	}
	if _, err := s.UpdateKey(c, "key_missing", grokgate.KeyUpdate{Name: &name}); !errors.Is(err, grokgate.ErrNotFound) {
		t.Errorf("UpdateKey(missing) error = %v, want ErrNotFound", err)
	}
}

// testKeyLimits: limits are stored with the key; an update changes only the
// limits it names and leaves the other fields alone.
func testKeyLimits(t *testing.T, s Store) {
	c := ctx(t)
	k := mintKey(t, "limited", grokgate.RoleUser)
	k.Limits = grokgate.Limits{RPM: 60, TPM: 100000, MaxStreams: 2}
	if err := s.CreateKey(c, k); err != nil {
		t.Fatal(err)
	}
	rpm, day, month := int64(120), int64(1<<40), grokgate.NoLimit
	got, err := s.UpdateKey(c, k.ID, grokgate.KeyUpdate{Limits: grokgate.LimitsUpdate{RPM: &rpm, BudgetTicksPerDay: &day, BudgetTicksPerMonth: &month}})
	want := k
	want.Limits = grokgate.Limits{RPM: 120, TPM: 100000, MaxStreams: 2, BudgetTicksPerDay: 1 << 40, BudgetTicksPerMonth: -1}
	if err != nil || !equalKeys(got, want) {
		t.Fatalf("update limits: %+v, %v; want %+v", got.Limits, err, want.Limits)
	}
	name := "renamed"
	got, err = s.UpdateKey(c, k.ID, grokgate.KeyUpdate{Name: &name})
	want.Name = name
	if err != nil || !equalKeys(got, want) {
		t.Fatalf("rename kept limits? %+v, %v; want %+v", got.Limits, err, want.Limits)
	}
	zero := int64(0)
	got, err = s.UpdateKey(c, k.ID, grokgate.KeyUpdate{Limits: grokgate.LimitsUpdate{TPM: &zero}})
	want.Limits.TPM = 0
	if err != nil || !equalKeys(got, want) {
		t.Fatalf("back to default: %+v, %v; want %+v", got.Limits, err, want.Limits)
	}
	for _, get := range []func() (grokgate.Key, error){
		func() (grokgate.Key, error) { return s.KeyByID(c, k.ID) },
		func() (grokgate.Key, error) { return s.KeyByHash(c, k.Hash) },
	} {
		if stored, err := get(); err != nil || stored.Limits != want.Limits {
			t.Errorf("stored limits %+v, %v; want %+v", stored.Limits, err, want.Limits)
		}
	}
}

func testRevokeKey(t *testing.T, s Store) {
	c := ctx(t)
	k := mintKey(t, "r", grokgate.RoleUser)
	if err := s.CreateKey(c, k); err != nil {
		t.Fatal(err)
	}
	first := base.Add(time.Minute)
	if err := s.RevokeKey(c, k.ID, first); err != nil {
		t.Fatal(err)
	}
	if err := s.RevokeKey(c, k.ID, first.Add(time.Hour)); err != nil {
		t.Fatalf("revoking twice: %v", err)
	}
	got, err := s.KeyByID(c, k.ID)
	if err != nil || !got.RevokedAt.Equal(first) {
		t.Errorf("RevokedAt = %v, %v; want the first revocation %v", got.RevokedAt, err, first)
	}
	if err := s.RevokeKey(c, "key_missing", first); !errors.Is(err, grokgate.ErrNotFound) {
		t.Errorf("RevokeKey(missing) error = %v, want ErrNotFound", err)
	}
}

// testGeneration checks that every key change moves the counter other
// replicas poll, and that reads do not.
func testGeneration(t *testing.T, s Store) {
	c := ctx(t)
	last, err := s.KeysGeneration(c)
	if err != nil {
		t.Fatal(err)
	}
	step := func(what string, fn func() error) {
		t.Helper()
		if err := fn(); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		g, err := s.KeysGeneration(c)
		if err != nil {
			t.Fatal(err)
		}
		if g == last {
			t.Errorf("%s did not change the keys generation (still %d)", what, g)
		}
		last = g
	}
	k := mintKey(t, "g", grokgate.RoleUser)
	step("CreateKey", func() error { return s.CreateKey(c, k) })
	name := "g2"
	step("UpdateKey", func() error { _, err := s.UpdateKey(c, k.ID, grokgate.KeyUpdate{Name: &name}); return err })
	step("RevokeKey", func() error { return s.RevokeKey(c, k.ID, base) })
	s.ListKeys(c)
	s.InsertUsage(c, []grokgate.Record{record(1, base, "key_x", "grok-4.3")})
	if g, _ := s.KeysGeneration(c); g != last {
		t.Errorf("reads and usage moved the keys generation from %d to %d", last, g)
	}
}

// testKeysChangedSince checks the incremental read replicas poll: every key
// at first, then exactly the keys each change touched, in order, and
// nothing after reads and usage.
func testKeysChangedSince(t *testing.T, s Store) {
	c := ctx(t)
	if got, last, err := s.KeysChangedSince(c, -1); err != nil || len(got) != 0 || last != 0 {
		t.Fatalf("empty store: %d keys, last %d, %v; want none, 0", len(got), last, err)
	}
	a, b := mintKey(t, "a", grokgate.RoleUser), mintKey(t, "b", grokgate.RoleAdmin)
	for _, k := range []grokgate.Key{a, b} {
		if err := s.CreateKey(c, k); err != nil {
			t.Fatal(err)
		}
	}
	all, last, err := s.KeysChangedSince(c, -1)
	if err != nil || len(all) != 2 || !equalKeys(all[0], a) || !equalKeys(all[1], b) || last <= 0 {
		t.Fatalf("all keys: %+v, last %d, %v", all, last, err)
	}
	if got, l, err := s.KeysChangedSince(c, last); err != nil || len(got) != 0 || l != last {
		t.Fatalf("nothing changed: %d keys, last %d (was %d), %v", len(got), l, last, err)
	}
	// Each change brings exactly its key, with the change in it.
	expect := func(what string, want grokgate.Key) {
		t.Helper()
		got, l, err := s.KeysChangedSince(c, last)
		if err != nil || len(got) != 1 || !equalKeys(got[0], want) || l <= last {
			t.Fatalf("after %s: %+v, last %d (was %d), %v; want %+v", what, got, l, last, err, want)
		}
		last = l
	}
	name := "a2"
	upd, err := s.UpdateKey(c, a.ID, grokgate.KeyUpdate{Name: &name})
	if err != nil {
		t.Fatal(err)
	}
	expect("UpdateKey", upd)
	if err := s.RevokeKey(c, b.ID, base); err != nil {
		t.Fatal(err)
	}
	b.RevokedAt = base
	expect("RevokeKey", b)
	d := mintKey(t, "d", grokgate.RoleUser)
	if err := s.CreateKey(c, d); err != nil {
		t.Fatal(err)
	}
	expect("CreateKey", d)
	// Several changes since: each key once, in the order of its last change.
	mark := last
	name = "a3"
	s.UpdateKey(c, a.ID, grokgate.KeyUpdate{Name: &name})
	s.RevokeKey(c, d.ID, base)
	name = "a4"
	s.UpdateKey(c, a.ID, grokgate.KeyUpdate{Name: &name})
	got, _, err := s.KeysChangedSince(c, mark)
	if err != nil || len(got) != 2 || got[0].ID != d.ID || got[1].ID != a.ID || got[1].Name != "a4" {
		t.Fatalf("three changes of two keys: %+v, %v", got, err)
	}
	// Reads, failed changes and usage change nothing.
	_, last, _ = s.KeysChangedSince(c, -1)
	s.ListKeys(c)
	s.RevokeKey(c, "key_missing", base)
	s.InsertUsage(c, []grokgate.Record{record(1, base, a.ID, "grok-4.3")})
	if got, l, err := s.KeysChangedSince(c, last); err != nil || len(got) != 0 || l != last {
		t.Errorf("reads and usage: %d keys, last %d (was %d), %v", len(got), l, last, err)
	}
}

// testCreateFirstKey checks that of callers racing on an empty store
// exactly one creates its key, and that none does once a key exists.
func testCreateFirstKey(t *testing.T, s Store) {
	c := ctx(t)
	const n = 8
	var wg sync.WaitGroup
	created := make([]bool, n)
	errs := make([]error, n)
	cands := make([]grokgate.Key, n)
	for i := range n {
		cands[i] = mintKey(t, fmt.Sprint("admin", i), grokgate.RoleAdmin)
		wg.Add(1)
		go func() {
			defer wg.Done()
			created[i], errs[i] = s.CreateFirstKey(c, cands[i])
		}()
	}
	wg.Wait()
	winners := 0
	var won grokgate.Key
	for i := range n {
		if errs[i] != nil {
			t.Errorf("caller %d: %v", i, errs[i])
		}
		if created[i] {
			winners++
			won = cands[i]
		}
	}
	list, err := s.ListKeys(c)
	if winners != 1 || err != nil || len(list) != 1 || !equalKeys(list[0], won) {
		t.Fatalf("%d callers created the first key; the store holds %+v (%v)", winners, list, err)
	}
	if got, _, _ := s.KeysChangedSince(c, 0); len(got) != 1 {
		t.Errorf("the first key is not a key change: %+v", got)
	}
	if ok, err := s.CreateFirstKey(c, mintKey(t, "late", grokgate.RoleAdmin)); ok || err != nil {
		t.Errorf("CreateFirstKey on a store with a key = %v, %v; want false, nil", ok, err)
	}
}

// record returns a record with every field set, derived from n.
func record(n int, at time.Time, key, model string) grokgate.Record {
	return grokgate.Record{
		Time:             at,
		RequestID:        fmt.Sprintf("req_%06d", n),
		KeyID:            key,
		Route:            "/chat/completions",
		RequestedModel:   model + "-alias",
		Model:            model,
		Stream:           n%2 == 0,
		Fallback:         n%3 == 0,
		Status:           200,
		Outcome:          grokgate.OutcomeCompleted,
		PromptTokens:     int64(100 + n),
		CompletionTokens: int64(10 + n),
		ReasoningTokens:  int64(n % 7),
		CachedTokens:     int64(n % 5),
		CostTicks:        int64(1_000_000 + n),
		Latency:          time.Duration(1500+n) * time.Microsecond,
		TTFB:             time.Duration(300+n) * time.Microsecond,
		UpstreamID:       fmt.Sprintf("up-%d", n),
		// Each kind gets its own value, so columns mixed up show.
		ToolCalls: grokgate.ToolCalls{WebSearch: int64(n % 3), XSearch: int64(10 + n%4), CodeInterpreter: int64(20 + n%5),
			FileSearch: int64(30 + n%6), MCP: int64(40 + n%7), DocumentSearch: int64(50 + n%8)},
		Count: 1,
	}
}

func testUsageRoundTrip(t *testing.T, s Store) {
	c := ctx(t)
	a := record(1, base, "key_a", "grok-4.3")
	b := record(2, base.Add(time.Millisecond), "key_b", "")
	b.Outcome, b.Status, b.Estimated, b.CostTicks, b.UpstreamID, b.TTFB = grokgate.OutcomeClientCanceled, 499, true, 0, "", 0
	b.RequestedModel = "grok-ünïcode"
	b.Count = 12
	if err := s.InsertUsage(c, []grokgate.Record{a, b}); err != nil {
		t.Fatal(err)
	}
	if err := s.InsertUsage(c, nil); err != nil {
		t.Errorf("InsertUsage(nil): %v", err)
	}
	got, err := s.UsageRecords(c, time.Time{}, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("%d records, want 2", len(got))
	}
	for i, want := range []grokgate.Record{a, b} {
		g := got[i]
		if !g.Time.Equal(want.Time) || g.Time.Location() != time.UTC {
			t.Errorf("record %d time %v, want %v UTC", i, g.Time, want.Time)
		}
		g.Time = want.Time
		if g != want {
			t.Errorf("record %d:\n got %+v\nwant %+v", i, g, want)
		}
	}
	// Bounds: from inclusive, to exclusive.
	got, err = s.UsageRecords(c, base.Add(time.Millisecond), time.Time{})
	if err != nil || len(got) != 1 || got[0].RequestID != b.RequestID {
		t.Errorf("from bound: %v, %v", got, err)
	}
	got, err = s.UsageRecords(c, time.Time{}, base.Add(time.Millisecond))
	if err != nil || len(got) != 1 || got[0].RequestID != a.RequestID {
		t.Errorf("to bound: %v, %v", got, err)
	}
}

// testUsageIdempotent: a batch retried after an ambiguous failure must not
// count a request twice.
func testUsageIdempotent(t *testing.T, s Store) {
	c := ctx(t)
	r1, r2 := record(1, base, "k", "m"), record(2, base, "k", "m")
	if err := s.InsertUsage(c, []grokgate.Record{r1, r2}); err != nil {
		t.Fatal(err)
	}
	dup := r1
	dup.PromptTokens = 999999
	if err := s.InsertUsage(c, []grokgate.Record{r2, dup, record(3, base, "k", "m"), record(3, base, "k", "m")}); err != nil {
		t.Fatalf("re-inserting: %v", err)
	}
	got, err := s.UsageRecords(c, time.Time{}, time.Time{})
	if err != nil || len(got) != 3 {
		t.Fatalf("%d records, %v; want 3", len(got), err)
	}
	for _, g := range got {
		if g.RequestID == r1.RequestID && g.PromptTokens != r1.PromptTokens {
			t.Errorf("a duplicate overwrote the first record: prompt %d", g.PromptTokens)
		}
	}
}

func testUsageConcurrent(t *testing.T, s Store) {
	c := ctx(t)
	const writers, batches, per = 4, 5, 40
	var wg sync.WaitGroup
	errs := make(chan error, writers*batches)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range batches {
				recs := make([]grokgate.Record, per)
				for i := range recs {
					recs[i] = record(((w*batches)+b)*per+i, base, "k", "m")
				}
				if err := s.InsertUsage(c, recs); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("concurrent InsertUsage: %v", err)
	}
	sum, err := s.UsageSummary(c, grokgate.UsageQuery{GroupBy: grokgate.GroupByKey})
	if err != nil || len(sum) != 1 || sum[0].Requests != writers*batches*per {
		t.Errorf("summary %+v, %v; want %d requests", sum, err, writers*batches*per)
	}
}

// batchSizes are the batch sizes the suite writes: either side of the chunk
// sizes a store may split a batch into (SQLite: up to 32 rows a statement,
// the rest in powers of two), and the recorder's largest batch.
var batchSizes = []int{1, 2, 3, 15, 16, 17, 31, 32, 33, 63, 64, 65, 67, 131, 256}

// checkUsage fails t unless the ledger holds exactly want, field for field.
func checkUsage(t *testing.T, s Store, want []grokgate.Record) {
	t.Helper()
	got, err := s.UsageRecords(ctx(t), time.Time{}, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	want = append([]grokgate.Record(nil), want...)
	sort.Slice(want, func(i, j int) bool {
		if !want[i].Time.Equal(want[j].Time) {
			return want[i].Time.Before(want[j].Time)
		}
		return want[i].RequestID < want[j].RequestID
	})
	if len(got) != len(want) {
		t.Fatalf("%d records stored, want %d", len(got), len(want))
	}
	for i := range want {
		g := got[i]
		if g.Time.Equal(want[i].Time) {
			g.Time = want[i].Time
		}
		if g != want[i] {
			t.Fatalf("record %d:\n got %+v\nwant %+v", i, got[i], want[i])
		}
	}
}

// testUsageBatchSizes: every record of a batch is stored, whatever its size.
func testUsageBatchSizes(t *testing.T, s Store) {
	c := ctx(t)
	var all []grokgate.Record
	for _, size := range batchSizes {
		batch := make([]grokgate.Record, size)
		for i := range batch {
			n := len(all) + i
			batch[i] = record(n, base.Add(time.Duration(n)*time.Millisecond), fmt.Sprintf("key_%d", size), "grok-4.3")
		}
		if err := s.InsertUsage(c, batch); err != nil {
			t.Fatalf("batch of %d: %v", size, err)
		}
		all = append(all, batch...)
		checkUsage(t, s, all)
	}
}

// testUsageBatchDuplicates: in a batch spanning several chunks, a record
// whose request id is stored, or came earlier in the batch (in the same
// chunk or another), is skipped: the first one written wins.
func testUsageBatchDuplicates(t *testing.T, s Store) {
	c := ctx(t)
	at := func(n int) time.Time { return base.Add(time.Duration(n) * time.Millisecond) }
	var stored []grokgate.Record
	for n := range 40 {
		stored = append(stored, record(n, at(n), "key_a", "grok-4.3"))
	}
	if err := s.InsertUsage(c, stored); err != nil {
		t.Fatal(err)
	}
	// other is a different record under request n's id.
	other := func(n int) grokgate.Record {
		r := record(n, at(n), "key_b", "grok-3")
		r.PromptTokens, r.Outcome, r.Estimated = 999999, grokgate.OutcomeUpstreamError, true
		return r
	}
	var batch []grokgate.Record
	for n := 30; n < 130; n++ { // 30..39 are stored
		batch = append(batch, record(n, at(n), "key_c", "grok-4.5"))
	}
	batch[0] = other(30)
	batch = append(batch,
		other(35),                               // stored
		other(40),                               // first in this batch at 10
		other(41),                               // ... at 11
		other(129),                              // ... at 99
		record(200, at(200), "key_c", "grok-4"), // new
		other(200),                              // just before
		other(5),                                // stored, from another chunk
	)
	batch = append(batch[:50], append([]grokgate.Record{other(45), other(31)}, batch[50:]...)...)
	if len(batch) <= 100 {
		t.Fatalf("the batch should exceed 100 records, has %d", len(batch))
	}
	if err := s.InsertUsage(c, batch); err != nil {
		t.Fatalf("batch with duplicates: %v", err)
	}
	want := append([]grokgate.Record(nil), stored...)
	seen := map[string]bool{}
	for _, r := range stored {
		seen[r.RequestID] = true
	}
	for _, r := range batch {
		if !seen[r.RequestID] {
			seen[r.RequestID] = true
			want = append(want, r)
		}
	}
	checkUsage(t, s, want)
	// Retrying the same batch changes nothing.
	if err := s.InsertUsage(c, batch); err != nil {
		t.Fatalf("retried batch: %v", err)
	}
	checkUsage(t, s, want)
}

// testUsageBatchAtomic: a batch that fails on one record stores none of
// its records, wherever that record is; the batch without it then stores.
func testUsageBatchAtomic(t *testing.T, s Store) {
	p, ok := s.(UsagePoisoner)
	if !ok {
		t.Skip("the store's test does not implement storetest.UsagePoisoner")
	}
	c := ctx(t)
	const poison = "req_poison"
	if err := p.PoisonUsage(c, poison); err != nil {
		t.Fatal(err)
	}
	at := func(n int) time.Time { return base.Add(time.Duration(n) * time.Millisecond) }
	var stored []grokgate.Record
	for n := range 10 {
		stored = append(stored, record(n, at(n), "key_a", "grok-4.3"))
	}
	if err := s.InsertUsage(c, stored); err != nil {
		t.Fatal(err)
	}
	bad := record(1000, at(1000), "key_a", "grok-4.3")
	bad.RequestID = poison
	next := 10
	for _, size := range []int{1, 2, 33, 67, 131} {
		for _, pos := range []int{0, size / 2, size - 1} {
			batch := []grokgate.Record{}
			for range size - 1 {
				batch = append(batch, record(next, at(next), "key_b", "grok-4.3"))
				next++
			}
			batch = append(batch[:pos], append([]grokgate.Record{bad}, batch[pos:]...)...)
			batch = append(batch, stored[pos%len(stored)]) // a stored one, skipped
			if err := s.InsertUsage(c, batch); err == nil {
				t.Fatalf("a batch of %d with the failing record at %d was stored", len(batch), pos)
			}
			checkUsage(t, s, stored)
		}
	}
	// A batch without the failing record goes in whole.
	var batch []grokgate.Record
	for range 67 {
		batch = append(batch, record(next, at(next), "key_b", "grok-4.3"))
		next++
	}
	if err := s.InsertUsage(c, batch); err != nil {
		t.Fatal(err)
	}
	checkUsage(t, s, append(stored, batch...))
}

// testUsagePoisonedValues: a batch holding records whose values a database
// may refuse (a NUL byte, invalid UTF-8, a 10 KB model name) stores every
// other record; each poisoned one is stored or reported in a
// *grokgate.RejectedRecordsError, never lost in silence, and a retry of the
// batch counts nothing twice.
func testUsagePoisonedValues(t *testing.T, s Store) {
	c := ctx(t)
	at := func(n int) time.Time { return base.Add(time.Duration(n) * time.Millisecond) }
	var batch []grokgate.Record
	for n := range 40 {
		batch = append(batch, record(n, at(n), "key_victim", "grok-4.3"))
	}
	poison := map[string]bool{}
	for i, mutate := range []func(r *grokgate.Record){
		func(r *grokgate.Record) { r.RequestedModel = "grok\x00-4" },
		func(r *grokgate.Record) { r.RequestedModel = "grok-\xff\xfe" },
		func(r *grokgate.Record) { r.RequestedModel = strings.Repeat("m", 10<<10) },
		func(r *grokgate.Record) { r.Model, r.UpstreamID = "\x00", "\xc3\x28" },
	} {
		r := record(100+i, at(100+i), "key_attacker", "grok-4.3")
		mutate(&r)
		poison[r.RequestID] = true
		pos := []int{0, 13, 27, len(batch)}[i]
		batch = append(batch[:pos], append([]grokgate.Record{r}, batch[pos:]...)...)
	}
	for attempt := range 2 {
		err := s.InsertUsage(c, batch)
		rejected := map[string]bool{}
		if err != nil {
			var rej *grokgate.RejectedRecordsError
			if !errors.As(err, &rej) {
				t.Fatalf("attempt %d: %v", attempt, err)
			}
			for _, x := range rej.Rejected {
				if !poison[x.Record.RequestID] || x.Reason == "" {
					t.Fatalf("attempt %d: %s rejected (%q); only poisoned records may be", attempt, x.Record.RequestID, x.Reason)
				}
				rejected[x.Record.RequestID] = true
			}
		}
		got, err := s.UsageRecords(c, time.Time{}, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		stored := map[string]int{}
		for _, r := range got {
			stored[r.RequestID]++
		}
		for _, r := range batch {
			switch {
			case stored[r.RequestID] > 1:
				t.Fatalf("attempt %d: %s stored %d times", attempt, r.RequestID, stored[r.RequestID])
			case !poison[r.RequestID] && stored[r.RequestID] != 1:
				t.Fatalf("attempt %d: %s, a good record, was not stored beside the poisoned ones", attempt, r.RequestID)
			case poison[r.RequestID] && stored[r.RequestID] == rejectedInt(rejected[r.RequestID]):
				t.Fatalf("attempt %d: poisoned %s stored %d times, rejected %v: it must be one or the other", attempt, r.RequestID, stored[r.RequestID], rejected[r.RequestID])
			}
		}
		if len(got) != len(batch)-len(rejected) {
			t.Fatalf("attempt %d: %d records stored, want %d", attempt, len(got), len(batch)-len(rejected))
		}
	}
}

func rejectedInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func testUsageSummary(t *testing.T, s Store) {
	c := ctx(t)
	day1 := time.Date(2026, 11, 3, 0, 0, 0, 0, time.UTC)
	day2 := day1.Add(24 * time.Hour)
	var recs []grokgate.Record
	add := func(at time.Time, key, model, requested string, mut func(*grokgate.Record)) {
		r := record(len(recs)+1, at, key, model)
		r.RequestedModel = requested
		if mut != nil {
			mut(&r)
		}
		recs = append(recs, r)
	}
	add(day1, "key_a", "grok-4.3", "grok-4-1-fast-reasoning", nil)
	add(day1.Add(23*time.Hour+59*time.Minute), "key_a", "grok-4.3", "grok-4.3", nil)
	add(day1.Add(time.Hour), "key_b", "grok-3", "grok-3", func(r *grokgate.Record) { r.Outcome = grokgate.OutcomeUpstreamError })
	add(day2, "key_a", "", "grok-4.5", func(r *grokgate.Record) {
		r.Estimated, r.Outcome, r.ToolCalls = true, grokgate.OutcomeClientCanceled, grokgate.ToolCalls{}
	})
	add(day2.Add(time.Second), "key_b", "grok-4.3", "grok-4.3", nil)
	// A minute's refused requests of a key, kept as one record: it counts
	// as all of them.
	add(day2.Add(time.Minute), "key_a", "", "grok-4.3", func(r *grokgate.Record) {
		*r = grokgate.Record{Time: r.Time, RequestID: r.RequestID, KeyID: r.KeyID, Route: r.Route, RequestedModel: r.RequestedModel,
			Status: 429, Outcome: grokgate.OutcomeRejected, Count: 37}
	})
	if err := s.InsertUsage(c, recs); err != nil {
		t.Fatal(err)
	}
	// want computes the expected totals from the records themselves.
	want := func(q grokgate.UsageQuery) []grokgate.UsageTotals {
		m := map[string]*grokgate.UsageTotals{}
		for _, r := range recs {
			if (!q.From.IsZero() && r.Time.Before(q.From)) || (!q.To.IsZero() && !r.Time.Before(q.To)) {
				continue
			}
			var g string
			switch q.GroupBy {
			case grokgate.GroupByKey:
				g = r.KeyID
			case grokgate.GroupByModel:
				g = r.Model
				if g == "" {
					g = r.RequestedModel
				}
			case grokgate.GroupByDay:
				g = r.Time.UTC().Format(time.DateOnly)
			}
			u := m[g]
			if u == nil {
				u = &grokgate.UsageTotals{Group: g}
				m[g] = u
			}
			u.Requests += r.Count
			if r.Outcome == grokgate.OutcomeCompleted {
				u.Completed++
			}
			if r.Estimated {
				u.Estimated++
			}
			u.PromptTokens += r.PromptTokens
			u.CompletionTokens += r.CompletionTokens
			u.ReasoningTokens += r.ReasoningTokens
			u.CachedTokens += r.CachedTokens
			u.CostTicks += r.CostTicks
			u.ToolCalls = u.ToolCalls.Add(r.ToolCalls)
		}
		out := []grokgate.UsageTotals{}
		for _, u := range m {
			out = append(out, *u)
		}
		sort.Slice(out, func(i, j int) bool { return out[i].Group < out[j].Group })
		return out
	}
	for _, q := range []grokgate.UsageQuery{
		{GroupBy: grokgate.GroupByKey},
		{GroupBy: grokgate.GroupByModel},
		{GroupBy: grokgate.GroupByDay},
		{GroupBy: grokgate.GroupByDay, From: day1.Add(time.Hour)},
		{GroupBy: grokgate.GroupByKey, To: day2},
		{GroupBy: grokgate.GroupByModel, From: day1.Add(time.Hour), To: day2.Add(time.Second)},
	} {
		got, err := s.UsageSummary(c, q)
		if err != nil {
			t.Errorf("%+v: %v", q, err)
			continue
		}
		if w := want(q); !reflect.DeepEqual(got, w) {
			t.Errorf("%+v:\n got %+v\nwant %+v", q, got, w)
		}
	}
	if groups := want(grokgate.UsageQuery{GroupBy: grokgate.GroupByDay}); len(groups) != 2 {
		t.Fatalf("the fixture should span 2 days, spans %d", len(groups))
	}
}

func testUsageSummaryEmpty(t *testing.T, s Store) {
	got, err := s.UsageSummary(ctx(t), grokgate.UsageQuery{GroupBy: grokgate.GroupByDay})
	if err != nil || got == nil || len(got) != 0 {
		t.Errorf("empty ledger: %#v, %v; want an empty, non-nil slice", got, err)
	}
}

// testKeyAllowedTools: a key's server-side tool list is stored with it,
// changed only by an update that names it, and cleared by an empty list.
func testKeyAllowedTools(t *testing.T, s Store) {
	c := ctx(t)
	k := mintKey(t, "tools", grokgate.RoleUser)
	k.AllowedModels = []string{"grok-4.3"}
	k.AllowedTools = []string{"web_search"}
	if err := s.CreateKey(c, k); err != nil {
		t.Fatal(err)
	}
	plain := mintKey(t, "every tool", grokgate.RoleUser)
	plain.CreatedAt = base.Add(time.Second)
	if err := s.CreateKey(c, plain); err != nil {
		t.Fatal(err)
	}
	check := func(what string, want grokgate.Key) {
		t.Helper()
		for _, get := range []func() (grokgate.Key, error){
			func() (grokgate.Key, error) { return s.KeyByID(c, want.ID) },
			func() (grokgate.Key, error) { return s.KeyByHash(c, want.Hash) },
		} {
			if got, err := get(); err != nil || !equalKeys(got, want) {
				t.Errorf("%s: stored %+v, %v; want %+v", what, got, err, want)
			} else if len(want.AllowedTools) == 0 && got.AllowedTools != nil {
				t.Errorf("%s: AllowedTools = %#v, want nil for every tool", what, got.AllowedTools)
			}
		}
		list, err := s.ListKeys(c)
		if err != nil {
			t.Fatal(err)
		}
		for _, got := range list {
			if got.ID == want.ID && !equalKeys(got, want) {
				t.Errorf("%s: listed %+v; want %+v", what, got, want)
			}
		}
	}
	check("created", k)
	check("created without tools", plain)

	tools := []string{"code_interpreter", "mcp", "x_search"}
	got, err := s.UpdateKey(c, k.ID, grokgate.KeyUpdate{AllowedTools: &tools})
	want := k
	want.AllowedTools = tools
	if err != nil || !equalKeys(got, want) {
		t.Fatalf("set tools: %+v, %v; want %+v", got, err, want)
	}
	check("tools set", want)
	models := []string{"grok-3"}
	got, err = s.UpdateKey(c, k.ID, grokgate.KeyUpdate{AllowedModels: &models})
	want.AllowedModels = models
	if err != nil || !equalKeys(got, want) {
		t.Fatalf("changing the models kept the tools? %+v, %v; want %+v", got, err, want)
	}
	check("models changed", want)
	none := []string{}
	got, err = s.UpdateKey(c, k.ID, grokgate.KeyUpdate{AllowedTools: &none})
	want.AllowedTools = nil
	if err != nil || !equalKeys(got, want) || got.AllowedTools != nil {
		t.Fatalf("clear tools: %+v, %v; want %+v", got, err, want)
	}
	check("tools cleared", want)
	if !got.AllowsTool("file_search") {
		t.Error("a key with no tool list should allow every tool")
	}
	check("untouched", plain)
}

// testUsageCountZero: a record whose Count is unset stands for one request,
// as every record did before records had a count.
func testUsageCountZero(t *testing.T, s Store) {
	c := ctx(t)
	r := record(1, base, "key_a", "grok-4.3")
	r.Count = 0
	many := record(2, base, "key_a", "grok-4.3")
	many.Count = 1000
	if err := s.InsertUsage(c, []grokgate.Record{r, many}); err != nil {
		t.Fatal(err)
	}
	got, err := s.UsageRecords(c, time.Time{}, time.Time{})
	if err != nil || len(got) != 2 || got[0].Count != 1 || got[1].Count != 1000 {
		t.Fatalf("records %+v, %v; want counts 1 and 1000", got, err)
	}
	sum, err := s.UsageSummary(c, grokgate.UsageQuery{GroupBy: grokgate.GroupByKey})
	if err != nil || len(sum) != 1 || sum[0].Requests != 1001 || sum[0].Completed != 2 {
		t.Errorf("summary %+v, %v; want 1001 requests, 2 completed", sum, err)
	}
}

// testUsageToolCalls: the server-side tool calls of each kind are stored
// with their record and summed per group, large counts included; records
// without any read back as zero.
func testUsageToolCalls(t *testing.T, s Store) {
	c := ctx(t)
	a := record(1, base, "key_a", "grok-4.3")
	a.Route = "/responses"
	a.ToolCalls = grokgate.ToolCalls{WebSearch: 3, XSearch: 1 << 40, CodeInterpreter: 2, FileSearch: 5, MCP: 7, DocumentSearch: 11}
	b := record(2, base.Add(time.Second), "key_a", "grok-4.3")
	b.Route = "/responses"
	b.ToolCalls = grokgate.ToolCalls{WebSearch: 1, MCP: 1}
	chat := record(3, base.Add(2*time.Second), "key_a", "grok-4.3")
	chat.ToolCalls = grokgate.ToolCalls{}
	other := record(4, base.Add(3*time.Second), "key_b", "grok-4.3")
	other.ToolCalls = grokgate.ToolCalls{DocumentSearch: 9}
	if err := s.InsertUsage(c, []grokgate.Record{a, b, chat, other}); err != nil {
		t.Fatal(err)
	}
	checkUsage(t, s, []grokgate.Record{a, b, chat, other})
	sum, err := s.UsageSummary(c, grokgate.UsageQuery{GroupBy: grokgate.GroupByKey})
	if err != nil || len(sum) != 2 {
		t.Fatalf("summary %+v, %v; want two keys", sum, err)
	}
	want := grokgate.ToolCalls{WebSearch: 4, XSearch: 1 << 40, CodeInterpreter: 2, FileSearch: 5, MCP: 8, DocumentSearch: 11}
	if sum[0].Group != "key_a" || sum[0].ToolCalls != want || sum[0].ToolCalls.Total() != 30+(1<<40) {
		t.Errorf("key_a: %+v; want tool calls %+v", sum[0], want)
	}
	if sum[1].Group != "key_b" || sum[1].ToolCalls != (grokgate.ToolCalls{DocumentSearch: 9}) {
		t.Errorf("key_b: %+v; want 9 document searches", sum[1])
	}
	sum, err = s.UsageSummary(c, grokgate.UsageQuery{GroupBy: grokgate.GroupByModel, From: base.Add(time.Second), To: base.Add(3 * time.Second)})
	if err != nil || len(sum) != 1 || sum[0].ToolCalls != b.ToolCalls {
		t.Errorf("summary of b and chat: %+v, %v; want tool calls %+v", sum, err, b.ToolCalls)
	}
}

// owner is a response owner record created at base plus d.
func owner(id, key string, d time.Duration) grokgate.ResponseOwner {
	return grokgate.ResponseOwner{ResponseID: id, KeyID: key, CreatedAt: base.Add(d)}
}

// checkOwner fails t unless id is owned as want says at time now.
func checkOwner(t *testing.T, s Store, want grokgate.ResponseOwner, now time.Time) {
	t.Helper()
	got, err := s.ResponseOwner(ctx(t), want.ResponseID, now)
	if err != nil || got != want || got.CreatedAt.Location() != time.UTC {
		t.Errorf("ResponseOwner(%s) = %+v, %v; want %+v (UTC)", want.ResponseID, got, err, want)
	}
}

// checkNoOwner fails t unless id has no owner at time now.
func checkNoOwner(t *testing.T, s Store, id string, now time.Time) {
	t.Helper()
	if got, err := s.ResponseOwner(ctx(t), id, now); !errors.Is(err, grokgate.ErrNotFound) {
		t.Errorf("ResponseOwner(%s) = %+v, %v; want ErrNotFound", id, got, err)
	}
}

func testResponseOwnerRoundTrip(t *testing.T, s Store) {
	c := ctx(t)
	a := owner("6f1c2f4e-8d3a-4a57-9c3b-1f2e3d4c5b6a", "key_a", 0)
	b := owner("0b7e5c1d-2a3f-4e6d-8c9b-a1b2c3d4e5f6", "key_b", time.Minute)
	for _, o := range []grokgate.ResponseOwner{a, b} {
		if err := s.RecordResponseOwner(c, o); err != nil {
			t.Fatalf("RecordResponseOwner(%+v): %v", o, err)
		}
	}
	now := base.Add(time.Hour)
	checkOwner(t, s, a, now)
	checkOwner(t, s, b, now)
	checkNoOwner(t, s, "11111111-2222-3333-4444-555555555555", now)
	checkNoOwner(t, s, "", now)
	// A time in another zone is stored as the same instant, read back in UTC.
	z := owner("c0ffee00-0000-4000-8000-000000000000", "key_a", 2*time.Minute)
	zoned := z
	zoned.CreatedAt = z.CreatedAt.In(time.FixedZone("UTC+5", 5*3600))
	if err := s.RecordResponseOwner(c, zoned); err != nil {
		t.Fatal(err)
	}
	checkOwner(t, s, z, now)
	for _, bad := range []grokgate.ResponseOwner{{KeyID: "key_a", CreatedAt: base}, {ResponseID: "r", CreatedAt: base}} {
		if err := s.RecordResponseOwner(c, bad); err == nil {
			t.Errorf("RecordResponseOwner(%+v) accepted a record without a response or key id", bad)
		}
	}
	checkNoOwner(t, s, "r", now)
}

// testResponseOwnerFirstWins: claiming an owned id again, by its owner or by
// another key, is no error and changes nothing, so no key can take over
// another's response.
func testResponseOwnerFirstWins(t *testing.T, s Store) {
	c := ctx(t)
	first := owner("resp-1", "key_a", 0)
	if err := s.RecordResponseOwner(c, first); err != nil {
		t.Fatal(err)
	}
	for _, again := range []grokgate.ResponseOwner{
		owner("resp-1", "key_a", 0),           // the same record, as after a retry
		owner("resp-1", "key_a", time.Minute), // the owner, later
		owner("resp-1", "key_b", 0),           // another key, same time
		owner("resp-1", "key_b", -time.Hour),  // another key, claiming an earlier time
	} {
		if err := s.RecordResponseOwner(c, again); err != nil {
			t.Errorf("RecordResponseOwner(%+v): %v", again, err)
		}
		checkOwner(t, s, first, base.Add(time.Hour))
	}
}

// testResponseOwnerBatch: owners recorded together are each recorded as
// alone would be (an id already owned keeps its owner, the first of two
// claims in one batch wins), and a batch with an invalid owner writes none.
func testResponseOwnerBatch(t *testing.T, s Store) {
	c := ctx(t)
	held := owner("resp-held", "key_a", 0)
	if err := s.RecordResponseOwner(c, held); err != nil {
		t.Fatal(err)
	}
	if err := s.RecordResponseOwner(c); err != nil {
		t.Errorf("an empty batch: %v", err)
	}
	x, y := owner("resp-x", "key_b", time.Minute), owner("resp-y", "key_a", 2*time.Minute)
	if err := s.RecordResponseOwner(c, x, owner("resp-held", "key_b", 0), y, owner("resp-x", "key_a", 0)); err != nil {
		t.Fatal(err)
	}
	now := base.Add(time.Hour)
	for _, want := range []grokgate.ResponseOwner{held, x, y} {
		checkOwner(t, s, want, now)
	}
	if err := s.RecordResponseOwner(c, owner("resp-z", "key_a", 0), grokgate.ResponseOwner{ResponseID: "resp-w", CreatedAt: base}); err == nil {
		t.Error("a batch with an owner without a key id was accepted")
	}
	checkNoOwner(t, s, "resp-z", now)
}

// testResponseOwnerConcurrentClaims: two keys claiming the same ids at once
// (two gateway processes, say) each leave exactly one owner per id, with
// that claim's own time, and later claims do not move it.
func testResponseOwnerConcurrentClaims(t *testing.T, s Store) {
	c := ctx(t)
	const ids, rounds = 40, 3
	claim := func(key string, d time.Duration) <-chan error {
		errs := make(chan error, 1)
		go func() {
			defer close(errs)
			for r := range rounds {
				for i := range ids {
					if err := s.RecordResponseOwner(c, owner(fmt.Sprintf("resp-%d", i), key, d+time.Duration(r)*time.Second)); err != nil {
						errs <- err
						return
					}
				}
			}
		}()
		return errs
	}
	ea, eb := claim("key_a", time.Minute), claim("key_b", time.Hour)
	for _, errs := range []<-chan error{ea, eb} {
		for err := range errs {
			t.Errorf("concurrent RecordResponseOwner: %v", err)
		}
	}
	now := base.Add(2 * time.Hour)
	won := map[string]int{}
	for i := range ids {
		id := fmt.Sprintf("resp-%d", i)
		got, err := s.ResponseOwner(c, id, now)
		if err != nil {
			t.Fatalf("ResponseOwner(%s): %v", id, err)
		}
		// The winner's first claim is the one stored: its own key and time.
		var want grokgate.ResponseOwner
		switch got.KeyID {
		case "key_a":
			want = owner(id, "key_a", time.Minute)
		case "key_b":
			want = owner(id, "key_b", time.Hour)
		default:
			t.Fatalf("ResponseOwner(%s) = %+v, owned by neither claimant", id, got)
		}
		if got != want {
			t.Errorf("ResponseOwner(%s) = %+v, want the winner's first claim %+v", id, got, want)
		}
		won[got.KeyID]++
		// The loser claiming again changes nothing.
		loser := "key_a"
		if got.KeyID == "key_a" {
			loser = "key_b"
		}
		if err := s.RecordResponseOwner(c, owner(id, loser, 0)); err != nil {
			t.Fatal(err)
		}
		checkOwner(t, s, want, now)
	}
	t.Logf("claims won: %v", won)
}

// testResponseOwnerExpiry: an owner is known until exactly ResponseRetention
// after the response was created, and not from that instant on.
func testResponseOwnerExpiry(t *testing.T, s Store) {
	c := ctx(t)
	o := owner("resp-old", "key_a", 0)
	if err := s.RecordResponseOwner(c, o); err != nil {
		t.Fatal(err)
	}
	end := base.Add(grokgate.ResponseRetention)
	checkOwner(t, s, o, base)
	checkOwner(t, s, o, end.Add(-time.Nanosecond))
	checkNoOwner(t, s, o.ResponseID, end)
	checkNoOwner(t, s, o.ResponseID, end.Add(time.Microsecond))
	// Expiry is a reading of the clock, not a deletion: an earlier now
	// still finds it.
	checkOwner(t, s, o, end.Add(-time.Microsecond))
}

func testForgetResponse(t *testing.T, s Store) {
	c := ctx(t)
	gone, kept := owner("resp-gone", "key_a", 0), owner("resp-kept", "key_a", 0)
	for _, o := range []grokgate.ResponseOwner{gone, kept} {
		if err := s.RecordResponseOwner(c, o); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.ForgetResponse(c, gone.ResponseID); err != nil {
		t.Fatalf("ForgetResponse: %v", err)
	}
	now := base.Add(time.Minute)
	checkNoOwner(t, s, gone.ResponseID, now)
	checkOwner(t, s, kept, now)
	for _, id := range []string{gone.ResponseID, "resp-never"} {
		if err := s.ForgetResponse(c, id); err != nil {
			t.Errorf("ForgetResponse(%s), not owned: %v; want no error", id, err)
		}
	}
	checkOwner(t, s, kept, now)
}

// testPruneResponseOwners: pruning deletes exactly the owners created
// before the bound, counts them, and leaves the rest readable.
func testPruneResponseOwners(t *testing.T, s Store) {
	c := ctx(t)
	var all []grokgate.ResponseOwner
	for i, d := range []time.Duration{0, time.Microsecond, time.Second, time.Hour, time.Hour + time.Microsecond, 48 * time.Hour} {
		o := owner(fmt.Sprintf("resp-%d", i), fmt.Sprintf("key_%d", i%2), d)
		if err := s.RecordResponseOwner(c, o); err != nil {
			t.Fatal(err)
		}
		all = append(all, o)
	}
	now := base.Add(72 * time.Hour)
	if n, err := s.PruneResponseOwners(c, base); err != nil || n != 0 {
		t.Errorf("pruning before the oldest: %d, %v; want 0", n, err)
	}
	// Half a microsecond past resp-3's time: it goes, resp-4 stays.
	n, err := s.PruneResponseOwners(c, base.Add(time.Hour+500*time.Nanosecond))
	if err != nil || n != 4 {
		t.Errorf("PruneResponseOwners: %d, %v; want 4", n, err)
	}
	for _, o := range all[:4] {
		checkNoOwner(t, s, o.ResponseID, now)
	}
	for _, o := range all[4:] {
		checkOwner(t, s, o, now)
	}
	if n, err := s.PruneResponseOwners(c, base.Add(time.Hour+time.Microsecond)); err != nil || n != 0 {
		t.Errorf("pruning at resp-4's own time: %d, %v; want 0 (only older ones go)", n, err)
	}
	checkOwner(t, s, all[4], now)
	if n, err := s.PruneResponseOwners(c, now); err != nil || n != 2 {
		t.Errorf("pruning the rest: %d, %v; want 2", n, err)
	}
	checkNoOwner(t, s, all[5].ResponseID, now)
}

// CheckMigrated is for a store's own migration test. That test writes,
// with the schema as it was before server-side tools and response owners,
// a key "key_old" named "old" (allowed models grok-3, 60 RPM, created at
// created) and one usage record "req_old" (10 prompt tokens, 500 cost
// ticks), then opens it with the current code as s. CheckMigrated checks
// that both are intact, that the key allows every tool and the record made
// no tool calls and stands for one request, and that response owners can
// be recorded.
func CheckMigrated(t *testing.T, s Store, created time.Time) {
	t.Helper()
	c := ctx(t)
	k, err := s.KeyByID(c, "key_old")
	if err != nil || k.Name != "old" || len(k.AllowedModels) != 1 || k.AllowedModels[0] != "grok-3" || k.AllowedTools != nil ||
		k.Limits.RPM != 60 || !k.CreatedAt.Equal(created) {
		t.Errorf("old key: %+v, %v", k, err)
	}
	if all, _, err := s.KeysChangedSince(c, -1); err != nil || len(all) != 1 || all[0].ID != "key_old" {
		t.Errorf("the first read of the keys changed misses the old key: %+v, %v", all, err)
	}
	recs, err := s.UsageRecords(c, time.Time{}, time.Time{})
	if err != nil || len(recs) != 1 || recs[0].RequestID != "req_old" || recs[0].CostTicks != 500 ||
		recs[0].ToolCalls != (grokgate.ToolCalls{}) || recs[0].Count != 1 {
		t.Errorf("old records: %+v, %v", recs, err)
	}
	sum, err := s.UsageSummary(c, grokgate.UsageQuery{GroupBy: grokgate.GroupByKey})
	if err != nil || len(sum) != 1 || sum[0].PromptTokens != 10 || sum[0].ToolCalls.Total() != 0 || sum[0].Requests != 1 {
		t.Errorf("old summary: %+v, %v", sum, err)
	}
	o := grokgate.ResponseOwner{ResponseID: "resp", KeyID: "key_old", CreatedAt: created}
	if err := s.RecordResponseOwner(c, o); err != nil {
		t.Fatal(err)
	}
	checkOwner(t, s, o, created)
}

// testSpent: a key's cost in the ledger from the start of a day and of a
// month, which a budget is rebuilt from; other keys, earlier records and
// the periods' bounds are kept apart.
func testSpent(t *testing.T, s Store) {
	c := ctx(t)
	month := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	day := time.Date(2026, 11, 3, 0, 0, 0, 0, time.UTC)
	var recs []grokgate.Record
	add := func(at time.Time, key string, cost int64) {
		r := record(len(recs), at, key, "grok-4.3")
		r.CostTicks = cost
		recs = append(recs, r)
	}
	add(month.Add(-time.Microsecond), "k", 1)         // last month
	add(month, "k", 10)                               // the month's first microsecond
	add(day.Add(-time.Microsecond), "k", 100)         // yesterday
	add(day, "k", 1_000)                              // today's first microsecond
	add(day.Add(20*time.Hour), "k", 10_000)           // later today
	add(day.Add(time.Hour), "other", 100_000)         // another key
	add(day.Add(2*time.Hour), "k", 5_000_000_000_000) // large: no overflow in 32 bits
	if err := s.InsertUsage(c, recs); err != nil {
		t.Fatal(err)
	}
	d, m, err := s.Spent(c, "k", day, month)
	if err != nil || d != 5_000_000_011_000 || m != 5_000_000_011_110 {
		t.Fatalf("Spent: day %d, month %d, %v; want 5000000011000 and 5000000011110", d, m, err)
	}
	if d, m, err := s.Spent(c, "nobody", day, month); err != nil || d != 0 || m != 0 {
		t.Fatalf("Spent of a key without records: %d, %d, %v; want 0, 0", d, m, err)
	}
}
