package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/grokgate/grokgate"
	"github.com/grokgate/grokgate/keys"
	"github.com/grokgate/grokgate/openai"
)

// AdminStore is what the admin API needs from the store.
type AdminStore interface {
	CreateKey(ctx context.Context, k grokgate.Key) error
	KeyByID(ctx context.Context, id string) (grokgate.Key, error)
	ListKeys(ctx context.Context) ([]grokgate.Key, error)
	UpdateKey(ctx context.Context, id string, u grokgate.KeyUpdate) (grokgate.Key, error)
	RevokeKey(ctx context.Context, id string, at time.Time) error
	UsageSummary(ctx context.Context, q grokgate.UsageQuery) ([]grokgate.UsageTotals, error)
	RecentRecords(ctx context.Context, f grokgate.RecordFilter) ([]grokgate.Record, error)
}

// maxAdminBody bounds an admin request body; they are a few fields.
const maxAdminBody = 64 << 10

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

func (s *Server) writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		panic(err) // only the admin API's own types are encoded here
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(append(body, '\n'))
}

// storeFailure is the answer when the store fails; the detail goes to the log.
func storeFailure() *openai.Error {
	return &openai.Error{Status: http.StatusServiceUnavailable, Type: openai.TypeAPI, Code: "store_unavailable",
		Message: "grokgate's database did not answer; try again shortly"}
}

func keyNotFound(id string) *openai.Error {
	return &openai.Error{Status: http.StatusNotFound, Type: openai.TypeNotFound, Code: "key_not_found",
		Message: "No key has the id " + quote(id) + "; GET /admin/v1/keys lists them."}
}

// decodeAdmin reads a JSON object body into fields, rejecting unknown ones
// by name so typos are caught rather than ignored.
func (s *Server) decodeAdmin(w http.ResponseWriter, r *http.Request, allowed ...string) (map[string]json.RawMessage, *openai.Error) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxAdminBody))
	if err != nil {
		return nil, invalid("", "Could not read the request body (at most 64 KiB).")
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, invalid("", "Request body is empty; send a JSON object.")
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(body, &fields); err != nil || fields == nil {
		return nil, invalid("", "Request body must be a JSON object.")
	}
	for name := range fields {
		ok := false
		for _, a := range allowed {
			ok = ok || name == a
		}
		if !ok {
			return nil, invalid(name, "Unknown field "+quote(name)+"; expected "+strings.Join(allowed, ", ")+".")
		}
	}
	return fields, nil
}

// keyFields are the settable fields of a key, parsed and checked.
type keyFields struct {
	limits     grokgate.LimitsUpdate
	name       *string
	role       *grokgate.Role
	models     *[]string
	tools      *[]string
	expires    *time.Time // zero: no expiry
	hasExpires bool
}

func parseKeyFields(fields map[string]json.RawMessage, now time.Time) (keyFields, *openai.Error) {
	var f keyFields
	if raw, ok := fields["name"]; ok {
		var name string
		if json.Unmarshal(raw, &name) != nil || strings.TrimSpace(name) == "" || len(name) > 200 {
			return f, invalid("name", "'name' must be a non-empty string of at most 200 bytes.")
		}
		name = strings.TrimSpace(name)
		f.name = &name
	}
	if raw, ok := fields["role"]; ok {
		var role grokgate.Role
		if json.Unmarshal(raw, &role) != nil || !role.Valid() {
			return f, invalid("role", "'role' must be \"user\" or \"admin\".")
		}
		f.role = &role
	}
	var e *openai.Error
	if raw, ok := fields["allowed_models"]; ok {
		if f.models, e = parseAllowList(raw, "allowed_models", "model ids", "every model"); e != nil {
			return f, e
		}
	}
	if raw, ok := fields["allowed_tools"]; ok {
		if f.tools, e = parseAllowList(raw, "allowed_tools", "server-side tool types", "every tool"); e != nil {
			return f, e
		}
		for _, t := range *f.tools {
			if !grokgate.KnownServerTool(t) {
				return f, invalid("allowed_tools", "'allowed_tools' names "+quote(t)+", which is not a server-side tool; the known ones are "+
					strings.Join(grokgate.ServerTools(), ", ")+" (empty or null: every tool).")
			}
		}
	}
	if raw, ok := fields["expires_at"]; ok {
		f.hasExpires = true
		var t time.Time
		if string(bytes.TrimSpace(raw)) != "null" {
			var text string
			var err error
			if json.Unmarshal(raw, &text) == nil {
				t, err = time.Parse(time.RFC3339, text)
			}
			if text == "" || err != nil {
				return f, invalid("expires_at", "'expires_at' must be an RFC 3339 time such as \"2027-01-31T00:00:00Z\", or null for no expiry.")
			}
			if !t.After(now) {
				return f, invalid("expires_at", "'expires_at' must be in the future; to stop a key now, revoke it.")
			}
		}
		f.expires = &t
	}
	f.limits, e = parseLimitFields(fields)
	return f, e
}

// parseAllowList reads an allow-list field: an array of strings, trimmed
// and without repeats; empty or null allows everything.
func parseAllowList(raw json.RawMessage, field, items, all string) (*[]string, *openai.Error) {
	var list []string
	if json.Unmarshal(raw, &list) != nil || len(list) > 1000 {
		return nil, invalid(field, "'"+field+"' must be an array of "+items+" (empty or null: "+all+").")
	}
	seen := map[string]bool{}
	clean := []string{}
	for _, m := range list {
		m = strings.TrimSpace(m)
		if m == "" {
			return nil, invalid(field, "'"+field+"' must not contain empty "+items+".")
		}
		if !seen[m] {
			seen[m] = true
			clean = append(clean, m)
		}
	}
	return &clean, nil
}

// handleCreateKey serves POST /admin/v1/keys. The answer carries the secret,
// the only time it is ever shown.
func (s *Server) handleCreateKey(w http.ResponseWriter, r *http.Request) {
	fields, e := s.decodeAdmin(w, r, append([]string{"name", "role", "allowed_models", "allowed_tools", "expires_at"}, limitFieldNames()...)...)
	if e != nil {
		s.fail(w, r, e, nil)
		return
	}
	now := s.cfg.Now()
	f, e := parseKeyFields(fields, now)
	if e == nil && f.name == nil {
		e = invalid("name", "Missing required parameter: 'name' (a label that says what the key is for).")
	}
	if e != nil {
		s.fail(w, r, e, nil)
		return
	}
	role := grokgate.RoleUser
	if f.role != nil {
		role = *f.role
	}
	k, secret, err := keys.Mint(keys.Random(), *f.name, role, now)
	if err != nil {
		s.fail(w, r, &openai.Error{Status: http.StatusInternalServerError, Code: "internal_error", Message: "could not mint a key"}, err)
		return
	}
	if f.models != nil && len(*f.models) > 0 {
		k.AllowedModels = *f.models
	}
	if f.tools != nil && len(*f.tools) > 0 {
		k.AllowedTools = *f.tools
	}
	if f.expires != nil {
		k.ExpiresAt = f.expires.UTC()
	}
	k.Limits = f.limits.Apply(k.Limits)
	if err := s.cfg.Admin.CreateKey(r.Context(), k); err != nil {
		s.fail(w, r, storeFailure(), err)
		return
	}
	v := ViewKey(k, now)
	v.Key = secret
	s.writeJSON(w, http.StatusCreated, v)
}

func (s *Server) handleListKeys(w http.ResponseWriter, r *http.Request) {
	list, err := s.cfg.Admin.ListKeys(r.Context())
	if err != nil {
		s.fail(w, r, storeFailure(), err)
		return
	}
	now := s.cfg.Now()
	views := make([]KeyView, 0, len(list))
	for _, k := range list {
		views = append(views, ViewKey(k, now))
	}
	s.writeJSON(w, http.StatusOK, struct {
		Object string    `json:"object"`
		Data   []KeyView `json:"data"`
	}{"list", views})
}

// getKey loads the key named by the path, answering 404 itself.
func (s *Server) getKey(w http.ResponseWriter, r *http.Request) (grokgate.Key, bool) {
	id := r.PathValue("id")
	k, err := s.cfg.Admin.KeyByID(r.Context(), id)
	switch {
	case errors.Is(err, grokgate.ErrNotFound):
		s.fail(w, r, keyNotFound(id), nil)
		return k, false
	case err != nil:
		s.fail(w, r, storeFailure(), err)
		return k, false
	}
	return k, true
}

func (s *Server) handleGetKey(w http.ResponseWriter, r *http.Request) {
	if k, ok := s.getKey(w, r); ok {
		s.writeJSON(w, http.StatusOK, ViewKey(k, s.cfg.Now()))
	}
}

// handleUpdateKey serves PATCH /admin/v1/keys/{id}: name, allowed_models,
// allowed_tools, expires_at (null removes the expiry) and limits; absent
// fields stay as they are.
func (s *Server) handleUpdateKey(w http.ResponseWriter, r *http.Request) {
	fields, e := s.decodeAdmin(w, r, append([]string{"name", "allowed_models", "allowed_tools", "expires_at"}, limitFieldNames()...)...)
	if e != nil {
		s.fail(w, r, e, nil)
		return
	}
	now := s.cfg.Now()
	f, e := parseKeyFields(fields, now)
	if e != nil {
		s.fail(w, r, e, nil)
		return
	}
	id := r.PathValue("id")
	k, err := s.cfg.Admin.UpdateKey(r.Context(), id, grokgate.KeyUpdate{Name: f.name, AllowedModels: f.models, AllowedTools: f.tools,
		ExpiresAt: f.expires, Limits: f.limits})
	switch {
	case errors.Is(err, grokgate.ErrNotFound):
		s.fail(w, r, keyNotFound(id), nil)
	case err != nil:
		s.fail(w, r, storeFailure(), err)
	default:
		s.writeJSON(w, http.StatusOK, ViewKey(k, now))
	}
}

// handleRevokeKey serves POST /admin/v1/keys/{id}/revoke. Every replica
// refuses the key within two seconds (the keys generation poll).
func (s *Server) handleRevokeKey(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	now := s.cfg.Now()
	if err := s.cfg.Admin.RevokeKey(r.Context(), id, now); errors.Is(err, grokgate.ErrNotFound) {
		s.fail(w, r, keyNotFound(id), nil)
		return
	} else if err != nil {
		s.fail(w, r, storeFailure(), err)
		return
	}
	if k, ok := s.getKey(w, r); ok {
		s.writeJSON(w, http.StatusOK, ViewKey(k, now))
	}
}

// handleUsage serves GET /admin/v1/usage?group_by=key|model|day&from=&to=.
func (s *Server) handleUsage(w http.ResponseWriter, r *http.Request) {
	s.serveUsage(w, r, nil)
}

// serveUsage answers a usage query over every key's records, or own's
// alone when not nil.
func (s *Server) serveUsage(w http.ResponseWriter, r *http.Request, own *grokgate.Key) {
	q := r.URL.Query()
	for name := range q {
		if name != "group_by" && name != "from" && name != "to" {
			s.fail(w, r, invalid(name, "Unknown query parameter "+quote(name)+"; expected group_by, from and to."), nil)
			return
		}
	}
	uq, err := ParseUsageQuery(q.Get("group_by"), q.Get("from"), q.Get("to"))
	if err != nil {
		var pe *ParamError
		errors.As(err, &pe)
		s.fail(w, r, invalid(pe.Param, pe.Msg), nil)
		return
	}
	var names map[string]string
	if own != nil {
		uq.KeyID = own.ID
		names = map[string]string{own.ID: own.Name}
	}
	rows, err := s.cfg.Admin.UsageSummary(r.Context(), uq)
	if err != nil {
		s.fail(w, r, storeFailure(), err)
		return
	}
	if uq.GroupBy == grokgate.GroupByKey && own == nil {
		list, err := s.cfg.Admin.ListKeys(r.Context())
		if err != nil {
			s.fail(w, r, storeFailure(), err)
			return
		}
		names = KeyNames(list)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	if uq.GroupBy != grokgate.GroupByKey {
		names = nil
	}
	w.Write(EncodeUsage(uq, rows, names))
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
// key_name to rows grouped by key.
func EncodeUsage(q grokgate.UsageQuery, rows []grokgate.UsageTotals, names map[string]string) []byte {
	b := []byte(`{"object":"list","group_by":`)
	b = strconv.AppendQuote(b, string(q.GroupBy))
	b = appendTime(append(b, `,"from":`...), q.From)
	b = appendTime(append(b, `,"to":`...), q.To)
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
