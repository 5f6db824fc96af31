package grokgate

import (
	"testing"
	"time"
)

func TestKeyActive(t *testing.T) {
	now := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	cases := []struct {
		name string
		k    Key
		want bool
	}{
		{"plain", Key{}, true},
		{"revoked", Key{RevokedAt: now.Add(-time.Hour)}, false},
		{"expires later", Key{ExpiresAt: now.Add(time.Second)}, true},
		{"expires now", Key{ExpiresAt: now}, false},
		{"expired", Key{ExpiresAt: now.Add(-time.Second)}, false},
	}
	for _, c := range cases {
		if got := c.k.Active(now); got != c.want {
			t.Errorf("%s: Active = %v, want %v", c.name, got, c.want)
		}
	}
}

func TestKeyAllows(t *testing.T) {
	all := Key{}
	if !all.Allows("grok-4.3") {
		t.Error("a key without a model list must allow every model")
	}
	k := Key{AllowedModels: []string{"grok-4.3", "grok-3"}}
	for m, want := range map[string]bool{"grok-4.3": true, "grok-3": true, "grok-4.5": false, "GROK-4.3": false, "": false} {
		if got := k.Allows(m); got != want {
			t.Errorf("Allows(%q) = %v, want %v", m, got, want)
		}
	}
}

func TestGroupBy(t *testing.T) {
	for g, field := range map[GroupBy]string{GroupByKey: "key_id", GroupByModel: "model", GroupByDay: "day"} {
		if !g.Valid() || g.Field() != field {
			t.Errorf("%q: Valid %v Field %q", g, g.Valid(), g.Field())
		}
	}
	if GroupBy("week").Valid() {
		t.Error("week must not be valid")
	}
}

// TestResponseOwnerExpired: a response is gone from exactly
// ResponseRetention after its creation.
func TestResponseOwnerExpired(t *testing.T) {
	o := ResponseOwner{ResponseID: "r", KeyID: "k", CreatedAt: time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)}
	end := o.CreatedAt.Add(30 * 24 * time.Hour)
	for now, want := range map[time.Time]bool{
		o.CreatedAt:                 false,
		end.Add(-time.Nanosecond):   false,
		end:                         true,
		end.Add(time.Hour):          true,
		o.CreatedAt.Add(-time.Hour): false,
	} {
		if got := o.Expired(now); got != want {
			t.Errorf("Expired(%v) = %v, want %v", now, got, want)
		}
	}
}
