package sqlite

import (
	"context"
	"time"
)

// Spent returns what key spent (cost_in_usd_ticks) from dayStart and from
// monthStart (dayStart is within the month): the figures a budget whose
// limiter state was lost is rebuilt from.
func (s *DB) Spent(ctx context.Context, keyID string, dayStart, monthStart time.Time) (day, month int64, err error) {
	err = s.db.QueryRowContext(ctx, `SELECT
		COALESCE(SUM(CASE WHEN time >= ? THEN cost_in_usd_ticks ELSE 0 END), 0), COALESCE(SUM(cost_in_usd_ticks), 0)
		FROM usage_records WHERE time >= ? AND key_id = ?`,
		dayStart.UnixMicro(), monthStart.UnixMicro(), keyID).Scan(&day, &month)
	return day, month, err
}
