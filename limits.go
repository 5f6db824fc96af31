package grokgate

import (
	"errors"
	"time"
)

// NoLimit, as a key's limit, lifts the server-wide default for that key.
const NoLimit int64 = -1

// Limits caps what one key may do. In a stored key, 0 means "the server-wide
// default" and NoLimit means "no limit even if the server has a default"; in
// effective limits (Resolve) 0 means unlimited.
type Limits struct {
	RPM                 int64 // requests per minute
	TPM                 int64 // tokens per minute (prompt + completion + reasoning)
	MaxStreams          int64 // streamed responses open at once
	BudgetTicksPerDay   int64 // cost_in_usd_ticks per UTC day
	BudgetTicksPerMonth int64 // cost_in_usd_ticks per UTC calendar month
}

// Fields lists the limits with the names the CLI, the admin API and the
// configuration use, so a new limit is added in one place.
func (l *Limits) Fields() []LimitField {
	return []LimitField{
		{"rpm", &l.RPM}, {"tpm", &l.TPM}, {"max_streams", &l.MaxStreams},
		{"budget_ticks_per_day", &l.BudgetTicksPerDay}, {"budget_ticks_per_month", &l.BudgetTicksPerMonth},
	}
}

// LimitField is one named limit.
type LimitField struct {
	Name string
	V    *int64
}

// Resolve returns the effective limits of a key with limits l on a server
// whose defaults are def (0: none). In the result 0 means unlimited.
func (l Limits) Resolve(def Limits) Limits {
	out := l
	d := def.Fields()
	for i, f := range out.Fields() {
		switch {
		case *f.V == 0:
			*f.V = max(*d[i].V, 0)
		case *f.V < 0:
			*f.V = 0
		}
	}
	return out
}

// Any reports whether some limit is set.
func (l Limits) Any() bool { return l != Limits{} }

// ErrBadLimit is returned for a limit below NoLimit.
var ErrBadLimit = errors.New("a limit must be a positive number, 0 for the server default, or -1 for none")

// Check reports a value no limit may take, as a *FieldError naming the
// limit that wraps ErrBadLimit.
func (l Limits) Check() error {
	for _, f := range l.Fields() {
		if *f.V < NoLimit {
			return &FieldError{Field: f.Name, Problem: "must be a whole number: the limit, 0 for the server default, or -1 for none", err: ErrBadLimit}
		}
	}
	return nil
}

// LimitsUpdate changes some limits; nil fields stay as they are.
type LimitsUpdate struct {
	RPM, TPM, MaxStreams, BudgetTicksPerDay, BudgetTicksPerMonth *int64
}

// fields lists u's limits in the order of Limits.Fields.
func (u *LimitsUpdate) fields() []**int64 {
	return []**int64{&u.RPM, &u.TPM, &u.MaxStreams, &u.BudgetTicksPerDay, &u.BudgetTicksPerMonth}
}

// Set changes the limit Limits.Fields calls name to v; it reports whether
// name is a limit.
func (u *LimitsUpdate) Set(name string, v int64) bool {
	var l Limits
	for i, f := range l.Fields() {
		if f.Name == name {
			*u.fields()[i] = &v
			return true
		}
	}
	return false
}

// Apply returns l with u's changes.
func (u LimitsUpdate) Apply(l Limits) Limits {
	to := l.Fields()
	for i, from := range u.fields() {
		if *from != nil {
			*to[i].V = **from
		}
	}
	return l
}

// LimitKind names the limit that refused a request.
type LimitKind string

const (
	LimitRequests    LimitKind = "requests"
	LimitTokens      LimitKind = "tokens"
	LimitConcurrency LimitKind = "concurrency"
	LimitBudget      LimitKind = "budget"
)

// Admission asks a limiter to let one request through.
type Admission struct {
	Key    string // key id: whose limits
	ID     string // request id: names the request's reservation and stream slot
	Limits Limits // effective limits; 0 is unlimited
	Tokens int64  // the request's worst case, reserved against TPM until settled
	Cost   int64  // the request's worst-case cost in ticks, reserved against the budgets until settled
	Stream bool   // the request takes a stream slot until settled
}

// Verdict is a limiter's answer. The window figures feed the x-ratelimit-*
// headers and are meaningful only for limits that are set.
type Verdict struct {
	Allowed    bool
	Refused    LimitKind     // when not allowed
	RetryAfter time.Duration // when not allowed: when a retry can succeed
	// Remaining counts after this request (or as they stand, if refused);
	// Reset is how long until the window is back to its full limit.
	RequestsRemaining, TokensRemaining int64
	RequestsReset, TokensReset         time.Duration
}

// Settlement is what an admitted request really used, reported when it ends.
type Settlement struct {
	Tokens    int64 // real total tokens (prompt + completion + reasoning)
	CostTicks int64 // counted against the budgets
}
