package admin

import (
	"encoding/json"

	"github.com/grokgate/grokgate"
	"github.com/grokgate/grokgate/apierror"
)

// limitFieldNames are the admin API's limit fields, as Limits.Fields names
// them.
func limitFieldNames() []string {
	var l grokgate.Limits
	var names []string
	for _, f := range l.Fields() {
		names = append(names, f.Name)
	}
	return names
}

// LimitsView is a key's own limits as the admin API shows them: 0 is the
// server default, -1 none.
type LimitsView struct {
	RPM                 int64 `json:"rpm"`
	TPM                 int64 `json:"tpm"`
	MaxStreams          int64 `json:"max_streams"`
	BudgetTicksPerDay   int64 `json:"budget_ticks_per_day"`
	BudgetTicksPerMonth int64 `json:"budget_ticks_per_month"`
}

func viewLimits(l grokgate.Limits) LimitsView {
	return LimitsView{l.RPM, l.TPM, l.MaxStreams, l.BudgetTicksPerDay, l.BudgetTicksPerMonth}
}

// parseLimitFields reads the limit fields present in an admin body;
// grokgate.KeyUpdate.Validate checks their values.
func parseLimitFields(fields map[string]json.RawMessage) (grokgate.LimitsUpdate, *apierror.Error) {
	var u grokgate.LimitsUpdate
	for _, name := range limitFieldNames() {
		raw, ok := fields[name]
		if !ok {
			continue
		}
		var v int64
		if json.Unmarshal(raw, &v) != nil {
			return u, apierror.Invalid(name, "'"+name+"' must be a whole number: the limit, 0 for the server default, or -1 for none.")
		}
		u.Set(name, v)
	}
	return u, nil
}
