package ratelimit

import (
	"time"

	"github.com/grokgate/grokgate"
)

// Budget is the cost spent in the current UTC day and month, and the cost
// reserved by admitted requests that have not ended yet. Periods are
// calendar ones, as the usage ledger groups days, so a budget and the usage
// report agree.
type Budget struct {
	Day, Month           int64 // period numbers: days since 1970, months since year 0
	DaySpent, MonthSpent int64
	// Reserved is the worst-case cost of the requests admitted and not yet
	// settled; it counts against both periods.
	Reserved int64
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

// Over reports whether a budget of lim is taken, and how long until its
// period ends. The rule: a request is admitted while what is spent plus what
// is reserved stays below the budget, and then reserves its own worst case.
// Admissions are serial, so the committed total passes the budget by less
// than the last admitted request's reservation, however many run at once;
// a request that costs more than it reserved can add its excess. (Requiring
// spent + reserved + cost <= budget instead would never overrun, but would
// refuse a large request while most of the budget is left.)
func (b *Budget) Over(now time.Time, lim grokgate.Limits) (grokgate.LimitKind, time.Duration, bool) {
	b.roll(now)
	if wait, over := b.over(now, b.DaySpent, lim.BudgetTicksPerDay, NextDay); over {
		return grokgate.LimitBudget, wait, true
	}
	if wait, over := b.over(now, b.MonthSpent, lim.BudgetTicksPerMonth, NextMonth); over {
		return grokgate.LimitBudget, wait, true
	}
	return "", 0, false
}

// over applies the rule to one period. A budget already spent frees at the
// period's end; one taken only with reservations may free within a second,
// when requests in flight settle for less than they reserved.
func (b *Budget) over(now time.Time, spent, limit int64, next func(time.Time) time.Time) (time.Duration, bool) {
	switch {
	case limit <= 0 || spent+b.Reserved < limit:
		return 0, false
	case spent >= limit:
		return next(now).Sub(now), true
	default:
		return ReservationRetry, true
	}
}

// ReservationRetry is the Retry-After of a budget refusal that is due to
// reservations of requests in flight: they usually settle for less than
// they reserved, within seconds.
const ReservationRetry = time.Second

// NextDay and NextMonth are the starts of the UTC day and month after now's.
func NextDay(now time.Time) time.Time {
	y, m, d := now.UTC().Date()
	return time.Date(y, m, d+1, 0, 0, 0, 0, time.UTC)
}

func NextMonth(now time.Time) time.Time {
	y, m, _ := now.UTC().Date()
	return time.Date(y, m+1, 1, 0, 0, 0, 0, time.UTC)
}

// DayStart and MonthStart are the starts of the UTC day and month holding
// now: the periods a budget counts, for reading them back from the ledger.
func DayStart(now time.Time) time.Time {
	y, m, d := now.UTC().Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

func MonthStart(now time.Time) time.Time {
	y, m, _ := now.UTC().Date()
	return time.Date(y, m, 1, 0, 0, 0, 0, time.UTC)
}
