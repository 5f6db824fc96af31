package pricing

import (
	"math"
	"testing"
)

// The recorded usage in docs/wire-format.md (165 prompt, 164 cached, 2
// completion, 129 reasoning on grok-4-fast) cost 739000 ticks.
func TestCostReproducesRecordedExample(t *testing.T) {
	m, found := Fallback().Lookup("grok-4-1-fast-reasoning")
	if !found {
		t.Fatal("grok-4-1-fast-reasoning not in the fallback table")
	}
	if got := m.Cost(Tokens{Prompt: 165, Cached: 164, Completion: 2, Reasoning: 129}); got != 739000 {
		t.Fatalf("cost = %d, want 739000", got)
	}
}

func TestCostSaturates(t *testing.T) {
	m := Model{Prompt: 30000, Cached: 7500, Completion: 150000}
	for _, tok := range []Tokens{
		{Prompt: math.MaxInt64},
		{Completion: math.MaxInt64},
		{Completion: math.MaxInt64 / 2, Reasoning: math.MaxInt64 / 2},
		{Prompt: math.MaxInt64, Cached: math.MaxInt64, Completion: math.MaxInt64, Reasoning: math.MaxInt64},
	} {
		if got := m.Cost(tok); got != math.MaxInt64 {
			t.Errorf("Cost(%+v) = %d, want saturation at MaxInt64", tok, got)
		}
	}
	if got := m.Bound(math.MaxInt64, math.MaxInt64); got != math.MaxInt64 {
		t.Errorf("Bound(max, max) = %d", got)
	}
	if got := m.Cost(Tokens{Prompt: -5, Completion: -1}); got != 0 {
		t.Errorf("negative tokens cost %d, want 0", got)
	}
	if Mul(math.MaxInt64, 2) != math.MaxInt64 || Add(math.MaxInt64, 1) != math.MaxInt64 || Mul(-1, 5) != 0 {
		t.Error("Mul/Add do not saturate")
	}
}

func FuzzCostNeverWraps(f *testing.F) {
	f.Add(int64(10), int64(0), int64(5), int64(100), int64(2000), int64(5000))
	f.Add(int64(math.MaxInt64), int64(1), int64(math.MaxInt64), int64(math.MaxInt64), int64(1), int64(math.MaxInt64))
	f.Fuzz(func(t *testing.T, p, c, out, r, pp, cp int64) {
		m := Model{Prompt: max(pp, 0), Cached: max(pp/4, 0), Completion: max(cp, 0), PromptImage: max(pp, 0)}
		got := m.Cost(Tokens{Prompt: p, Cached: c, Completion: out, Reasoning: r})
		if got < 0 {
			t.Fatalf("Cost wrapped: %d", got)
		}
		b := m.Bound(p, add(clampNonNeg(out), clampNonNeg(r)))
		if b < 0 {
			t.Fatalf("Bound wrapped: %d", b)
		}
		// The bound (no cache discount) is never below the real cost.
		if b < got {
			t.Fatalf("Bound %d < Cost %d", b, got)
		}
	})
}

func TestLongContextPrices(t *testing.T) {
	m := Model{Prompt: 2000, Cached: 500, Completion: 5000, LongContextThreshold: 128_000,
		PromptLong: 4000, CachedLong: 1000, CompletionLong: 10000}
	if got := m.Cost(Tokens{Prompt: 1000, Completion: 10}); got != 1000*2000+10*5000 {
		t.Errorf("short request cost %d", got)
	}
	if got := m.Cost(Tokens{Prompt: 128_000, Completion: 10}); got != 128_000*4000+10*10000 {
		t.Errorf("long request cost %d", got)
	}
	// The bound uses long prices once prompt and output may reach the threshold.
	if got := m.Bound(100_000, 28_000); got != 100_000*4000+28_000*10000 {
		t.Errorf("bound %d", got)
	}
}

const listed = `{"models":[
 {"id":"grok-4.3","fingerprint":"fp_1","created":1,"object":"model","owned_by":"xai","version":"1.0",
  "aliases":["grok-4-1-fast-reasoning","grok-4-1-fast-non-reasoning"],
  "input_modalities":["text","image"],"output_modalities":["text"],
  "prompt_text_token_price":2500,"completion_text_token_price":6000,"cached_prompt_text_token_price":600,
  "prompt_image_token_price":3000,"search_price":0,"context_length":1000000},
 {"id":"grok-new","aliases":[],"prompt_text_token_price":100,"completion_text_token_price":200},
 {"id":"no-prices","aliases":[]}
]}`

func TestParseLanguageModels(t *testing.T) {
	b, err := Parse([]byte(listed), Fallback())
	if err != nil {
		t.Fatal(err)
	}
	m, found := b.Lookup("grok-4.3")
	if !found || m.Prompt != 2500 || m.Completion != 6000 || m.Cached != 600 || m.PromptImage != 3000 || m.ContextLength != 1_000_000 || !m.Reasoning {
		t.Errorf("grok-4.3 = %+v, %v", m, found)
	}
	if a, _ := b.Lookup("grok-4-1-fast-non-reasoning"); a.Reasoning || a.Prompt != 2500 {
		t.Errorf("non-reasoning alias = %+v", a)
	}
	n, found := b.Lookup("grok-new")
	if !found || n.Cached != 100 || n.PromptImage != 100 || !n.Reasoning || n.ContextLength != 0 {
		t.Errorf("grok-new = %+v (cached and image prices default to the prompt price)", n)
	}
	if _, found := b.Lookup("no-prices"); found {
		t.Error("a model without prices was listed")
	}
	// Under the fallback: listed prices win, the table fills the gaps.
	u := b.Under(Fallback())
	if m, _ := u.Lookup("grok-4.3"); m.Prompt != 2500 {
		t.Errorf("live price lost: %+v", m)
	}
	if m, found := u.Lookup("grok-3"); !found || m.Prompt != 30000 || m.Reasoning {
		t.Errorf("fallback gap not filled: %+v", m)
	}
	// An unknown model gets the dearest prices and is assumed to reason.
	d, found := u.Lookup("grok-9")
	if found || d.Completion != 150000 || d.Prompt != 30000 || !d.Reasoning || d.ContextLength != 2_000_000 {
		t.Errorf("unknown model = %+v", d)
	}
	for _, bad := range []string{``, `{}`, `{"models":[]}`, `{"models":[{"id":"x"}]}`, `[1]`,
		`{"models":[{"id":"x","prompt_text_token_price":-1,"completion_text_token_price":1}]}`} {
		if _, err := Parse([]byte(bad), Fallback()); err == nil {
			t.Errorf("Parse(%q) accepted", bad)
		}
	}
}

func TestEstimateCostNeverZero(t *testing.T) {
	if got := EstimateCost(nil, "grok-4.3", Tokens{}); got != 1 {
		t.Errorf("empty estimate = %d, want 1", got)
	}
	if got := EstimateCost(Fallback(), "grok-4.3", Tokens{Prompt: 20, Completion: 99}); got != 20*2000+99*5000 {
		t.Errorf("estimate = %d", got)
	}
	if got := EstimateCost(nil, "", Tokens{Prompt: 1}); got != 30000 {
		t.Errorf("unknown model estimate = %d, want the dearest prompt price", got)
	}
}

func TestPriceOf(t *testing.T) {
	tools := DefaultToolPrices()
	if PriceOf(tools, "web_search") != 50_000_000 || PriceOf(tools, "mcp") != 0 {
		t.Error("listed prices")
	}
	if PriceOf(tools, "new_tool") != 100_000_000 {
		t.Error("an unknown tool is not priced at the highest")
	}
}
