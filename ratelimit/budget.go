package ratelimit

import (
	"time"

	"github.com/grokgate/grokgate"
)

// Budget is the cost spent in the current UTC day and month. Periods are
// calendar ones, as the usage ledger groups days, so a budget and the usage
// report agree.
type Budget struct {
	Day, Month           int64 // period numbers: days since 1970, months since year 0
	DaySpent, MonthSpent int64
}

// DayNumber and MonthNumber name the UTC day and month containing t.
func DayNumber(t time.Time) int64 { return t.Unix() / 86400 }

func MonthNumber(t time.Time) int64 {
	t = t.UTC()
	return int64(t.Year())*12 + int64(t.Month()) - 1
}

// roll starts new periods when now has left the stored ones.
func (b *Budget) roll(now time.Time) {
	if d := DayNumber(now); d != b.Day {
		b.Day, b.DaySpent = d, 0
	}
	if m := MonthNumber(now); m != b.Month {
		b.Month, b.MonthSpent = m, 0
	}
}

// Add counts cost in now's periods.
func (b *Budget) Add(now time.Time, cost int64) {
	b.roll(now)
	b.DaySpent += cost
	b.MonthSpent += cost
}

// Over reports whether a budget of lim is spent, and how long until its
// period ends. A request is admitted while the budget is not spent: its cost
// is known only when it ends, so the last admitted request may go over.
func (b *Budget) Over(now time.Time, lim grokgate.Limits) (grokgate.LimitKind, time.Duration, bool) {
	b.roll(now)
	if lim.BudgetTicksPerDay > 0 && b.DaySpent >= lim.BudgetTicksPerDay {
		return grokgate.LimitBudget, NextDay(now).Sub(now), true
	}
	if lim.BudgetTicksPerMonth > 0 && b.MonthSpent >= lim.BudgetTicksPerMonth {
		return grokgate.LimitBudget, NextMonth(now).Sub(now), true
	}
	return "", 0, false
}

// NextDay and NextMonth are the starts of the UTC day and month after now's.
func NextDay(now time.Time) time.Time {
	y, m, d := now.UTC().Date()
	return time.Date(y, m, d+1, 0, 0, 0, 0, time.UTC)
}

func NextMonth(now time.Time) time.Time {
	y, m, _ := now.UTC().Date()
	return time.Date(y, m+1, 1, 0, 0, 0, 0, time.UTC)
}
