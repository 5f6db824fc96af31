package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math/bits"
	"runtime"
	"strings"
	"time"

	"github.com/grokgate/grokgate"
)

// modelsJSON encodes an allow-list (models or tools); [] allows everything.
func modelsJSON(models []string) (string, error) {
	if len(models) == 0 {
		return "[]", nil
	}
	b, err := json.Marshal(models)
	return string(b), err
}

// KeyByID returns the key with this id, or grokgate.ErrNotFound.
func (s *DB) KeyByID(ctx context.Context, id string) (grokgate.Key, error) {
	k, err := scanKey(s.db.QueryRowContext(ctx, `SELECT `+keyColumns+` FROM keys WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return k, grokgate.ErrNotFound
	}
	return k, err
}

// UpdateKey applies u to key id and returns the key as stored.
func (s *DB) UpdateKey(ctx context.Context, id string, u grokgate.KeyUpdate) (grokgate.Key, error) {
	var out grokgate.Key
	err := s.inTx(ctx, func(tx *sql.Tx, seq int64) error {
		k, err := scanKey(tx.QueryRowContext(ctx, `SELECT `+keyColumns+` FROM keys WHERE id = ?`, id))
		if errors.Is(err, sql.ErrNoRows) {
			return grokgate.ErrNotFound
		} else if err != nil {
			return err
		}
		if u.Name != nil {
			k.Name = *u.Name
		}
		if u.AllowedModels != nil {
			k.AllowedModels = *u.AllowedModels
			if len(k.AllowedModels) == 0 {
				k.AllowedModels = nil
			}
		}
		if u.AllowedTools != nil {
			k.AllowedTools = *u.AllowedTools
			if len(k.AllowedTools) == 0 {
				k.AllowedTools = nil
			}
		}
		if u.ExpiresAt != nil {
			k.ExpiresAt = u.ExpiresAt.UTC().Truncate(time.Microsecond)
		}
		k.Limits = u.Limits.Apply(k.Limits)
		models, err := modelsJSON(k.AllowedModels)
		if err != nil {
			return err
		}
		tools, err := modelsJSON(k.AllowedTools)
		if err != nil {
			return err
		}
		l := k.Limits
		if _, err := tx.ExecContext(ctx, `UPDATE keys SET name = ?, allowed_models = ?, expires_at = ?,
			rpm = ?, tpm = ?, max_streams = ?, budget_ticks_per_day = ?, budget_ticks_per_month = ?, allowed_tools = ?, seq = ? WHERE id = ?`,
			k.Name, models, nullTime(k.ExpiresAt), l.RPM, l.TPM, l.MaxStreams, l.BudgetTicksPerDay, l.BudgetTicksPerMonth, tools, seq, id); err != nil {
			return err
		}
		out = k
		return nil
	})
	return out, err
}

const usageColumns = `request_id, time, key_id, route, requested_model, model, stream, fallback, status, outcome,
	prompt_tokens, completion_tokens, reasoning_tokens, cached_tokens, cost_in_usd_ticks, estimated,
	latency_us, ttfb_us, upstream_id,
	web_search_calls, x_search_calls, code_interpreter_calls, file_search_calls, mcp_calls, document_search_calls,
	request_count`

// usageChunkShift sets the most records one INSERT writes, 1<<5 = 32.
// database/sql and the driver cost CPU per Exec on top of SQLite's own
// work per record (BenchmarkInsertUsage), so a batch is written many rows
// per statement; beyond a few dozen rows nothing is gained, while the
// statements' programs, kept on every connection, grow with their rows.
// 32 rows of 26 parameters stay under SQLite's limit, even the old 999.
const usageChunkShift = 5

// usageParams is the number of columns, and so of parameters, per record.
const usageParams = 26

// insertUsageSQL is the statement writing n records. ON CONFLICT DO NOTHING
// skips a request id already stored, or met earlier in the same statement,
// as SQLite inserts the rows of a VALUES list one after another.
func insertUsageSQL(n int) string {
	row := "(?" + strings.Repeat(", ?", usageParams-1) + ")"
	return `INSERT INTO usage_records (` + usageColumns + `) VALUES ` +
		row + strings.Repeat(", "+row, n-1) + ` ON CONFLICT (request_id) DO NOTHING`
}

// prepareInsertUsage prepares the statements writing 1, 2, 4, ... 1<<usageChunkShift
// records. Parsing one costs more than running it, so they are kept for the
// life of the DB and shared by concurrent calls (a *sql.Stmt is safe for
// that); database/sql prepares each again on any other connection it is
// used on, once.
func (s *DB) prepareInsertUsage(ctx context.Context) error {
	for k := range s.insertUsage {
		stmt, err := s.db.PrepareContext(ctx, insertUsageSQL(1<<k))
		if err != nil {
			return fmt.Errorf("prepare insert of %d usage records: %w", 1<<k, err)
		}
		s.insertUsage[k] = stmt
	}
	return nil
}

// appendUsageArgs appends r's column values, in usageColumns order.
func appendUsageArgs(args []any, r *grokgate.Record) []any {
	return append(args, r.RequestID, r.Time.UnixMicro(), r.KeyID, r.Route, r.RequestedModel, r.Model,
		r.Stream, r.Fallback, r.Status, string(r.Outcome),
		r.PromptTokens, r.CompletionTokens, r.ReasoningTokens, r.CachedTokens, r.CostTicks, r.Estimated,
		r.Latency.Microseconds(), r.TTFB.Microseconds(), r.UpstreamID,
		r.ToolCalls.WebSearch, r.ToolCalls.XSearch, r.ToolCalls.CodeInterpreter, r.ToolCalls.FileSearch,
		r.ToolCalls.MCP, r.ToolCalls.DocumentSearch, r.Requests())
}

// InsertUsage writes recs in one transaction. A record whose request id is
// already stored is skipped, so retrying a batch never counts twice.
//
// Records go in chunks of 1<<usageChunkShift per statement, the rest in the
// largest power-of-two chunks that fit (100 records: 32, 32, 32, 4), so a
// batch takes a few Execs rather than one per record.
func (s *DB) InsertUsage(ctx context.Context, recs []grokgate.Record) error {
	if len(recs) == 0 {
		return nil
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	args := make([]any, 0, usageParams*min(len(recs), 1<<usageChunkShift))
	for len(recs) > 0 {
		k := min(bits.Len(uint(len(recs)))-1, usageChunkShift)
		chunk := recs[:1<<k]
		args = args[:0]
		for i := range chunk {
			args = appendUsageArgs(args, &chunk[i])
		}
		stmt := tx.StmtContext(ctx, s.insertUsage[k])
		_, err := stmt.ExecContext(ctx, args...)
		stmt.Close()
		if err != nil {
			return fmt.Errorf("insert usage %s to %s: %w", chunk[0].RequestID, chunk[len(chunk)-1].RequestID, err)
		}
		recs = recs[len(chunk):]
		// SQLite runs on this goroutine, in Go, for about 10 us a row: a
		// batch of 256 would hold a P for milliseconds while the requests
		// queued behind it wait (the scheduler preempts only after 10 ms).
		// Yield between statements so they go first.
		runtime.Gosched()
	}
	return tx.Commit()
}

// timeRange renders from <= time < to, a zero bound being open.
func timeRange(from, to time.Time) (string, []any) {
	var conds []string
	var args []any
	if !from.IsZero() {
		conds, args = append(conds, "time >= ?"), append(args, from.UnixMicro())
	}
	if !to.IsZero() {
		conds, args = append(conds, "time < ?"), append(args, to.UnixMicro())
	}
	if len(conds) == 0 {
		return "", nil
	}
	return " WHERE " + strings.Join(conds, " AND "), args
}

// and adds cond, with its one parameter arg, to a WHERE clause, which may
// be empty.
func and(where string, args []any, cond string, arg any) (string, []any) {
	args = append(args, arg)
	if where == "" {
		return " WHERE " + cond, args
	}
	return where + " AND " + cond, args
}

// UsageRecords returns the records with from <= time < to, oldest first.
func (s *DB) UsageRecords(ctx context.Context, from, to time.Time) ([]grokgate.Record, error) {
	where, args := timeRange(from, to)
	rows, err := s.db.QueryContext(ctx, `SELECT `+usageColumns+` FROM usage_records`+where+` ORDER BY time, request_id`, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	return scanRecords(rows)
}

// scanRecords reads rows of usageColumns.
func scanRecords(rows *sql.Rows) ([]grokgate.Record, error) {
	var out []grokgate.Record
	for rows.Next() {
		var (
			r             grokgate.Record
			at, lat, ttfb int64
			outcome       string
		)
		if err := rows.Scan(&r.RequestID, &at, &r.KeyID, &r.Route, &r.RequestedModel, &r.Model, &r.Stream, &r.Fallback,
			&r.Status, &outcome, &r.PromptTokens, &r.CompletionTokens, &r.ReasoningTokens, &r.CachedTokens,
			&r.CostTicks, &r.Estimated, &lat, &ttfb, &r.UpstreamID, &r.ToolCalls.WebSearch, &r.ToolCalls.XSearch,
			&r.ToolCalls.CodeInterpreter, &r.ToolCalls.FileSearch, &r.ToolCalls.MCP, &r.ToolCalls.DocumentSearch, &r.Count); err != nil {
			return nil, err
		}
		r.Time = time.UnixMicro(at).UTC()
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
	grokgate.GroupByDay:   `strftime('%Y-%m-%d', time / 1000000, 'unixepoch')`,
}

// UsageSummary aggregates the ledger as q asks, ordered by group.
func (s *DB) UsageSummary(ctx context.Context, q grokgate.UsageQuery) ([]grokgate.UsageTotals, error) {
	if !q.GroupBy.Valid() {
		return nil, fmt.Errorf("unknown grouping %q", q.GroupBy)
	}
	where, args := timeRange(q.From, q.To)
	if q.KeyID != "" {
		where, args = and(where, args, "key_id = ?", q.KeyID)
	}
	if q.Model != "" {
		where, args = and(where, args, groupExpr[grokgate.GroupByModel]+" = ?", q.Model)
	}
	rows, err := s.db.QueryContext(ctx, `SELECT `+groupExpr[q.GroupBy]+` AS grp, sum(request_count),
		sum(outcome = 'completed'), sum(estimated), sum(prompt_tokens), sum(completion_tokens),
		sum(reasoning_tokens), sum(cached_tokens), sum(cost_in_usd_ticks),
		sum(web_search_calls), sum(x_search_calls), sum(code_interpreter_calls), sum(file_search_calls),
		sum(mcp_calls), sum(document_search_calls)
		FROM usage_records`+where+` GROUP BY grp ORDER BY grp`, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []grokgate.UsageTotals{}
	for rows.Next() {
		var u grokgate.UsageTotals
		if err := rows.Scan(&u.Group, &u.Requests, &u.Completed, &u.Estimated, &u.PromptTokens, &u.CompletionTokens,
			&u.ReasoningTokens, &u.CachedTokens, &u.CostTicks, &u.ToolCalls.WebSearch, &u.ToolCalls.XSearch,
			&u.ToolCalls.CodeInterpreter, &u.ToolCalls.FileSearch, &u.ToolCalls.MCP, &u.ToolCalls.DocumentSearch); err != nil {
			return nil, err
		}
		out = append(out, u)
	}
	return out, rows.Err()
}
