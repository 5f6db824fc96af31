package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/grokgate/grokgate/pricing"
	"github.com/grokgate/grokgate/xai"
)

const (
	// modelInfoFetchTimeout bounds one metadata fetch; it is shared by every
	// request waiting for it, so it does not follow any one client.
	modelInfoFetchTimeout = 10 * time.Second
	// modelInfoRetry spaces fetches after a failure or a miss.
	modelInfoRetry = 30 * time.Second
)

// modelCatalog caches what xAI's GET /language-models says about each model:
// which accept image input (its input_modalities, which docs/wire-format.md
// says to trust over any built-in table) and their prices and context
// windows (package pricing), for admission's reservations and the estimates
// of requests whose usage never came.
type modelCatalog struct {
	up  Upstream
	ttl time.Duration
	now func() time.Time
	log *slog.Logger
	// sem admits one fetch at a time; others wait for its result, or for
	// their own client to give up.
	sem chan struct{}
	// book holds the prices: the last list fetched over the fallback
	// table, or the table alone until a fetch succeeds. Every admission
	// reads it, so it is swapped whole rather than locked.
	book     atomic.Pointer[pricing.Book]
	fallback *pricing.Book

	mu        sync.Mutex
	byID      map[string]modelMeta // ids and aliases
	fetchedAt time.Time            // last successful fetch; zero if none
	triedAt   time.Time            // end of the last fetch, successful or not
	fetching  bool                 // a fetch is in flight
}

type modelMeta struct {
	id    string // canonical id
	image bool   // accepts image input
}

func newModelCatalog(up Upstream, ttl time.Duration, now func() time.Time, log *slog.Logger) *modelCatalog {
	c := &modelCatalog{up: up, ttl: ttl, now: now, log: log, sem: make(chan struct{}, 1), fallback: pricing.Fallback()}
	c.book.Store(c.fallback)
	return c
}

// prices returns the current price book; it never waits for a fetch.
func (c *modelCatalog) prices() *pricing.Book { return c.book.Load() }

// refresh keeps the list fresh until ctx ends: it fetches whenever the last
// successful fetch is a TTL old (at once if there was none), and
// modelInfoRetry (or the TTL, if shorter) after a failure. Lookups that find
// the list stale or lacking a model still fetch on their own (lookup).
func (c *modelCatalog) refresh(ctx context.Context) {
	for {
		if wait := c.untilDue(); wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return
			}
			continue
		}
		if c.fetchNow(ctx) != nil && ctx.Err() != nil {
			return
		}
	}
}

// untilDue is how long until the list should be fetched again.
func (c *modelCatalog) untilDue() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	switch {
	case c.triedAt.IsZero():
		return 0
	case c.fetchedAt.IsZero() || c.triedAt.After(c.fetchedAt): // the last fetch failed
		return c.triedAt.Add(min(modelInfoRetry, c.ttl)).Sub(now)
	}
	return c.fetchedAt.Add(c.ttl).Sub(now)
}

// fetchNow fetches the list within ctx, one fetch at a time, and reports
// whether it failed.
func (c *modelCatalog) fetchNow(ctx context.Context) error {
	select {
	case c.sem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-c.sem }()
	c.fetch(ctx)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fetchedAt.IsZero() || c.triedAt.After(c.fetchedAt) {
		return errModelList
	}
	return nil
}

var errModelList = errors.New("xAI's model list could not be fetched")

// lookup returns what upstream says about model id. found is false when
// the model is not listed or no metadata could be had; the caller then lets
// xAI judge the request itself.
func (c *modelCatalog) lookup(ctx context.Context, id string) (modelMeta, bool) {
	m, found, fetch := c.cached(id)
	if !fetch {
		return m, found
	}
	select {
	case c.sem <- struct{}{}:
	case <-ctx.Done():
		return m, found
	}
	defer func() { <-c.sem }()
	// Another request may have fetched while this one waited.
	if m, found, fetch = c.cached(id); fetch {
		c.fetch(context.WithoutCancel(ctx))
		m, found, _ = c.cached(id)
	}
	return m, found
}

// cached answers from memory and says whether to fetch: when the list is
// stale or lacks the model (it may be new), but not again within
// modelInfoRetry (or the TTL, if shorter) of the last attempt, so neither a
// failing upstream nor a misspelt model turns every request into two.
// While a fetch is in flight, stale data answers at once; without any, the
// caller waits for that fetch.
func (c *modelCatalog) cached(id string) (m modelMeta, found, fetch bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	m, found = c.byID[id]
	now := c.now()
	fresh := !c.fetchedAt.IsZero() && now.Sub(c.fetchedAt) < c.ttl
	switch {
	case fresh && found:
		return m, true, false
	case c.fetching:
		return m, found, !found
	}
	return m, found, c.triedAt.IsZero() || now.Sub(c.triedAt) >= min(modelInfoRetry, c.ttl)
}

// languageModels is the part of xAI's GET /language-models answer used here.
type languageModels struct {
	Models []struct {
		ID              string   `json:"id"`
		Aliases         []string `json:"aliases"`
		InputModalities []string `json:"input_modalities"`
	} `json:"models"`
}

// fetch downloads the list within ctx: a request's lookup passes a context
// detached from its client (the result serves every request waiting), the
// refresh loop its own, which ends with the server.
func (c *modelCatalog) fetch(ctx context.Context) {
	c.mu.Lock()
	c.fetching = true
	c.mu.Unlock()
	byID, book, err := c.download(ctx)
	c.mu.Lock()
	c.fetching, c.triedAt = false, c.now()
	if err == nil {
		c.byID, c.fetchedAt = byID, c.triedAt
		if book != nil {
			c.book.Store(book.Under(c.fallback))
		}
	}
	c.mu.Unlock()
	if err != nil && ctx.Err() == nil {
		// Stale metadata, if any, keeps serving; without any, the vision
		// check is skipped and xAI judges the model itself, and prices
		// come from the built-in table (package pricing).
		c.log.Warn("fetching model metadata from xAI failed; image-capability checks and prices use the last known list, or the built-in price table",
			"err", err, "retry_in", min(modelInfoRetry, c.ttl).String())
	}
}

func (c *modelCatalog) download(ctx context.Context) (map[string]modelMeta, *pricing.Book, error) {
	ctx, cancel := context.WithTimeout(ctx, modelInfoFetchTimeout)
	defer cancel()
	resp, err := c.up.Do(ctx, xai.Request{Method: http.MethodGet, Path: "/language-models"})
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return nil, nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, nil, fmt.Errorf("GET /language-models: status %d", resp.StatusCode)
	}
	var lm languageModels
	if err := json.Unmarshal(body, &lm); err != nil {
		return nil, nil, fmt.Errorf("GET /language-models: %w", err)
	}
	if len(lm.Models) == 0 {
		return nil, nil, fmt.Errorf("GET /language-models: no models listed")
	}
	byID := make(map[string]modelMeta, 2*len(lm.Models))
	for _, m := range lm.Models {
		meta := modelMeta{id: m.ID}
		for _, in := range m.InputModalities {
			meta.image = meta.image || in == "image"
		}
		byID[m.ID] = meta
		for _, a := range m.Aliases {
			byID[a] = meta
		}
	}
	book, err := pricing.Parse(body, c.fallback)
	if err != nil {
		// The modalities are still good; prices stay as they were.
		c.log.Warn("xAI's model list has no usable prices; keeping the last known ones", "err", err)
		book = nil
	}
	return byID, book, nil
}

// visionModels lists the canonical ids that accept images, for messages.
func (c *modelCatalog) visionModels() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	seen := map[string]bool{}
	var out []string
	for _, m := range c.byID {
		if m.image && !seen[m.id] {
			seen[m.id] = true
			out = append(out, m.id)
		}
	}
	sort.Strings(out)
	return out
}
