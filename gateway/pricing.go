package gateway

import (
	"context"
	"strconv"

	"github.com/grokgate/grokgate/apierror"
	"github.com/grokgate/grokgate/pricing"
)

const (
	// DefaultMaxTokens is the completion a request without max_tokens,
	// max_completion_tokens or max_output_tokens reserves per choice.
	DefaultMaxTokens = 4096
	// DefaultReasoningTokens is what a chat request to a reasoning model
	// reserves per choice, unless Config.ReasoningTokens says otherwise,
	// for the thinking that max_tokens does not cap (xAI counts it apart,
	// in reasoning_tokens). On the Responses API max_output_tokens
	// includes reasoning, so it is added only when max_output_tokens is
	// absent.
	DefaultReasoningTokens = 2048
	// DefaultToolCalls is how many calls of each declared server-side tool
	// a Responses request reserves when it sets no max_turns.
	DefaultToolCalls = 16
)

// FetchModels fetches xAI's model list (modalities, prices, context
// windows) once, within ctx, through the upstream client like every other
// call: serve calls it before it listens, so the first requests are priced
// from it. It fails when the list could not be had; the built-in price
// table (pricing.Fallback) then stands in.
func (s *Server) FetchModels(ctx context.Context) error { return s.models.fetchNow(ctx) }

// RefreshModels keeps the model list fresh until ctx ends: fetched when it
// is ModelInfoTTL old (at once if never fetched), retried within 30 s after
// a failure, the last list kept meanwhile.
func (s *Server) RefreshModels(ctx context.Context) { s.models.refresh(ctx) }

// Prices returns the price book in use: xAI's last listed prices over the
// built-in table. It never waits for xAI.
func (s *Server) Prices() *pricing.Book { return s.models.prices() }

// EstimateCost is the cost, in ticks, charged for a request to model whose
// usage never came, from its estimated tokens and the model's prices
// (pricing.EstimateCost with Prices): never 0.
func (s *Server) EstimateCost(model string, t pricing.Tokens) int64 {
	return pricing.EstimateCost(s.Prices(), model, t)
}

// modelPrices returns the prices and context window of model, the dearest
// known for a model the book does not list, so no request is reserved for
// nothing.
func (s *Server) modelPrices(model string) pricing.Model {
	book := s.Prices()
	m, _ := book.Lookup(model)
	if m.ContextLength <= 0 {
		d, _ := book.Lookup("")
		m.ContextLength = d.ContextLength
	}
	return m
}

// outputTooLarge refuses an output cap (max_tokens, max_completion_tokens,
// max_output_tokens: param) larger than the model's context window, which
// no answer can reach: it would only inflate the reservation.
func outputTooLarge(m pricing.Model, model, param string, v int64) *apierror.Error {
	if m.ContextLength <= 0 || v <= m.ContextLength {
		return nil
	}
	return apierror.Invalid(param, "Invalid value for '"+param+"': "+strconv.FormatInt(v, 10)+
		"; the model "+quote(model)+" has a context window of "+strconv.FormatInt(m.ContextLength, 10)+
		" tokens, so '"+param+"' must be at most "+strconv.FormatInt(m.ContextLength, 10)+".")
}

// clampOutput bounds an output cap by the context window before any
// arithmetic, and gives the default when there is none.
func clampOutput(m pricing.Model, v int64) int64 {
	if v <= 0 {
		v = DefaultMaxTokens
	}
	if m.ContextLength > 0 {
		v = min(v, m.ContextLength)
	}
	return v
}

// chatNeed is a chat (or vision) request's worst case: tokens, the prompt
// estimate plus n times the completion cap (and, for a reasoning model, the
// reasoning allowance); cost, those tokens at the model's prices.
func chatNeed(m pricing.Model, req parsedChat, reasoning int64) (tokens, cost int64) {
	out := clampOutput(m, req.maxTokens)
	if m.Reasoning {
		out = pricing.Add(out, reasoning)
	}
	output := pricing.Mul(max(req.n, 1), out)
	return pricing.Add(req.promptTokens, output), m.Bound(req.promptTokens, output)
}

// responsesNeed is a Responses request's worst case: the prompt estimate
// plus max_output_tokens (which includes reasoning) or the default and the
// reasoning allowance; cost, those tokens at the model's prices plus each
// declared server-side tool's price times max_turns or DefaultToolCalls.
func responsesNeed(m pricing.Model, tools map[string]int64, req *parsedResponses, reasoning int64) (tokens, cost int64) {
	out := clampOutput(m, req.maxOutput)
	if req.maxOutput <= 0 && m.Reasoning {
		out = pricing.Add(out, reasoning)
	}
	tokens = pricing.Add(req.promptTokens, out)
	cost = m.Bound(req.promptTokens, out)
	calls := int64(DefaultToolCalls)
	if req.maxTurns > 0 {
		calls = req.maxTurns
	}
	for _, t := range req.serverTools {
		cost = pricing.Add(cost, pricing.Mul(calls, pricing.PriceOf(tools, t)))
	}
	return tokens, cost
}

// imagesCost is an image request's price: n images at the model's
// per-image price, twice that at resolution 2k.
func (s *Server) imagesCost(req parsedImages) int64 {
	c := pricing.Mul(req.n, pricing.PriceOf(s.cfg.ImagePrices, req.model))
	if req.hd {
		c = pricing.Mul(c, 2)
	}
	return c
}
