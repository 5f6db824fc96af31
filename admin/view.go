package admin

import (
	"encoding/json"
	"strconv"
	"time"

	"github.com/grokgate/grokgate"
)

// KeyView is a key as the admin API and the CLI show it: never the secret
// or its hash. Key is set only in the answer that created the key.
type KeyView struct {
	Object        string     `json:"object"`
	ID            string     `json:"id"`
	Name          string     `json:"name"`
	Prefix        string     `json:"prefix"`
	Role          string     `json:"role"`
	Status        string     `json:"status"` // active, revoked or expired
	AllowedModels []string   `json:"allowed_models"`
	AllowedTools  []string   `json:"allowed_tools"` // server-side tool types; empty: every tool
	CreatedAt     time.Time  `json:"created_at"`
	ExpiresAt     *time.Time `json:"expires_at"`
	RevokedAt     *time.Time `json:"revoked_at"`
	Limits        LimitsView `json:"limits"`
	Key           string     `json:"key,omitempty"`
}

// ViewKey renders k as of now.
func ViewKey(k grokgate.Key, now time.Time) KeyView {
	v := KeyView{Object: "key", ID: k.ID, Name: k.Name, Prefix: k.Prefix, Role: string(k.Role), Status: "active",
		AllowedModels: k.AllowedModels, CreatedAt: k.CreatedAt, Limits: viewLimits(k.Limits)}
	if v.AllowedModels == nil {
		v.AllowedModels = []string{}
	}
	v.AllowedTools = k.AllowedTools
	if v.AllowedTools == nil {
		v.AllowedTools = []string{}
	}
	if !k.ExpiresAt.IsZero() {
		t := k.ExpiresAt
		v.ExpiresAt = &t
		if k.Expired(now) {
			v.Status = "expired"
		}
	}
	if !k.RevokedAt.IsZero() {
		t := k.RevokedAt
		v.RevokedAt, v.Status = &t, "revoked"
	}
	return v
}

// ParamError is a bad usage query parameter.
type ParamError struct{ Param, Msg string }

func (e *ParamError) Error() string { return e.Msg }

// ParseUsageQuery checks the usage query's parameters, as the admin API and
// `grokgate usage` take them. groupBy defaults to key. from and to are RFC
// 3339 times or UTC dates (YYYY-MM-DD); from is inclusive, to exclusive,
// except that a date given as to includes that whole day.
func ParseUsageQuery(groupBy, from, to string) (grokgate.UsageQuery, error) {
	q := grokgate.UsageQuery{GroupBy: grokgate.GroupBy(groupBy)}
	if groupBy == "" {
		q.GroupBy = grokgate.GroupByKey
	}
	if !q.GroupBy.Valid() {
		return q, &ParamError{"group_by", "Invalid value for 'group_by': " + quote(groupBy) + "; expected key, model or day."}
	}
	var err error
	if q.From, err = parseBound("from", from, false); err != nil {
		return q, err
	}
	if q.To, err = parseBound("to", to, true); err != nil {
		return q, err
	}
	if !q.From.IsZero() && !q.To.IsZero() && !q.From.Before(q.To) {
		return q, &ParamError{"to", "'to' must be later than 'from'."}
	}
	return q, nil
}

func parseBound(param, v string, endOfDay bool) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	if d, err := time.Parse(time.DateOnly, v); err == nil {
		if endOfDay {
			d = d.AddDate(0, 0, 1)
		}
		return d, nil
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return t, &ParamError{param, "Invalid value for '" + param + "': " + quote(v) +
			"; expected a date (2026-11-01) or an RFC 3339 time (2026-11-01T15:04:05Z)."}
	}
	return t.UTC(), nil
}

// KeyNames maps key ids to names, to label usage grouped by key.
func KeyNames(list []grokgate.Key) map[string]string {
	m := make(map[string]string, len(list))
	for _, k := range list {
		m[k.ID] = k.Name
	}
	return m
}

// EncodeUsage renders aggregates as the admin API answers them:
// {"object":"list","group_by":...,"from":...,"to":...,"data":[{<group field>,
// "requests", ..., "tool_calls", "tool_call_details":{...}}]}. The group
// field comes first; it is key_id, model or day. names, if not nil, adds
// key_name to rows grouped by key; sp, if not nil, adds
// "spool":{"pending_records","dead_letters"}.
func EncodeUsage(q grokgate.UsageQuery, rows []grokgate.UsageTotals, names map[string]string, sp *SpoolCounts) []byte {
	b := []byte(`{"object":"list","group_by":`)
	b = strconv.AppendQuote(b, string(q.GroupBy))
	b = appendTime(append(b, `,"from":`...), q.From)
	b = appendTime(append(b, `,"to":`...), q.To)
	if sp != nil {
		b = appendInt(append(b, `,"spool":{`...), "pending_records", sp.Pending)
		b = append(appendInt(append(b, ','), "dead_letters", sp.DeadLetters), '}')
	}
	b = append(b, `,"data":[`...)
	for i, u := range rows {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '{')
		b = appendString(b, q.GroupBy.Field(), u.Group)
		if names != nil {
			b = append(b, ',')
			b = appendString(b, "key_name", names[u.Group])
		}
		for _, f := range []struct {
			name string
			v    int64
		}{
			{"requests", u.Requests}, {"completed_requests", u.Completed}, {"estimated_requests", u.Estimated},
			{"prompt_tokens", u.PromptTokens}, {"completion_tokens", u.CompletionTokens},
			{"reasoning_tokens", u.ReasoningTokens}, {"cached_tokens", u.CachedTokens},
			{"total_tokens", u.TotalTokens()}, {"cost_in_usd_ticks", u.CostTicks},
			{"tool_calls", u.ToolCalls.Total()},
		} {
			b = appendInt(append(b, ','), f.name, f.v)
		}
		b = append(b, `,"tool_call_details":{`...)
		for i, c := range ToolCallCounts(u.ToolCalls) {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendInt(b, c.Name, c.N)
		}
		b = append(b, "}}"...)
	}
	return append(b, "]}\n"...)
}

// SpoolCounts is what waits in a server's local usage spool: records the
// database has not taken yet (they are replayed when it does), and records
// it refused as invalid (the dead letters, kept in a file for an operator).
// The usage figures do not include them.
type SpoolCounts struct {
	Pending, DeadLetters int64
}

// ToolCallCount is the number of server-side tool calls of one kind, named
// as xAI's server_side_tool_usage_details names it.
type ToolCallCount struct {
	Name string // web_search_calls, x_search_calls, ...
	N    int64
}

// ToolCallCounts lists t by kind, in a fixed order, for the admin API and
// the CLI.
func ToolCallCounts(t grokgate.ToolCalls) []ToolCallCount {
	return []ToolCallCount{
		{"web_search_calls", t.WebSearch}, {"x_search_calls", t.XSearch},
		{"code_interpreter_calls", t.CodeInterpreter}, {"file_search_calls", t.FileSearch},
		{"mcp_calls", t.MCP}, {"document_search_calls", t.DocumentSearch},
	}
}

func appendInt(b []byte, name string, v int64) []byte {
	b = strconv.AppendQuote(b, name)
	b = append(b, ':')
	return strconv.AppendInt(b, v, 10)
}

func appendString(b []byte, name, v string) []byte {
	b = strconv.AppendQuote(b, name)
	b = append(b, ':')
	s, _ := json.Marshal(v) // JSON escaping, not Go's
	return append(b, s...)
}

func appendTime(b []byte, t time.Time) []byte {
	if t.IsZero() {
		return append(b, "null"...)
	}
	return strconv.AppendQuote(b, t.UTC().Format(time.RFC3339Nano))
}

func quote(s string) string { return "\"" + s + "\"" }
