package postgres

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/grokgate/grokgate"
)

const usageColumns = `request_id, time, key_id, route, requested_model, model, stream, fallback, status, outcome,
	prompt_tokens, completion_tokens, reasoning_tokens, cached_tokens, cost_in_usd_ticks, estimated,
	latency_us, ttfb_us, upstream_id`

// InsertUsage writes recs in one transaction and one round trip. A record
// whose request id is already stored is skipped, so retrying a batch never
// counts twice.
func (s *DB) InsertUsage(ctx context.Context, recs []grokgate.Record) error {
	if len(recs) == 0 {
		return nil
	}
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var b pgx.Batch
		for _, r := range recs {
			b.Queue(`INSERT INTO usage_records (`+usageColumns+`)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)
				ON CONFLICT (request_id) DO NOTHING`,
				r.RequestID, ts(r.Time), r.KeyID, r.Route, r.RequestedModel, r.Model, r.Stream, r.Fallback,
				r.Status, string(r.Outcome), r.PromptTokens, r.CompletionTokens, r.ReasoningTokens, r.CachedTokens,
				r.CostTicks, r.Estimated, r.Latency.Microseconds(), r.TTFB.Microseconds(), r.UpstreamID)
		}
		return tx.SendBatch(ctx, &b).Close()
	})
}

// timeRange renders from <= time < to, a zero bound being open.
func timeRange(from, to time.Time) (string, []any) {
	var conds []string
	var args []any
	if !from.IsZero() {
		args = append(args, ts(from))
		conds = append(conds, "time >= $"+strconv.Itoa(len(args)))
	}
	if !to.IsZero() {
		args = append(args, ts(to))
		conds = append(conds, "time < $"+strconv.Itoa(len(args)))
	}
	if len(conds) == 0 {
		return "", nil
	}
	return " WHERE " + strings.Join(conds, " AND "), args
}

// UsageRecords returns the records with from <= time < to, oldest first.
func (s *DB) UsageRecords(ctx context.Context, from, to time.Time) ([]grokgate.Record, error) {
	where, args := timeRange(from, to)
	rows, err := s.pool.Query(ctx, `SELECT `+usageColumns+` FROM usage_records`+where+
		` ORDER BY time, request_id COLLATE "C"`, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []grokgate.Record
	for rows.Next() {
		var (
			r         grokgate.Record
			lat, ttfb int64
			outcome   string
		)
		if err := rows.Scan(&r.RequestID, &r.Time, &r.KeyID, &r.Route, &r.RequestedModel, &r.Model, &r.Stream, &r.Fallback,
			&r.Status, &outcome, &r.PromptTokens, &r.CompletionTokens, &r.ReasoningTokens, &r.CachedTokens,
			&r.CostTicks, &r.Estimated, &lat, &ttfb, &r.UpstreamID); err != nil {
			return nil, err
		}
		r.Time = r.Time.UTC()
		r.Outcome = grokgate.Outcome(outcome)
		r.Latency, r.TTFB = time.Duration(lat)*time.Microsecond, time.Duration(ttfb)*time.Microsecond
		out = append(out, r)
	}
	return out, rows.Err()
}

// groupExpr is the SQL for each grouping; GroupBy.Valid guards the lookup.
var groupExpr = map[grokgate.GroupBy]string{
	grokgate.GroupByKey:   `key_id`,
	grokgate.GroupByModel: `CASE WHEN model <> '' THEN model ELSE requested_model END`,
	grokgate.GroupByDay:   `to_char(time AT TIME ZONE 'UTC', 'YYYY-MM-DD')`,
}

// UsageSummary aggregates the ledger as q asks, ordered by group byte-wise
// (COLLATE "C"), as SQLite orders.
func (s *DB) UsageSummary(ctx context.Context, q grokgate.UsageQuery) ([]grokgate.UsageTotals, error) {
	if !q.GroupBy.Valid() {
		return nil, fmt.Errorf("unknown grouping %q", q.GroupBy)
	}
	where, args := timeRange(q.From, q.To)
	rows, err := s.pool.Query(ctx, `SELECT (`+groupExpr[q.GroupBy]+`) COLLATE "C" AS grp, count(*),
		count(*) FILTER (WHERE outcome = 'completed'), count(*) FILTER (WHERE estimated),
		sum(prompt_tokens)::bigint, sum(completion_tokens)::bigint, sum(reasoning_tokens)::bigint,
		sum(cached_tokens)::bigint, sum(cost_in_usd_ticks)::bigint
		FROM usage_records`+where+` GROUP BY grp ORDER BY grp`, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []grokgate.UsageTotals{}
	for rows.Next() {
		var u grokgate.UsageTotals
		if err := rows.Scan(&u.Group, &u.Requests, &u.Completed, &u.Estimated, &u.PromptTokens, &u.CompletionTokens,
			&u.ReasoningTokens, &u.CachedTokens, &u.CostTicks); err != nil {
			return nil, err
		}
		out = append(out, u)
	}
	return out, rows.Err()
}
