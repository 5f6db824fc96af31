package main

import (
	"maps"
	"strconv"
	"strings"

	"github.com/grokgate/grokgate/gateway"
	"github.com/grokgate/grokgate/pricing"
)

// priceConfig holds the per-image and per-tool prices that xAI's model list
// does not carry, as NAME=TICKS lists that change or add to the built-in
// tables (pricing.DefaultImagePrices, pricing.DefaultToolPrices).
type priceConfig struct {
	imageSpec, toolSpec string
	images, tools       map[string]int64
	reasoning           int64 // tokens reserved for a reasoning model's thinking
}

func (p *priceConfig) register(s *settings) {
	s.String(&p.imageSpec, "image-prices", "GROKGATE_IMAGE_PRICES", "",
		"per-image prices in ticks (10^10 = 1 USD) reserved against budgets, as MODEL=TICKS,... over the built-in table")
	s.String(&p.toolSpec, "tool-prices", "GROKGATE_TOOL_PRICES", "",
		"per-call prices in ticks of the Responses API's server-side tools, as TOOL=TICKS,... over the built-in table")
	s.Int64(&p.reasoning, "reasoning-tokens", "GROKGATE_REASONING_TOKENS", gateway.DefaultReasoningTokens,
		"tokens a request to a reasoning model reserves for its thinking, per choice, beyond max_tokens")
}

// check parses both lists once the flags are read.
func (p *priceConfig) check(s *settings) {
	var err error
	p.images, err = priceTable(pricing.DefaultImagePrices(), p.imageSpec)
	s.check(err == nil, "GROKGATE_IMAGE_PRICES/--image-prices: %v", err)
	p.tools, err = priceTable(pricing.DefaultToolPrices(), p.toolSpec)
	s.check(err == nil, "GROKGATE_TOOL_PRICES/--tool-prices: %v", err)
	s.check(p.reasoning > 0, "GROKGATE_REASONING_TOKENS/--reasoning-tokens must be positive, got %d", p.reasoning)
}

type priceError string

func (e priceError) Error() string { return string(e) }

// priceTable returns base changed by spec, "NAME=TICKS,NAME=TICKS".
func priceTable(base map[string]int64, spec string) (map[string]int64, error) {
	out := maps.Clone(base)
	for item := range strings.SplitSeq(spec, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		name, v, ok := strings.Cut(item, "=")
		n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		if name = strings.TrimSpace(name); !ok || name == "" || err != nil || n < 0 {
			return nil, priceError("expected NAME=TICKS pairs separated by commas, such as web_search=50000000, got " + strconv.Quote(item))
		}
		out[name] = n
	}
	return out, nil
}
