// Package admin is the admin API (/admin/v1): keys and usage, for
// admin-role keys only, with the views the CLI shares. It registers its
// routes on the gateway, which gives them its request ids, access log,
// authentication and error envelope.
package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/grokgate/grokgate"
	"github.com/grokgate/grokgate/apierror"
	"github.com/grokgate/grokgate/keys"
)

// Store is what the admin API needs from the store.
type Store interface {
	CreateKey(ctx context.Context, k grokgate.Key) error
	KeyByID(ctx context.Context, id string) (grokgate.Key, error)
	ListKeys(ctx context.Context) ([]grokgate.Key, error)
	UpdateKey(ctx context.Context, id string, u grokgate.KeyUpdate) (grokgate.Key, error)
	RevokeKey(ctx context.Context, id string, at time.Time) error
	UsageSummary(ctx context.Context, q grokgate.UsageQuery) ([]grokgate.UsageTotals, error)
	RecentRecords(ctx context.Context, f grokgate.RecordFilter) ([]grokgate.Record, error)
}

// Gateway is what the admin API needs from the server its routes sit on.
type Gateway interface {
	// Handle and HandleMethods register routes, answering other methods
	// with the 405 envelope.
	Handle(method, path string, h http.Handler)
	HandleMethods(path string, hs map[string]http.Handler)
	// RequireAdmin lets only admin-role keys through (401, 403 otherwise).
	RequireAdmin(h http.HandlerFunc) http.Handler
	// RequireKey lets any valid key through, and gives h the key.
	RequireKey(h func(http.ResponseWriter, *http.Request, *grokgate.Key)) http.Handler
	// Fail writes the error envelope and notes it for the access log.
	Fail(w http.ResponseWriter, r *http.Request, e *apierror.Error, cause error)
	// ReadJSON reads a body of at most limit bytes within the gateway's
	// body deadline (408 and a closed connection if it is missed) and
	// decodes it into v with the API's strict decoder: names exact and
	// once, UTF-8.
	ReadJSON(w http.ResponseWriter, r *http.Request, limit int64, v any) *apierror.Error
}

// API serves the admin routes.
type API struct {
	store Store
	now   func() time.Time
	gw    Gateway
	spool func() (pending, dead int64)
}

// Register puts the admin API's routes on gw.
func Register(gw Gateway, store Store, now func() time.Time) *API {
	a := &API{store: store, now: now, gw: gw}
	gw.HandleMethods("/admin/v1/keys", map[string]http.Handler{
		http.MethodGet: gw.RequireAdmin(a.handleListKeys), http.MethodPost: gw.RequireAdmin(a.handleCreateKey)})
	gw.HandleMethods("/admin/v1/keys/{id}", map[string]http.Handler{
		http.MethodGet: gw.RequireAdmin(a.handleGetKey), http.MethodPatch: gw.RequireAdmin(a.handleUpdateKey)})
	gw.Handle(http.MethodPost, "/admin/v1/keys/{id}/revoke", gw.RequireAdmin(a.handleRevokeKey))
	gw.Handle(http.MethodGet, "/admin/v1/usage", gw.RequireAdmin(a.handleUsage))
	gw.Handle(http.MethodGet, "/admin/v1/requests", gw.RequireAdmin(a.handleAdminRequests))
	// A key's own settings and ledger (ledger.go), for any key.
	for _, base := range []string{"/api/v1", "/v1"} {
		gw.Handle(http.MethodGet, base+"/me", gw.RequireKey(a.handleMe))
		gw.Handle(http.MethodGet, base+"/me/usage", gw.RequireKey(a.handleMyUsage))
		gw.Handle(http.MethodGet, base+"/me/requests", gw.RequireKey(a.handleMyRequests))
	}
	return a
}

// ShowSpool makes GET /admin/v1/usage say how many usage records wait in
// the local spool for the database, and how many it refused (dead
// letters), as counts reports them. Call it before serving.
func (a *API) ShowSpool(counts func() (pending, dead int64)) {
	a.spool = counts
}

// maxAdminBody bounds an admin request body; they are a few fields.
const maxAdminBody = 64 << 10

func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		panic(err) // only the admin API's own types are encoded here
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(append(body, '\n'))
}

func keyNotFound(id string) *apierror.Error {
	return &apierror.Error{Status: http.StatusNotFound, Type: apierror.TypeNotFound, Code: "key_not_found",
		Message: "No key has the id " + quote(id) + "; GET /admin/v1/keys lists them."}
}

// decodeAdmin reads a JSON object body into fields, rejecting unknown ones
// by name so typos are caught rather than ignored.
func (a *API) decodeAdmin(w http.ResponseWriter, r *http.Request, allowed ...string) (map[string]json.RawMessage, *apierror.Error) {
	// The API's strict decoder: a repeated name ({"role":"user","role":
	// "admin"}) is refused, not settled by whichever one a parser keeps.
	var fields map[string]json.RawMessage
	if e := a.gw.ReadJSON(w, r, maxAdminBody, &fields); e != nil {
		return nil, e
	}
	for name := range fields {
		ok := false
		for _, a := range allowed {
			ok = ok || name == a
		}
		if !ok {
			return nil, apierror.Invalid(name, "Unknown field "+quote(name)+"; expected "+strings.Join(allowed, ", ")+".")
		}
	}
	return fields, nil
}

// keyFields are the settable fields of a key as a body gives them, read but
// not yet checked against the key rules (grokgate.KeyUpdate.Validate).
type keyFields struct {
	grokgate.KeyUpdate
	role *grokgate.Role
}

// parseKeyFields reads the fields present in a body, refusing values of the
// wrong JSON type.
func parseKeyFields(fields map[string]json.RawMessage) (keyFields, *apierror.Error) {
	var f keyFields
	if raw, ok := fields["name"]; ok {
		var name string
		if json.Unmarshal(raw, &name) != nil {
			return f, apierror.Invalid("name", "'name' must be a string: a label that says what the key is for.")
		}
		f.Name = &name
	}
	if raw, ok := fields["role"]; ok {
		var role grokgate.Role
		if json.Unmarshal(raw, &role) != nil {
			return f, apierror.Invalid("role", "'role' must be \"user\", \"admin\" or \"metrics\" (may scrape /metrics and nothing else).")
		}
		f.role = &role
	}
	var e *apierror.Error
	if raw, ok := fields["allowed_models"]; ok {
		if f.AllowedModels, e = parseAllowList(raw, "allowed_models", "model ids", "every model"); e != nil {
			return f, e
		}
	}
	if raw, ok := fields["allowed_tools"]; ok {
		if f.AllowedTools, e = parseAllowList(raw, "allowed_tools", "server-side tool types", "every tool"); e != nil {
			return f, e
		}
	}
	if raw, ok := fields["expires_at"]; ok {
		var t time.Time
		if string(bytes.TrimSpace(raw)) != "null" {
			var text string
			var err error
			if json.Unmarshal(raw, &text) == nil {
				t, err = time.Parse(time.RFC3339, text)
			}
			if text == "" || err != nil {
				return f, apierror.Invalid("expires_at", "'expires_at' must be an RFC 3339 time such as \"2027-01-31T00:00:00Z\", or null for no expiry.")
			}
		}
		f.ExpiresAt = &t
	}
	f.Limits, e = parseLimitFields(fields)
	return f, e
}

// parseAllowList reads an allow-list field: an array of strings; null is
// the empty list, which allows everything.
func parseAllowList(raw json.RawMessage, field, items, all string) (*[]string, *apierror.Error) {
	list := []string{}
	if json.Unmarshal(raw, &list) != nil {
		return nil, apierror.Invalid(field, "'"+field+"' must be an array of "+items+" (empty or null: "+all+").")
	}
	if list == nil {
		list = []string{}
	}
	return &list, nil
}

// invalidKey is the envelope for a key setting the rules refuse.
func invalidKey(err error) *apierror.Error {
	var fe *grokgate.FieldError
	if !errors.As(err, &fe) {
		return apierror.Invalid("", err.Error())
	}
	return apierror.Invalid(fe.Field, "'"+fe.Field+"' "+fe.Problem+".")
}

// handleCreateKey serves POST /admin/v1/keys. The answer carries the secret,
// the only time it is ever shown.
func (a *API) handleCreateKey(w http.ResponseWriter, r *http.Request) {
	fields, e := a.decodeAdmin(w, r, append([]string{"name", "role", "allowed_models", "allowed_tools", "expires_at"}, limitFieldNames()...)...)
	if e != nil {
		a.gw.Fail(w, r, e, nil)
		return
	}
	f, e := parseKeyFields(fields)
	if e != nil {
		a.gw.Fail(w, r, e, nil)
		return
	}
	role := grokgate.RoleUser
	if f.role != nil {
		role = *f.role
	}
	spec := f.Spec(role)
	now := a.now()
	spec.Tidy()
	if err := spec.Validate(now); err != nil {
		a.gw.Fail(w, r, invalidKey(err), nil)
		return
	}
	k, secret, err := keys.MintSpec(keys.Random(), spec, now)
	if err != nil {
		a.gw.Fail(w, r, &apierror.Error{Status: http.StatusInternalServerError, Code: "internal_error", Message: "could not mint a key"}, err)
		return
	}
	if err := a.store.CreateKey(r.Context(), k); err != nil {
		a.gw.Fail(w, r, apierror.StoreUnavailable(), err)
		return
	}
	v := ViewKey(k, now)
	v.Key = secret
	writeJSON(w, http.StatusCreated, v)
}

func (a *API) handleListKeys(w http.ResponseWriter, r *http.Request) {
	list, err := a.store.ListKeys(r.Context())
	if err != nil {
		a.gw.Fail(w, r, apierror.StoreUnavailable(), err)
		return
	}
	now := a.now()
	views := make([]KeyView, 0, len(list))
	for _, k := range list {
		views = append(views, ViewKey(k, now))
	}
	writeJSON(w, http.StatusOK, struct {
		Object string    `json:"object"`
		Data   []KeyView `json:"data"`
	}{"list", views})
}

// getKey loads the key named by the path, answering 404 itself.
func (a *API) getKey(w http.ResponseWriter, r *http.Request) (grokgate.Key, bool) {
	id := r.PathValue("id")
	k, err := a.store.KeyByID(r.Context(), id)
	switch {
	case errors.Is(err, grokgate.ErrNotFound):
		a.gw.Fail(w, r, keyNotFound(id), nil)
		return k, false
	case err != nil:
		a.gw.Fail(w, r, apierror.StoreUnavailable(), err)
		return k, false
	}
	return k, true
}

func (a *API) handleGetKey(w http.ResponseWriter, r *http.Request) {
	if k, ok := a.getKey(w, r); ok {
		writeJSON(w, http.StatusOK, ViewKey(k, a.now()))
	}
}

// handleUpdateKey serves PATCH /admin/v1/keys/{id}: name, allowed_models,
// allowed_tools, expires_at (null removes the expiry) and limits; absent
// fields stay as they are.
func (a *API) handleUpdateKey(w http.ResponseWriter, r *http.Request) {
	fields, e := a.decodeAdmin(w, r, append([]string{"name", "allowed_models", "allowed_tools", "expires_at"}, limitFieldNames()...)...)
	if e != nil {
		a.gw.Fail(w, r, e, nil)
		return
	}
	f, e := parseKeyFields(fields)
	if e != nil {
		a.gw.Fail(w, r, e, nil)
		return
	}
	now := a.now()
	f.Tidy()
	if err := f.Validate(now); err != nil {
		a.gw.Fail(w, r, invalidKey(err), nil)
		return
	}
	id := r.PathValue("id")
	k, err := a.store.UpdateKey(r.Context(), id, f.KeyUpdate)
	switch {
	case errors.Is(err, grokgate.ErrNotFound):
		a.gw.Fail(w, r, keyNotFound(id), nil)
	case err != nil:
		a.gw.Fail(w, r, apierror.StoreUnavailable(), err)
	default:
		writeJSON(w, http.StatusOK, ViewKey(k, now))
	}
}

// handleRevokeKey serves POST /admin/v1/keys/{id}/revoke. Every replica
// refuses the key within two seconds (the keys generation poll).
func (a *API) handleRevokeKey(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	now := a.now()
	if err := a.store.RevokeKey(r.Context(), id, now); errors.Is(err, grokgate.ErrNotFound) {
		a.gw.Fail(w, r, keyNotFound(id), nil)
		return
	} else if err != nil {
		a.gw.Fail(w, r, apierror.StoreUnavailable(), err)
		return
	}
	if k, ok := a.getKey(w, r); ok {
		writeJSON(w, http.StatusOK, ViewKey(k, now))
	}
}

// handleUsage serves GET /admin/v1/usage?group_by=key|model|day&from=&to=&model=.
func (a *API) handleUsage(w http.ResponseWriter, r *http.Request) {
	a.serveUsage(w, r, nil)
}

// serveUsage answers a usage query over every key's records, or own's
// alone when not nil.
func (a *API) serveUsage(w http.ResponseWriter, r *http.Request, own *grokgate.Key) {
	q := r.URL.Query()
	for name := range q {
		if name != "group_by" && name != "from" && name != "to" && name != "model" {
			a.gw.Fail(w, r, apierror.Invalid(name, "Unknown query parameter "+quote(name)+"; expected group_by, from, to and model."), nil)
			return
		}
	}
	uq, err := ParseUsageQuery(q.Get("group_by"), q.Get("from"), q.Get("to"))
	if err != nil {
		var pe *ParamError
		errors.As(err, &pe)
		a.gw.Fail(w, r, apierror.Invalid(pe.Param, pe.Msg), nil)
		return
	}
	uq.Model = q.Get("model")
	var names map[string]string
	if own != nil {
		uq.KeyID = own.ID
		if uq.GroupBy == grokgate.GroupByKey {
			names = map[string]string{own.ID: own.Name}
		}
	}
	rows, err := a.store.UsageSummary(r.Context(), uq)
	if err != nil {
		a.gw.Fail(w, r, apierror.StoreUnavailable(), err)
		return
	}
	if uq.GroupBy == grokgate.GroupByKey && own == nil {
		list, err := a.store.ListKeys(r.Context())
		if err != nil {
			a.gw.Fail(w, r, apierror.StoreUnavailable(), err)
			return
		}
		names = KeyNames(list)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	var sp *SpoolCounts
	if a.spool != nil && own == nil {
		sp = new(SpoolCounts)
		sp.Pending, sp.DeadLetters = a.spool()
	}
	w.Write(EncodeUsage(uq, rows, names, sp))
}
