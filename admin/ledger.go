package admin

import (
	"encoding/base64"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/grokgate/grokgate"
	"github.com/grokgate/grokgate/apierror"
)

// The ledger as its readers see it: recent requests for admins
// (/admin/v1/requests) and, under /api/v1/me, a key's own usage, requests
// and settings, so a user key can see what it spent without the admin role
// and without seeing any other key.

// maxRecordsPage caps one page of recent requests.
const maxRecordsPage = 500

// RecordView is one ledger record as the API shows it.
type RecordView struct {
	Object           string           `json:"object"`
	RequestID        string           `json:"request_id"`
	Time             time.Time        `json:"time"`
	KeyID            string           `json:"key_id"`
	KeyName          string           `json:"key_name"`
	Route            string           `json:"route"`
	RequestedModel   string           `json:"requested_model"`
	Model            string           `json:"model"`
	Stream           bool             `json:"stream"`
	Fallback         bool             `json:"fallback"`
	Status           int              `json:"status"`
	Outcome          string           `json:"outcome"`
	PromptTokens     int64            `json:"prompt_tokens"`
	CompletionTokens int64            `json:"completion_tokens"`
	ReasoningTokens  int64            `json:"reasoning_tokens"`
	CachedTokens     int64            `json:"cached_tokens"`
	TotalTokens      int64            `json:"total_tokens"`
	CostTicks        int64            `json:"cost_in_usd_ticks"`
	Estimated        bool             `json:"estimated"`
	LatencyMS        float64          `json:"latency_ms"`
	TTFBMS           float64          `json:"ttfb_ms"`
	UpstreamID       string           `json:"upstream_id"`
	ToolCalls        map[string]int64 `json:"tool_call_details"`
}

func viewRecord(r grokgate.Record, names map[string]string) RecordView {
	v := RecordView{Object: "request", RequestID: r.RequestID, Time: r.Time, KeyID: r.KeyID, KeyName: names[r.KeyID],
		Route: r.Route, RequestedModel: r.RequestedModel, Model: r.Model, Stream: r.Stream, Fallback: r.Fallback,
		Status: r.Status, Outcome: string(r.Outcome), PromptTokens: r.PromptTokens, CompletionTokens: r.CompletionTokens,
		ReasoningTokens: r.ReasoningTokens, CachedTokens: r.CachedTokens,
		TotalTokens: r.PromptTokens + r.CompletionTokens + r.ReasoningTokens, CostTicks: r.CostTicks, Estimated: r.Estimated,
		LatencyMS: float64(r.Latency.Microseconds()) / 1000, TTFBMS: float64(r.TTFB.Microseconds()) / 1000,
		UpstreamID: r.UpstreamID, ToolCalls: map[string]int64{}}
	for _, c := range ToolCallCounts(r.ToolCalls) {
		v.ToolCalls[c.Name] = c.N
	}
	return v
}

// handleAdminRequests serves GET /admin/v1/requests: the most recent ledger
// records of every key, newest first, filtered by key_id, model, outcome
// and status, a page of limit (default 50) at a time; next_before, when not
// null, is the before of the next page.
func (a *API) handleAdminRequests(w http.ResponseWriter, r *http.Request) {
	a.serveRequests(w, r, nil)
}

// handleMyRequests serves GET /api/v1/me/requests: as /admin/v1/requests,
// for the calling key's records alone.
func (a *API) handleMyRequests(w http.ResponseWriter, r *http.Request, k *grokgate.Key) {
	a.serveRequests(w, r, k)
}

func (a *API) serveRequests(w http.ResponseWriter, r *http.Request, own *grokgate.Key) {
	q := r.URL.Query()
	f := grokgate.RecordFilter{Limit: 50}
	for name, vals := range q {
		v := vals[0]
		switch name {
		case "key_id":
			if own != nil && v != own.ID {
				a.gw.Fail(w, r, &apierror.Error{Status: http.StatusForbidden, Type: apierror.TypePermission, Code: "admin_required",
					Message: "Another key's requests are for admin keys only; this key sees its own."}, nil)
				return
			}
			f.KeyID = v
		case "model":
			f.Model = v
		case "outcome":
			f.Outcome = grokgate.Outcome(v)
		case "status":
			n, err := strconv.Atoi(v)
			if err != nil || n < 100 || n > 599 {
				a.gw.Fail(w, r, apierror.Invalid("status", "'status' must be an HTTP status code such as 200 or 429."), nil)
				return
			}
			f.Status = n
		case "limit":
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > maxRecordsPage {
				a.gw.Fail(w, r, apierror.Invalid("limit", "'limit' must be a whole number from 1 to "+strconv.Itoa(maxRecordsPage)+"."), nil)
				return
			}
			f.Limit = n
		case "before":
			var ok bool
			if f.BeforeTime, f.BeforeID, ok = parseCursor(v); !ok {
				a.gw.Fail(w, r, apierror.Invalid("before", "'before' must be the next_before of a previous page."), nil)
				return
			}
		default:
			a.gw.Fail(w, r, apierror.Invalid(name, "Unknown query parameter "+quote(name)+"; expected key_id, model, outcome, status, limit and before."), nil)
			return
		}
	}
	var names map[string]string
	if own != nil {
		f.KeyID = own.ID
		names = map[string]string{own.ID: own.Name}
	}
	want := f.Limit
	f.Limit++ // one more tells whether there is a next page
	recs, err := a.store.RecentRecords(r.Context(), f)
	if err != nil {
		a.gw.Fail(w, r, apierror.StoreUnavailable(), err)
		return
	}
	if own == nil {
		list, err := a.store.ListKeys(r.Context())
		if err != nil {
			a.gw.Fail(w, r, apierror.StoreUnavailable(), err)
			return
		}
		names = KeyNames(list)
	}
	var next *string
	if len(recs) > want {
		recs = recs[:want]
		c := cursor(recs[want-1])
		next = &c
	}
	views := make([]RecordView, 0, len(recs))
	for _, rec := range recs {
		views = append(views, viewRecord(rec, names))
	}
	writeJSON(w, http.StatusOK, struct {
		Object     string       `json:"object"`
		Data       []RecordView `json:"data"`
		NextBefore *string      `json:"next_before"`
	}{"list", views, next})
}

// cursor names the place after rec in newest-first order.
func cursor(rec grokgate.Record) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(rec.Time.UnixMicro(), 10) + " " + rec.RequestID))
}

func parseCursor(c string) (time.Time, string, bool) {
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return time.Time{}, "", false
	}
	at, id, ok := strings.Cut(string(b), " ")
	us, err := strconv.ParseInt(at, 10, 64)
	if !ok || err != nil || us <= 0 || id == "" {
		return time.Time{}, "", false
	}
	return time.UnixMicro(us).UTC(), id, true
}

// handleMe serves GET /api/v1/me: the calling key as the admin API shows
// keys (never its secret), so a user key can read its own limits.
func (a *API) handleMe(w http.ResponseWriter, r *http.Request, k *grokgate.Key) {
	writeJSON(w, http.StatusOK, ViewKey(*k, a.now()))
}

// handleMyUsage serves GET /api/v1/me/usage: /admin/v1/usage over the
// calling key's records alone.
func (a *API) handleMyUsage(w http.ResponseWriter, r *http.Request, k *grokgate.Key) {
	a.serveUsage(w, r, k)
}
