package simulator

import (
	"fmt"
	"hash/fnv"
	"net/http"
	"strings"
)

// modelInfo describes a chat model. Prices are ticks per token
// (10^10 ticks = 1 USD), the unit /v1/language-models uses.
type modelInfo struct {
	id          string
	created     int64
	version     string
	aliases     []string
	vision      bool
	promptPrice int64
	cachedPrice int64
	outputPrice int64
	context     int64 // context window, tokens
}

// reasoning reports whether the model streams reasoning_content first.
func (m modelInfo) reasoning() bool {
	return strings.Contains(m.id, "reasoning") && !strings.Contains(m.id, "non-reasoning")
}

// fingerprint is constant per model, like xAI's system_fingerprint.
func (m modelInfo) fingerprint() string {
	h := fnv.New64a()
	h.Write([]byte(m.id))
	return fmt.Sprintf("fp_%016x", mix(h.Sum64()))[:13]
}

// chatModels is the chat catalogue (creation dates, versions and the prices
// of the newer models are invented). It is a function, not a package
// variable, so no caller can mutate shared state.
func chatModels() []modelInfo {
	return []modelInfo{
		// Same prices as grok-4-fast so retired grok-4-1-fast-* traffic bills as before.
		{id: "grok-4.3", created: 1776211200, version: "1.0", vision: true,
			aliases:     []string{"grok-4-1-fast-reasoning", "grok-4-1-fast-non-reasoning"},
			promptPrice: 2000, cachedPrice: 500, outputPrice: 5000, context: 2_000_000},
		{id: "grok-4.5", created: 1782000000, version: "1.0", vision: true,
			promptPrice: 20000, cachedPrice: 5000, outputPrice: 100000, context: 2_000_000},
		{id: "grok-4.6", created: 1787000000, version: "1.0", vision: true,
			promptPrice: 30000, cachedPrice: 7500, outputPrice: 150000, context: 2_000_000},
		{id: "grok-4.20-0309-reasoning", created: 1773014400, version: "1.0", vision: true,
			aliases:     []string{"grok-4-fast-reasoning", "grok-4-0709"},
			promptPrice: 20000, cachedPrice: 2000, outputPrice: 60000, context: 2_000_000},
		{id: "grok-4.20-0309-non-reasoning", created: 1773014400, version: "1.0", vision: true,
			aliases:     []string{"grok-4-fast-non-reasoning"},
			promptPrice: 20000, cachedPrice: 2000, outputPrice: 60000, context: 2_000_000},
		{id: "grok-code-fast-1", created: 1756166400, version: "1.0",
			promptPrice: 2000, cachedPrice: 200, outputPrice: 15000, context: 256_000},
		{id: "grok-3", created: 1743724800, version: "1.0",
			promptPrice: 30000, cachedPrice: 7500, outputPrice: 150000, context: 131_072},
		{id: "grok-3-mini", created: 1743724800, version: "1.0",
			promptPrice: 3000, cachedPrice: 750, outputPrice: 5000, context: 131_072},
	}
}

// imageModelInfo describes an image model; price is ticks per image.
type imageModelInfo struct {
	id      string
	created int64
	version string
	price   int64
}

func imageModels() []imageModelInfo {
	return []imageModelInfo{
		{id: "grok-imagine-image", created: 1769904000, version: "1.0", price: 200_000_000},
		{id: "grok-imagine-image-2.0", created: 1780000000, version: "2.0", price: 400_000_000},
		{id: "grok-imagine-image-quality", created: 1780000000, version: "2.0", price: 700_000_000},
	}
}

func findChatModel(models []modelInfo, id string) (modelInfo, bool) {
	for _, m := range models {
		if m.id == id {
			return m, true
		}
		for _, a := range m.aliases {
			if a == id {
				return m, true
			}
		}
	}
	return modelInfo{}, false
}

func findImageModel(models []imageModelInfo, id string) (imageModelInfo, bool) {
	for _, m := range models {
		if m.id == id {
			return m, true
		}
	}
	return imageModelInfo{}, false
}

// ResolveModel returns the canonical id the simulator reports for a chat or
// image model id or alias, e.g. "grok-4-1-fast-reasoning" → "grok-4.3".
func ResolveModel(id string) (resolved string, ok bool) {
	if m, ok := findChatModel(chatModels(), id); ok {
		return m.id, true
	}
	if m, ok := findImageModel(imageModels(), id); ok {
		return m.id, true
	}
	return "", false
}

type modelObject struct {
	ID      string `json:"id"`
	Created int64  `json:"created"`
	Object  string `json:"object"`
	OwnedBy string `json:"owned_by"`
}

type languageModelObject struct {
	ID                         string   `json:"id"`
	Fingerprint                string   `json:"fingerprint"`
	Created                    int64    `json:"created"`
	Object                     string   `json:"object"`
	OwnedBy                    string   `json:"owned_by"`
	Version                    string   `json:"version"`
	Aliases                    []string `json:"aliases"`
	InputModalities            []string `json:"input_modalities"`
	OutputModalities           []string `json:"output_modalities"`
	PromptTextTokenPrice       int64    `json:"prompt_text_token_price"`
	CompletionTextTokenPrice   int64    `json:"completion_text_token_price"`
	CachedPromptTextTokenPrice int64    `json:"cached_prompt_text_token_price"`
	PromptImageTokenPrice      int64    `json:"prompt_image_token_price"`
	ContextLength              int64    `json:"context_length"`
}

type imageModelObject struct {
	ID               string   `json:"id"`
	Fingerprint      string   `json:"fingerprint"`
	Created          int64    `json:"created"`
	Object           string   `json:"object"`
	OwnedBy          string   `json:"owned_by"`
	Version          string   `json:"version"`
	Aliases          []string `json:"aliases"`
	InputModalities  []string `json:"input_modalities"`
	OutputModalities []string `json:"output_modalities"`
	ImagePrice       int64    `json:"image_price"`
}

func languageModel(m modelInfo) languageModelObject {
	in := []string{"text"}
	if m.vision {
		in = []string{"text", "image"}
	}
	aliases := append([]string{}, m.aliases...)
	return languageModelObject{
		ID: m.id, Fingerprint: m.fingerprint(), Created: m.created, Object: "model", OwnedBy: "xai",
		Version: m.version, Aliases: aliases, InputModalities: in, OutputModalities: []string{"text"},
		PromptTextTokenPrice: m.promptPrice, CompletionTextTokenPrice: m.outputPrice,
		CachedPromptTextTokenPrice: m.cachedPrice, PromptImageTokenPrice: m.promptPrice,
		ContextLength: m.context,
	}
}

func imageModel(m imageModelInfo) imageModelObject {
	return imageModelObject{
		ID: m.id, Fingerprint: modelInfo{id: m.id}.fingerprint(), Created: m.created, Object: "model",
		OwnedBy: "xai", Version: m.version, Aliases: []string{},
		InputModalities: []string{"text", "image"}, OutputModalities: []string{"image"}, ImagePrice: m.price,
	}
}

func (s *Simulator) modelObjects() []modelObject {
	var out []modelObject
	for _, m := range s.chat {
		out = append(out, modelObject{ID: m.id, Created: m.created, Object: "model", OwnedBy: "xai"})
	}
	for _, m := range s.image {
		out = append(out, modelObject{ID: m.id, Created: m.created, Object: "model", OwnedBy: "xai"})
	}
	return out
}

func (s *Simulator) handleModels(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, struct {
		Object string        `json:"object"`
		Data   []modelObject `json:"data"`
	}{"list", s.modelObjects()})
}

func (s *Simulator) notFoundModel(r *http.Request, id string) *apiError {
	return &apiError{status: http.StatusNotFound,
		msg: "The model " + id + " does not exist or your team " + teamID(r) + " does not have access to it."}
}

func (s *Simulator) handleModel(w http.ResponseWriter, r *http.Request) {
	id := strings.TrimPrefix(r.URL.Path, "/v1/models/")
	resolved, ok := ResolveModel(id)
	if !ok {
		writeError(w, s.notFoundModel(r, id))
		return
	}
	for _, m := range s.modelObjects() {
		if m.ID == resolved {
			writeJSON(w, http.StatusOK, m)
			return
		}
	}
	writeError(w, s.notFoundModel(r, id))
}

func (s *Simulator) handleLanguageModels(w http.ResponseWriter, r *http.Request) {
	out := []languageModelObject{}
	for _, m := range s.chat {
		out = append(out, languageModel(m))
	}
	writeJSON(w, http.StatusOK, struct {
		Models []languageModelObject `json:"models"`
	}{out})
}

func (s *Simulator) handleLanguageModel(w http.ResponseWriter, r *http.Request) {
	id := strings.TrimPrefix(r.URL.Path, "/v1/language-models/")
	m, ok := findChatModel(s.chat, id)
	if !ok {
		writeError(w, s.notFoundModel(r, id))
		return
	}
	writeJSON(w, http.StatusOK, languageModel(m))
}

func (s *Simulator) handleImageModels(w http.ResponseWriter, r *http.Request) {
	out := []imageModelObject{}
	for _, m := range s.image {
		out = append(out, imageModel(m))
	}
	writeJSON(w, http.StatusOK, struct {
		Models []imageModelObject `json:"models"`
	}{out})
}

func (s *Simulator) handleImageModel(w http.ResponseWriter, r *http.Request) {
	id := strings.TrimPrefix(r.URL.Path, "/v1/image-generation-models/")
	m, ok := findImageModel(s.image, id)
	if !ok {
		writeError(w, s.notFoundModel(r, id))
		return
	}
	writeJSON(w, http.StatusOK, imageModel(m))
}
