// Package grokgate holds the domain types shared by every part of the gateway.
// It depends on the standard library only, so that storage, HTTP and upstream
// packages can all speak about keys and usage without importing each other.
package grokgate

import (
	"errors"
	"time"
)

// Role says what a gateway key may do.
type Role string

const (
	// RoleUser keys may call the OpenAI-compatible API.
	RoleUser Role = "user"
	// RoleAdmin keys may also call the admin API.
	RoleAdmin Role = "admin"
	// RoleMetrics keys may scrape /metrics and nothing else: the
	// credential a Prometheus server holds cannot mint keys or spend.
	RoleMetrics Role = "metrics"
)

// Valid reports whether r is a known role.
func (r Role) Valid() bool { return r == RoleUser || r == RoleAdmin || r == RoleMetrics }

// Key is a gateway-issued API key. The secret itself is never stored: only
// its SHA-256 hash and a short prefix that lets people tell keys apart.
type Key struct {
	ID        string    // stable identifier, "key_..."; safe to log
	Name      string    // human label
	Prefix    string    // first characters of the secret, for display; safe to log
	Hash      [32]byte  // SHA-256 of the full secret
	Role      Role      // RoleUser, RoleAdmin or RoleMetrics
	CreatedAt time.Time // UTC
	// RevokedAt is the zero time while the key is active.
	RevokedAt time.Time
	// AllowedModels lists the model ids the key may request, exactly as a
	// client names them; empty means every model.
	AllowedModels []string
	// ExpiresAt is the zero time for a key that never expires.
	ExpiresAt time.Time
	// Limits caps the key's use (limits.go).
	Limits Limits
	// AllowedTools lists the server-side tool types (ServerTools) the key
	// may ask xAI to run (ServerTools); empty means every tool. Function tools run in the
	// client and are always allowed.
	AllowedTools []string
}

// Active reports whether the key may be used at time now.
func (k *Key) Active(now time.Time) bool { return k.RevokedAt.IsZero() && !k.Expired(now) }

// Expired reports whether the key's expiry has passed at time now.
func (k *Key) Expired(now time.Time) bool { return !k.ExpiresAt.IsZero() && !now.Before(k.ExpiresAt) }

// Allows reports whether the key may request model.
func (k *Key) Allows(model string) bool {
	if len(k.AllowedModels) == 0 {
		return true
	}
	for _, m := range k.AllowedModels {
		if m == model {
			return true
		}
	}
	return false
}

// AllowsTool reports whether the key may use the server-side tool type t.
func (k *Key) AllowsTool(t string) bool {
	if len(k.AllowedTools) == 0 {
		return true
	}
	for _, a := range k.AllowedTools {
		if a == t {
			return true
		}
	}
	return false
}

// ServerTools returns the tool types xAI runs itself, each billed per call on
// top of tokens; a key's AllowedTools names some of them. Function tools,
// which the client runs, are not among them.
func ServerTools() []string {
	return []string{"web_search", "x_search", "code_interpreter", "file_search", "collections_search", "mcp"}
}

// KnownServerTool reports whether t is one of ServerTools.
func KnownServerTool(t string) bool {
	for _, s := range ServerTools() {
		if s == t {
			return true
		}
	}
	return false
}

// KeyUpdate changes some of a key's fields; nil fields stay as they are.
type KeyUpdate struct {
	Name          *string
	AllowedModels *[]string  // an empty list allows every model
	AllowedTools  *[]string  // an empty list allows every server-side tool
	ExpiresAt     *time.Time // the zero time removes the expiry
	Limits        LimitsUpdate
}

// ErrNotFound is returned by stores when a looked-up record does not exist.
var ErrNotFound = errors.New("not found")

// Outcome says how a request ended, for the usage ledger.
type Outcome string

const (
	// OutcomeCompleted: the whole answer reached the client.
	OutcomeCompleted Outcome = "completed"
	// OutcomeClientCanceled: the client went away before the answer was complete.
	OutcomeClientCanceled Outcome = "client_canceled"
	// OutcomeUpstreamError: xAI answered with an error, broke off a stream,
	// could not be reached or did not answer in time.
	OutcomeUpstreamError Outcome = "upstream_error"
	// OutcomeRejected: the gateway refused the request before sending it
	// upstream (invalid body, model not allowed for the key, too large).
	OutcomeRejected Outcome = "rejected"
	// OutcomeInternalError: the gateway itself failed.
	OutcomeInternalError Outcome = "internal_error"
	// OutcomeShutdown: the gateway was stopping and its drain deadline
	// ended the request before it was complete.
	OutcomeShutdown Outcome = "shutdown"
	// OutcomeInterrupted: the gateway process died while the request was
	// in flight; the next start recorded it from the in-flight journal,
	// its tokens estimated from what had been relayed.
	OutcomeInterrupted Outcome = "interrupted"
)

// Record is one line of the usage ledger: one per metered request,
// whatever its outcome.
type Record struct {
	Time           time.Time // when the request arrived, UTC
	RequestID      string    // the gateway's X-Request-Id; unique, so a record is never counted twice
	KeyID          string
	Route          string // API route without its base, such as "/chat/completions"
	RequestedModel string // the model the client asked for
	Model          string // the model xAI says answered (aliases resolved); "" if unknown
	Stream         bool
	Fallback       bool // the gateway answered a stream request without upstream streaming
	Status         int  // HTTP status the client got (499: it went away)
	Outcome        Outcome
	// Token counts as xAI reports them: CompletionTokens excludes
	// ReasoningTokens; CachedTokens is part of PromptTokens.
	PromptTokens     int64
	CompletionTokens int64
	ReasoningTokens  int64
	CachedTokens     int64
	CostTicks        int64 // xAI's cost_in_usd_ticks; 10^10 ticks = 1 USD
	// Estimated marks token counts the gateway estimated because xAI's
	// usage never arrived (docs/usage-accounting.md); CostTicks is then 0.
	Estimated  bool
	Latency    time.Duration // arrival to last byte
	TTFB       time.Duration // arrival to first byte of a stream; 0 otherwise
	UpstreamID string        // the completion "id" xAI gave; "" if none
	// ToolCalls counts the server-side tool calls xAI made (Responses
	// API); their fees are part of CostTicks.
	ToolCalls ToolCalls
	// Count is how many requests the record stands for: 1 for an ordinary
	// record, more for a key's refused requests of one minute, which the
	// ledger keeps as one record. 0 is read as 1 (Requests).
	Count int64
}

// Requests is how many requests r stands for: its Count, at least 1.
func (r *Record) Requests() int64 {
	return max(r.Count, 1)
}

// ToolCalls counts xAI's server-side tool calls, as its usage object's
// server_side_tool_usage_details reports them.
type ToolCalls struct {
	WebSearch, XSearch, CodeInterpreter, FileSearch, MCP, DocumentSearch int64
}

// Total is the number of server-side tool calls of every kind.
func (t ToolCalls) Total() int64 {
	return t.WebSearch + t.XSearch + t.CodeInterpreter + t.FileSearch + t.MCP + t.DocumentSearch
}

// Add returns the sum of t and u.
func (t ToolCalls) Add(u ToolCalls) ToolCalls {
	return ToolCalls{t.WebSearch + u.WebSearch, t.XSearch + u.XSearch, t.CodeInterpreter + u.CodeInterpreter,
		t.FileSearch + u.FileSearch, t.MCP + u.MCP, t.DocumentSearch + u.DocumentSearch}
}

// ResponseRetention is how long xAI keeps a stored response, and so how long
// grokgate remembers which key owns it.
const ResponseRetention = 30 * 24 * time.Hour

// ResponseOwner records which key created a stored response (Responses API),
// so no other key can read, continue or delete it.
type ResponseOwner struct {
	ResponseID string    // xAI's response id, a bare UUID
	KeyID      string    // the gateway key that created it
	CreatedAt  time.Time // UTC; the record is forgotten ResponseRetention later
}

// Expired reports whether the response is gone from xAI at time now, and so
// no longer anyone's.
func (o ResponseOwner) Expired(now time.Time) bool {
	return !now.Before(o.CreatedAt.Add(ResponseRetention))
}

// GroupBy names how usage is aggregated.
type GroupBy string

const (
	GroupByKey   GroupBy = "key"
	GroupByModel GroupBy = "model" // the resolved model, else the requested one
	GroupByDay   GroupBy = "day"   // UTC calendar day, YYYY-MM-DD
)

// Valid reports whether g is a known grouping.
func (g GroupBy) Valid() bool { return g == GroupByKey || g == GroupByModel || g == GroupByDay }

// Field is the name of the group's field in the admin API's answer.
func (g GroupBy) Field() string {
	if g == GroupByKey {
		return "key_id"
	}
	return string(g)
}

// UsageQuery selects records with From <= Time < To (a zero bound is open)
// and aggregates them by GroupBy.
type UsageQuery struct {
	GroupBy GroupBy
	From    time.Time
	To      time.Time
	// KeyID, when set, keeps only that key's records: what a user key may
	// see of the ledger.
	KeyID string
	// Model, when set, keeps only that model's records, the model as
	// GroupByModel names it (the resolved model, else the requested one),
	// so a per-model series adds up to that model's row.
	Model string
}

// RecordFilter selects ledger records for the recent-requests views, newest
// first. Empty fields match everything.
type RecordFilter struct {
	KeyID   string
	Model   string // the resolved or the requested model
	Outcome Outcome
	Status  int
	// Before is the cursor of a next page: records strictly older than the
	// record (BeforeTime, BeforeID) in (time, request id) order.
	BeforeTime time.Time
	BeforeID   string
	// Limit caps the records returned; it must be positive.
	Limit int
}

// Session is a console sign-in: the browser holds a random token, the store
// only its SHA-256, so a copy of the database signs no one in.
type Session struct {
	Hash      [32]byte
	KeyID     string
	CreatedAt time.Time
	ExpiresAt time.Time
}

// UsageTotals is one aggregate row.
type UsageTotals struct {
	Group            string // key id, model or day, per the query's GroupBy
	Requests         int64
	Completed        int64 // requests whose outcome is completed
	Estimated        int64 // requests whose tokens were estimated
	PromptTokens     int64
	CompletionTokens int64
	ReasoningTokens  int64
	CachedTokens     int64
	CostTicks        int64
	ToolCalls        ToolCalls
}

// TotalTokens follows xAI's arithmetic: prompt + completion + reasoning.
func (u UsageTotals) TotalTokens() int64 {
	return u.PromptTokens + u.CompletionTokens + u.ReasoningTokens
}
