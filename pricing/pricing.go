// Package pricing turns tokens, images and server-side tool calls into
// xAI's cost_in_usd_ticks (10^10 ticks = 1 USD): the worst case a request
// reserves against a key's budgets when it is admitted, and the estimate a
// request is charged when xAI's usage never arrives.
//
// Token prices come from xAI's GET /v1/language-models (Parse), whose
// fields are in USD cents per 100 million tokens: one cent is 10^8 ticks,
// so the listed figure is exactly ticks per token. When that list cannot be
// had, Fallback's built-in table stands in. Image and server-side tool
// prices are not in that list; they come from tables (DefaultImagePrices,
// DefaultToolPrices) the operator can replace. All arithmetic saturates at
// math.MaxInt64 instead of wrapping.
package pricing

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
)

// Model is what the cost arithmetic needs to know about one chat model.
// Prices are ticks per token.
type Model struct {
	ID string
	// Prompt, Cached, Completion and PromptImage are xAI's
	// prompt_text_token_price, cached_prompt_text_token_price,
	// completion_text_token_price and prompt_image_token_price.
	Prompt, Cached, Completion, PromptImage int64
	// LongContextThreshold is the prompt size at or above which the
	// *Long prices apply (0: none).
	LongContextThreshold                   int64
	PromptLong, CachedLong, CompletionLong int64
	// ContextLength is the model's context window in tokens (0: unknown).
	ContextLength int64
	// Reasoning models think before they answer, in tokens that
	// max_tokens does not cap on chat completions.
	Reasoning bool
}

// Tokens are a request's token counts as xAI reports them: Completion
// excludes Reasoning, Cached is part of Prompt.
type Tokens struct {
	Prompt, Cached, Completion, Reasoning int64
}

// Cost is what xAI bills for t on model m, as its cost_in_usd_ticks
// arithmetic does: uncached prompt tokens at the prompt price, cached ones
// at the cached price, completion and reasoning at the completion price;
// the long-context prices from the threshold on.
func (m Model) Cost(t Tokens) int64 {
	prompt, cached, completion := m.prices(t.Prompt)
	c := clampNonNeg(t.Cached)
	p := clampNonNeg(t.Prompt)
	if c > p {
		c = p
	}
	return add(add(mul(p-c, prompt), mul(c, cached)), mul(add(clampNonNeg(t.Completion), clampNonNeg(t.Reasoning)), completion))
}

// Bound is the most a request can cost with prompt estimated prompt tokens
// (images included) and at most output completion and reasoning tokens:
// no cache discount, the prompt at the dearer of the text and image
// prices, the long-context prices if the request may reach them.
func (m Model) Bound(prompt, output int64) int64 {
	p, _, c := m.prices(add(clampNonNeg(prompt), clampNonNeg(output)))
	p = max(p, m.PromptImage)
	return add(mul(clampNonNeg(prompt), p), mul(clampNonNeg(output), c))
}

// prices returns the prompt, cached and completion prices that apply to a
// request of n tokens.
func (m Model) prices(n int64) (prompt, cached, completion int64) {
	if m.LongContextThreshold > 0 && n >= m.LongContextThreshold {
		return max(m.PromptLong, m.Prompt), max(m.CachedLong, m.Cached), max(m.CompletionLong, m.Completion)
	}
	return m.Prompt, m.Cached, m.Completion
}

// Book is a set of model prices, by id and alias. It is immutable once
// made, so it is shared without locks.
type Book struct {
	byID map[string]Model
	// dearest stands in for a model the book does not list: the highest of
	// each price and the largest context, so an unknown model is never
	// reserved for less than a known one.
	dearest Model
}

// Lookup returns the prices of model (an id or alias). A model the book
// does not list gets the book's dearest prices and found is false; its
// Reasoning is then true, the safe assumption, unless the name says
// "non-reasoning".
func (b *Book) Lookup(model string) (m Model, found bool) {
	if b != nil {
		if m, ok := b.byID[model]; ok {
			return m, true
		}
		m = b.dearest
	} else {
		m = Fallback().dearest
	}
	m.ID = model
	m.Reasoning = !strings.Contains(model, "non-reasoning")
	return m, false
}

// Len is the number of ids and aliases listed.
func (b *Book) Len() int {
	if b == nil {
		return 0
	}
	return len(b.byID)
}

// Under returns a book with b's models and, for any model b does not list,
// fallback's: the live list wins, the built-in table fills its gaps.
func (b *Book) Under(fallback *Book) *Book {
	out := &Book{byID: make(map[string]Model, len(b.byID)+len(fallback.byID))}
	for id, m := range fallback.byID {
		out.byID[id] = m
	}
	for id, m := range b.byID {
		out.byID[id] = m
	}
	out.dearest = dearest(out.byID)
	return out
}

// EstimateCost is the cost charged for a request whose usage never came
// (the client left, the stream was cut, the process died): tokens estimated
// from what was sent and relayed, priced as xAI would (Model.Cost) from
// book's prices for model (Fallback's when book is nil; the dearest known
// prices for a model not listed). It is never below 1 tick, so a request
// xAI took is never free in the ledger or against a budget.
func EstimateCost(book *Book, model string, t Tokens) int64 {
	m, _ := book.Lookup(model)
	return max(m.Cost(t), 1)
}

// languageModels is xAI's GET /language-models answer, the fields read here.
type languageModels struct {
	Models []languageModel `json:"models"`
}

type languageModel struct {
	ID                   string   `json:"id"`
	Aliases              []string `json:"aliases"`
	Prompt               *int64   `json:"prompt_text_token_price"`
	Cached               *int64   `json:"cached_prompt_text_token_price"`
	Completion           *int64   `json:"completion_text_token_price"`
	PromptImage          *int64   `json:"prompt_image_token_price"`
	LongContextThreshold *int64   `json:"long_context_threshold"`
	PromptLong           *int64   `json:"prompt_text_token_price_long_context"`
	CachedLong           *int64   `json:"cached_prompt_text_token_price_long_context"`
	CompletionLong       *int64   `json:"completion_text_token_price_long_context"`
	ContextLength        *int64   `json:"context_length"`
}

// Parse reads xAI's GET /language-models answer. A model listed without a
// prompt or completion price is left out (the fallback table then prices
// it); prices that are null or absent otherwise count as 0, except the
// cached price, which is the prompt price, and the image price, which is
// the prompt price too. A model's context window is taken from
// context_length when listed, else from fallback's entry for the same id.
// Which models reason is not in the list: a model reasons unless fallback
// says it does not or its id says "non-reasoning".
func Parse(body []byte, fallback *Book) (*Book, error) {
	var lm languageModels
	if err := json.Unmarshal(body, &lm); err != nil {
		return nil, fmt.Errorf("GET /language-models: %w", err)
	}
	if len(lm.Models) == 0 {
		return nil, errors.New("GET /language-models: no models listed")
	}
	b := &Book{byID: make(map[string]Model, 2*len(lm.Models))}
	for _, l := range lm.Models {
		if l.ID == "" || l.Prompt == nil || l.Completion == nil {
			continue
		}
		m := Model{ID: l.ID, Prompt: val(l.Prompt, 0), Completion: val(l.Completion, 0)}
		m.Cached = val(l.Cached, m.Prompt)
		m.PromptImage = val(l.PromptImage, m.Prompt)
		m.LongContextThreshold = val(l.LongContextThreshold, 0)
		m.PromptLong, m.CachedLong, m.CompletionLong = val(l.PromptLong, 0), val(l.CachedLong, 0), val(l.CompletionLong, 0)
		known, found := fallback.byID[l.ID]
		m.ContextLength = val(l.ContextLength, 0)
		if m.ContextLength <= 0 && found {
			m.ContextLength = known.ContextLength
		}
		m.Reasoning = !strings.Contains(l.ID, "non-reasoning") && (!found || known.Reasoning)
		if m.Prompt < 0 || m.Completion < 0 || m.Cached < 0 || m.PromptImage < 0 {
			return nil, fmt.Errorf("GET /language-models: model %q has a negative price", l.ID)
		}
		b.byID[l.ID] = m
		for _, a := range l.Aliases {
			am := m
			// An alias that names the non-reasoning variant bills as its
			// model but does not think (grok-4-1-fast-non-reasoning).
			am.Reasoning = m.Reasoning && !strings.Contains(a, "non-reasoning")
			b.byID[a] = am
		}
	}
	if len(b.byID) == 0 {
		return nil, errors.New("GET /language-models: no model with prices listed")
	}
	b.dearest = dearest(b.byID)
	return b, nil
}

func val(p *int64, def int64) int64 {
	if p == nil {
		return def
	}
	return *p
}

// dearest is the highest of each price and the largest context of models.
func dearest(models map[string]Model) Model {
	var d Model
	for _, m := range models {
		d.Prompt, d.Cached = max(d.Prompt, m.Prompt), max(d.Cached, m.Cached)
		d.Completion, d.PromptImage = max(d.Completion, m.Completion), max(d.PromptImage, m.PromptImage)
		d.PromptLong, d.CachedLong = max(d.PromptLong, m.PromptLong), max(d.CachedLong, m.CachedLong)
		d.CompletionLong = max(d.CompletionLong, m.CompletionLong)
		if m.LongContextThreshold > 0 && (d.LongContextThreshold == 0 || m.LongContextThreshold < d.LongContextThreshold) {
			d.LongContextThreshold = m.LongContextThreshold
		}
		d.ContextLength = max(d.ContextLength, m.ContextLength)
	}
	d.Reasoning = true
	return d
}

// Fallback is the built-in price table, used until xAI's list has been
// fetched and for models it does not list. Its prices are xAI's published
// ones for the models grokgate knows (the same the built-in simulator
// bills); its context windows are the published ones; Reasoning marks the
// models that think before answering. It is a function, so no caller can
// change a shared table.
func Fallback() *Book {
	type row struct {
		ids                        []string
		prompt, cached, completion int64
		context                    int64
		reasoning                  bool
	}
	rows := []row{
		{[]string{"grok-4.3", "grok-4-1-fast-reasoning"}, 2000, 500, 5000, 2_000_000, true},
		{[]string{"grok-4-1-fast-non-reasoning"}, 2000, 500, 5000, 2_000_000, false},
		{[]string{"grok-4.5"}, 20000, 5000, 100000, 2_000_000, true},
		{[]string{"grok-4.6"}, 30000, 7500, 150000, 2_000_000, true},
		{[]string{"grok-4.20-0309-reasoning", "grok-4-fast-reasoning", "grok-4-0709"}, 20000, 2000, 60000, 2_000_000, true},
		{[]string{"grok-4.20-0309-non-reasoning", "grok-4-fast-non-reasoning"}, 20000, 2000, 60000, 2_000_000, false},
		{[]string{"grok-code-fast-1"}, 2000, 200, 15000, 256_000, true},
		{[]string{"grok-3"}, 30000, 7500, 150000, 131_072, false},
		{[]string{"grok-3-mini"}, 3000, 750, 5000, 131_072, true},
	}
	b := &Book{byID: make(map[string]Model, 16)}
	for _, r := range rows {
		for _, id := range r.ids {
			b.byID[id] = Model{ID: r.ids[0], Prompt: r.prompt, Cached: r.cached, Completion: r.completion,
				PromptImage: r.prompt, ContextLength: r.context, Reasoning: r.reasoning}
		}
	}
	b.dearest = dearest(b.byID)
	return b
}

// DefaultImagePrices are the built-in per-image prices of xAI's image
// models, in ticks (the same the built-in simulator bills); resolution 2k
// costs twice as much. xAI's language-models list does not carry them.
func DefaultImagePrices() map[string]int64 {
	return map[string]int64{
		"grok-imagine-image":         200_000_000,
		"grok-imagine-image-2.0":     400_000_000,
		"grok-imagine-image-quality": 700_000_000,
	}
}

// DefaultToolPrices are the built-in per-call prices of the Responses
// API's server-side tools, in ticks: xAI's published $5 per 1,000 web
// search, X search and code interpreter calls, $2.50 per 1,000 collection
// (file) searches, $10 per 1,000 attachment (document) searches; MCP calls
// are billed as tokens only.
func DefaultToolPrices() map[string]int64 {
	return map[string]int64{
		"web_search":       50_000_000,
		"x_search":         50_000_000,
		"code_interpreter": 50_000_000,
		"file_search":      25_000_000,
		"document_search":  100_000_000,
		"mcp":              0,
	}
}

// PriceOf returns table[name], or the table's highest price for a name it
// does not list, so an unknown image model or tool is never free.
func PriceOf(table map[string]int64, name string) int64 {
	if p, ok := table[name]; ok {
		return p
	}
	var hi int64
	for _, p := range table {
		hi = max(hi, p)
	}
	return hi
}

// Mul and Add are saturating: the result is math.MaxInt64 where the true
// one would not fit; negative inputs count as 0.
func Mul(a, b int64) int64 { return mul(clampNonNeg(a), clampNonNeg(b)) }

// Add is saturating addition; see Mul.
func Add(a, b int64) int64 { return add(clampNonNeg(a), clampNonNeg(b)) }

func mul(a, b int64) int64 {
	if a == 0 || b == 0 {
		return 0
	}
	if a > math.MaxInt64/b {
		return math.MaxInt64
	}
	return a * b
}

func add(a, b int64) int64 {
	if a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}

func clampNonNeg(v int64) int64 { return max(v, 0) }
