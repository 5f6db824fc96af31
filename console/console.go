// Package console is grokgate's web console: a few server-rendered pages,
// served at /console by the gateway's own binary, whose scripts call the
// gateway's API (the admin API and the normal API) with a session cookie.
// The console holds no power of its own: every action it offers is an API
// request that the gateway authenticates, limits and records as any other.
//
// Signing in exchanges a gateway key for a session: a random token in an
// HttpOnly cookie, whose SHA-256 alone is stored, so sessions survive
// restarts and work on every replica. Each request looks the session's key
// up in the key cache, so a revoked key's sessions end with the cache's
// next poll.
package console

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/grokgate/grokgate"
	"github.com/grokgate/grokgate/gateway"
	"github.com/grokgate/grokgate/keys"
)

//go:embed static templates
var assets embed.FS

// Store keeps the sessions; both grokgate stores provide it.
type Store interface {
	CreateSession(ctx context.Context, se grokgate.Session) error
	SessionByHash(ctx context.Context, h [32]byte, now time.Time) (grokgate.Session, error)
	DeleteSession(ctx context.Context, h [32]byte) error
	PruneSessions(ctx context.Context, before time.Time) (int64, error)
}

// Keys authenticates the key pasted at sign-in and finds a session's key
// on every request (package keys' Cache).
type Keys interface {
	Authenticate(ctx context.Context, secret string) (*grokgate.Key, error)
	KeyByID(id string) (*grokgate.Key, error)
}

// Options configure a Console. Zero values mean the documented defaults.
type Options struct {
	// SessionTTL is how long a sign-in lasts; 0 means 12h.
	SessionTTL time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// CookieName is the session cookie's name.
const CookieName = "grokgate_session"

// Console serves the pages under /console and resolves session cookies for
// the gateway (gateway.SessionAuthenticator).
type Console struct {
	log   *slog.Logger
	store Store
	keys  Keys
	opts  Options
	pages *template.Template
	mux   *http.ServeMux
}

// New returns the console.
func New(log *slog.Logger, store Store, k Keys, opts Options) *Console {
	if opts.SessionTTL <= 0 {
		opts.SessionTTL = 12 * time.Hour
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	c := &Console{log: log, store: store, keys: k, opts: opts, mux: http.NewServeMux()}
	c.pages = template.Must(template.New("").ParseFS(assets, "templates/*.html"))
	static, _ := fs.Sub(assets, "static")
	files := http.FileServerFS(static)
	c.mux.Handle("GET /console/static/", http.StripPrefix("/console/static/", files))
	c.mux.HandleFunc("GET /console", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/console/", http.StatusSeeOther)
	})
	c.mux.HandleFunc("GET /console/{$}", c.handlePage)
	c.mux.HandleFunc("GET /console/{page}", c.handlePage)
	c.mux.HandleFunc("GET /console/login", c.handleLoginForm)
	c.mux.HandleFunc("POST /console/login", c.handleLogin)
	c.mux.HandleFunc("POST /console/logout", c.handleLogout)
	return c
}

// ServeHTTP serves /console and everything under it, each answer with
// headers that forbid inline script, framing and type sniffing.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "+
		"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "same-origin") // no-referrer would make the browser send "Origin: null" on our own forms
	if strings.HasPrefix(r.URL.Path, "/console/static/") {
		h.Set("Cache-Control", "no-cache")
	} else {
		h.Set("Cache-Control", "no-store")
	}
	c.mux.ServeHTTP(w, r)
}

// Session implements gateway.SessionAuthenticator.
func (c *Console) Session(r *http.Request) (*grokgate.Key, string, error) {
	ck, err := r.Cookie(CookieName)
	if err != nil || ck.Value == "" {
		return nil, "", nil
	}
	k, token, err := c.session(r.Context(), ck.Value)
	return k, token, err
}

// session resolves a cookie's token to its key and CSRF token.
func (c *Console) session(ctx context.Context, token string) (*grokgate.Key, string, error) {
	raw, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil || len(raw) != 32 {
		return nil, "", gateway.ErrSessionEnded
	}
	se, err := c.store.SessionByHash(ctx, sha256.Sum256(raw), c.opts.Now())
	if errors.Is(err, grokgate.ErrNotFound) {
		return nil, "", gateway.ErrSessionEnded
	} else if err != nil {
		return nil, "", err
	}
	k, err := c.keys.KeyByID(se.KeyID)
	if err != nil {
		return nil, "", err
	}
	return k, csrfToken(raw), nil
}

// csrfToken derives a session's CSRF token from its secret token, so it
// needs no storage; the stored hash cannot give it (another input).
func csrfToken(raw []byte) string {
	sum := sha256.Sum256(append([]byte("grokgate console csrf\x00"), raw...))
	return hex.EncodeToString(sum[:16])
}

// secure reports whether the browser reached us over HTTPS, directly or
// through a proxy that says so: only then may the cookie be Secure, or the
// browser would never send it back over plain HTTP.
func secure(r *http.Request) bool {
	return r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https")
}

// sameOrigin refuses a form posted by another site (login CSRF: signing a
// victim in with the attacker's key). Browsers send Origin on every POST.
func sameOrigin(r *http.Request) bool {
	o := r.Header.Get("Origin")
	if o == "" {
		return true // not a browser: nothing to forge
	}
	u, err := url.Parse(o)
	return err == nil && u.Host == r.Host
}

func (c *Console) handleLoginForm(w http.ResponseWriter, r *http.Request) {
	c.render(w, http.StatusOK, "login", pageData{Title: "Sign in"})
}

func (c *Console) handleLogin(w http.ResponseWriter, r *http.Request) {
	if !sameOrigin(r) {
		c.render(w, http.StatusForbidden, "login", pageData{Title: "Sign in", Error: "This sign-in form was sent from another site."})
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 4<<10)
	secret := strings.TrimSpace(r.PostFormValue("key"))
	k, err := c.keys.Authenticate(r.Context(), secret)
	if errors.Is(err, keys.ErrUnavailable) {
		// Not the key's fault: the database could not confirm it.
		c.log.Warn("a console sign-in could not be checked", "err", err)
		c.render(w, http.StatusServiceUnavailable, "login", pageData{Title: "Sign in", Error: "grokgate's database is not answering, so your key cannot be checked; try again shortly."})
		return
	}
	if err != nil {
		msg := "That is not a grokgate key; paste a key that starts with \"gg-\"."
		switch {
		case errors.Is(err, keys.ErrRevoked):
			msg = "That key has been revoked."
		case errors.Is(err, keys.ErrExpired):
			msg = "That key has expired."
		case errors.Is(err, keys.ErrMissing):
			msg = "Paste your grokgate key."
		}
		c.render(w, http.StatusUnauthorized, "login", pageData{Title: "Sign in", Error: msg})
		return
	}
	var raw [32]byte
	rand.Read(raw[:])
	now := c.opts.Now()
	se := grokgate.Session{Hash: sha256.Sum256(raw[:]), KeyID: k.ID, CreatedAt: now, ExpiresAt: now.Add(c.opts.SessionTTL)}
	if err := c.store.CreateSession(r.Context(), se); err != nil {
		c.log.Error("storing a console session failed", "err", err)
		c.render(w, http.StatusServiceUnavailable, "login", pageData{Title: "Sign in", Error: "grokgate's database did not answer; try again shortly."})
		return
	}
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: base64.RawURLEncoding.EncodeToString(raw[:]), Path: "/",
		Expires: se.ExpiresAt, MaxAge: int(c.opts.SessionTTL / time.Second), HttpOnly: true, Secure: secure(r),
		SameSite: http.SameSiteStrictMode})
	http.Redirect(w, r, "/console/", http.StatusSeeOther)
}

func (c *Console) handleLogout(w http.ResponseWriter, r *http.Request) {
	if ck, err := r.Cookie(CookieName); err == nil {
		raw, err := base64.RawURLEncoding.DecodeString(ck.Value)
		if err == nil && len(raw) == 32 {
			if r.PostFormValue("csrf") != csrfToken(raw) {
				http.Error(w, "sign-out needs the page's CSRF token; reload the console and try again", http.StatusForbidden)
				return
			}
			if err := c.store.DeleteSession(r.Context(), sha256.Sum256(raw)); err != nil {
				c.log.Error("deleting a console session failed", "err", err)
				http.Error(w, "grokgate's database did not answer; try again shortly", http.StatusServiceUnavailable)
				return
			}
		}
	}
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, Secure: secure(r),
		SameSite: http.SameSiteStrictMode})
	http.Redirect(w, r, "/console/login", http.StatusSeeOther)
}

// page is one page of the console: its path under /console/, its title,
// and whether user keys see it.
type page struct{ Path, Title string }

// nav lists the pages a key's role may open.
func nav(admin bool) []page {
	if admin {
		return []page{{"overview", "Overview"}, {"keys", "Keys"}, {"usage", "Usage"}, {"requests", "Requests"}, {"playground", "Playground"}}
	}
	return []page{{"overview", "My usage"}, {"usage", "Usage"}, {"requests", "Requests"}, {"playground", "Playground"}}
}

type pageData struct {
	Title string
	Page  string
	Nav   []page
	Key   *grokgate.Key
	Admin bool
	CSRF  string
	Error string
}

func (c *Console) handlePage(w http.ResponseWriter, r *http.Request) {
	k, csrf, err := c.Session(r)
	if k == nil {
		if err != nil && !errors.Is(err, gateway.ErrSessionEnded) && !isKeyError(err) {
			c.log.Error("reading a console session failed", "err", err)
		}
		http.Redirect(w, r, "/console/login", http.StatusSeeOther)
		return
	}
	name := r.PathValue("page")
	if name == "" {
		name = "overview"
	}
	admin := k.Role == grokgate.RoleAdmin
	pages := nav(admin)
	for _, p := range pages {
		if p.Path == name {
			c.render(w, http.StatusOK, name, pageData{Title: p.Title, Page: name, Nav: pages, Key: k, Admin: admin, CSRF: csrf})
			return
		}
	}
	c.render(w, http.StatusNotFound, "notfound", pageData{Title: "Not found", Nav: pages, Key: k, Admin: admin, CSRF: csrf})
}

func isKeyError(err error) bool {
	return errors.Is(err, keys.ErrInvalid) || errors.Is(err, keys.ErrRevoked) || errors.Is(err, keys.ErrExpired)
}

func (c *Console) render(w http.ResponseWriter, status int, name string, d pageData) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	if err := c.pages.ExecuteTemplate(w, name, d); err != nil {
		c.log.Error("rendering a console page failed", "page", name, "err", err)
	}
}

// Prune deletes expired sessions every interval until ctx ends. Every
// replica may prune: the deletes are idempotent.
func (c *Console) Prune(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		pctx, cancel := context.WithTimeout(ctx, time.Minute)
		if _, err := c.store.PruneSessions(pctx, c.opts.Now()); err != nil && ctx.Err() == nil {
			c.log.Warn("deleting expired console sessions failed", "err", err)
		}
		cancel()
	}
}
