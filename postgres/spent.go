package postgres

import (
	"context"
	"time"
)

// Spent returns what key spent (cost_in_usd_ticks) from dayStart and from
// monthStart (dayStart is within the month): the figures a budget whose
// limiter state was lost is rebuilt from.
func (s *DB) Spent(ctx context.Context, keyID string, dayStart, monthStart time.Time) (day, month int64, err error) {
	err = s.pool.QueryRow(ctx, `SELECT
		COALESCE(SUM(cost_in_usd_ticks) FILTER (WHERE time >= $1), 0)::bigint, COALESCE(SUM(cost_in_usd_ticks), 0)::bigint
		FROM usage_records WHERE time >= $2 AND key_id = $3`,
		dayStart, monthStart, keyID).Scan(&day, &month)
	return day, month, err
}
