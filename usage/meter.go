// Package usage measures what each request cost and records it.
//
// The stream side (StreamMeter) watches relayed chat completion events
// without decoding them: it counts the bytes of generated text with byte
// searches and decodes only the one event that carries "usage". The recorder
// side (Recorder) takes finished records off the request path and writes them
// to the store in batches.
package usage

import (
	"bytes"
	"encoding/json"
	"unicode/utf8"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
)

// Usage is the part of xAI's usage object grokgate keeps. Completion
// excludes Reasoning, as xAI counts; Cached is part of Prompt.
type Usage struct {
	Prompt, Completion, Reasoning, Cached int64
	CostTicks                             int64 // cost_in_usd_ticks
}

// wireUsage is xAI's usage object (see docs/wire-format.md).
type wireUsage struct {
	PromptTokens        int64 `json:"prompt_tokens"`
	CompletionTokens    int64 `json:"completion_tokens"`
	PromptTokensDetails struct {
		CachedTokens int64 `json:"cached_tokens"`
	} `json:"prompt_tokens_details"`
	CompletionTokensDetails struct {
		ReasoningTokens int64 `json:"reasoning_tokens"`
	} `json:"completion_tokens_details"`
	CostInUSDTicks int64 `json:"cost_in_usd_ticks"`
}

func (w *wireUsage) usage() Usage {
	return Usage{Prompt: w.PromptTokens, Completion: w.CompletionTokens,
		Reasoning: w.CompletionTokensDetails.ReasoningTokens, Cached: w.PromptTokensDetails.CachedTokens,
		CostTicks: w.CostInUSDTicks}
}

// StreamMeter follows one chat completion stream. The zero value is ready.
type StreamMeter struct {
	head  streamHead // the completion id and resolved model (Head)
	Usage Usage
	// HaveUsage is set once xAI's usage object arrived.
	HaveUsage bool
	// ContentBytes and ReasoningBytes count the generated text seen so far
	// (content plus tool-call arguments, and reasoning_content), as decoded
	// string bytes; they feed the estimate when usage never arrives.
	ContentBytes, ReasoningBytes int64
}

// Head returns the completion's id and resolved model: the first event's,
// or the usage chunk's where the first had none.
func (m *StreamMeter) Head() (id, model string) { return m.head.get(chatHead) }

func chatHead(data []byte) (id, model string) {
	var h struct {
		ID    string `json:"id"`
		Model string `json:"model"`
	}
	decodeHead(data, &h)
	return h.ID, h.Model
}

// Observe takes one event's data (the JSON after "data: ") and reports
// whether it is the usage-only chunk ("choices":[] with "usage"), which a
// client that did not ask for usage must not see. Only events containing
// the key "usage" are decoded here; the first is kept, to be decoded when
// Head is asked; every other event costs a few byte searches and no
// allocation.
func (m *StreamMeter) Observe(data []byte) (usageChunk bool) {
	m.head.keep(data)
	t := scanChunk(data)
	m.ReasoningBytes += t.reasoning
	m.ContentBytes += t.content + t.arguments
	if !t.usage {
		return false
	}
	var c struct {
		ID      string           `json:"id"`
		Model   string           `json:"model"`
		Choices []jsontext.Value `json:"choices"`
		Usage   *wireUsage       `json:"usage"`
	}
	if decodeHead(data, &c) != nil || c.Usage == nil {
		return false
	}
	m.Usage, m.HaveUsage = c.Usage.usage(), true
	m.head.fallback(c.ID, c.Model)
	return len(c.Choices) == 0
}

// streamHead is a stream's id and model, which its first event carries. That
// event is kept as it is and decoded only when they are asked for: by then
// the client has it, where decoding it first held it back from the client
// (by several microseconds, most of what metering added before the first
// byte). Events after it only fill in what it lacked.
type streamHead struct {
	first     []byte // the first event, kept until decoded
	seen      bool
	id, model string
}

// keep notes the stream's first event; later events change nothing.
func (h *streamHead) keep(data []byte) {
	if !h.seen {
		h.seen = true
		h.first = append([]byte(nil), data...)
	}
}

// fallback takes id and model from a later event, for whichever of them
// the first event turns out not to have.
func (h *streamHead) fallback(id, model string) {
	if h.id == "" {
		h.id = id
	}
	if h.model == "" {
		h.model = model
	}
}

// get decodes the first event, on the first call, with decode.
func (h *streamHead) get(decode func([]byte) (id, model string)) (id, model string) {
	if h.first != nil {
		id, model := decode(h.first)
		h.first = nil
		if id != "" {
			h.id = id
		}
		if model != "" {
			h.model = model
		}
	}
	return h.id, h.model
}

// decodeHead decodes a stream's first event (when its id and model are
// asked for) or its usage: encoding/json/v2 in one pass, where encoding/json
// validated it whole and then decoded it, 3.7× slower on a chat chunk and
// 2× on response.created. Lenient and case-insensitive, as encoding/json
// reads.
func decodeHead(data []byte, v any) error {
	return jsonv2.Unmarshal(data, v, append(lenient(), jsonv2.MatchCaseInsensitiveNames(true))...)
}

// stringBytes sums the lengths of the string values of every occurrence of
// key (with its quotes) in data. Escapes count as one byte each: the result
// feeds an estimate, not a bill.
func stringBytes(data []byte, key string) int64 {
	var n int64
	for {
		i := bytes.Index(data, []byte(key))
		if i < 0 {
			return n
		}
		next, c := memberString(data, i+len(key))
		n += c
		data = data[next:]
	}
}

// memberString reads what follows a key that ends at i: if a colon and a
// string, it returns the string's length (escapes counting one byte each)
// and the index of its closing quote; otherwise 0 and i. The next search
// for the key resumes at the returned index.
func memberString(data []byte, i int) (next int, n int64) {
	j := skipSpace(data, i)
	if j >= len(data) || data[j] != ':' {
		return i, 0
	}
	j = skipSpace(data, j+1)
	if j >= len(data) || data[j] != '"' {
		return i, 0 // null, or not a string
	}
	j++
	for j < len(data) && data[j] != '"' {
		if data[j] == '\\' {
			j++
			if j < len(data) && data[j] == 'u' {
				j += 4
			}
		}
		j++
		n++
	}
	return min(j, len(data)), n
}

// chunkText is what one chat chunk holds for the estimate: the string bytes
// of its "reasoning_content", "content" and "arguments" members, and whether
// it has the key "usage".
type chunkText struct {
	reasoning, content, arguments int64
	usage                         bool
}

// scanChunk gives, in one pass over data, what stringBytes gives for each of
// the three keys and whether data contains "usage" (with its quotes). A
// chunk is mostly quotes, so a search for a key that begins with one stops
// at every quote; one such search per key cost a chat stream's metering 25%
// more (BenchmarkMeterStream). Inside a JSON string a quote is escaped, so
// generated text can never hold a bare key.
func scanChunk(data []byte) chunkText {
	var t chunkText
	// Each key's search resumes where stringBytes's would: after the key,
	// or at the closing quote of its string.
	members := [...]struct {
		key  string
		n    *int64
		from int
	}{{`"reasoning_content"`, &t.reasoning, 0}, {`"content"`, &t.content, 0}, {`"arguments"`, &t.arguments, 0}}
	for q := 0; q+1 < len(data); q++ {
		if data[q] != '"' {
			continue
		}
		var k int
		switch data[q+1] {
		case 'r':
			k = 0
		case 'c':
			k = 1
		case 'a':
			k = 2
		case 'u':
			t.usage = t.usage || bytes.HasPrefix(data[q:], []byte(`"usage"`))
			continue
		default:
			continue
		}
		m := &members[k]
		if q >= m.from && bytes.HasPrefix(data[q:], []byte(m.key)) {
			var n int64
			m.from, n = memberString(data, q+len(m.key))
			*m.n += n
		}
	}
	return t
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// ParseCompletion reads the id, resolved model and usage of a non-streaming
// chat completion body. ok is false when the body has no usage object.
func ParseCompletion(body []byte) (id, model string, u Usage, ok bool) {
	if id, model, u, ok := parseCompletionFast(body); ok {
		return id, model, u, true
	}
	var c struct {
		ID    string     `json:"id"`
		Model string     `json:"model"`
		Usage *wireUsage `json:"usage"`
	}
	if json.Unmarshal(body, &c) != nil {
		return "", "", u, false
	}
	if c.Usage != nil {
		u, ok = c.Usage.usage(), true
	}
	return c.ID, c.Model, u, ok
}

// parseCompletionFast reads the fields where xAI writes them (id and model
// first, usage last) without decoding the generated text in between, which
// for a long answer is most of the body. A raw `"usage":` can only be a key:
// inside a string its quotes would be escaped. It reports false when the
// body is not shaped so; ParseCompletion then decodes it whole.
func parseCompletionFast(body []byte) (id, model string, u Usage, ok bool) {
	const key = `"usage":`
	i := lastIndex(body, key)
	if i < 0 {
		return "", "", u, false
	}
	j := skipSpace(body, i+len(key))
	if j >= len(body) || body[j] != '{' {
		return "", "", u, false
	}
	// Only the usage object is decoded: a Decoder on the rest of the body
	// cost an allocation and a copy of it for the same result.
	end := valueEnd(body, j)
	if end < 0 {
		return "", "", u, false
	}
	w, ok := readUsage(body[j:end])
	if !ok {
		w = wireUsage{}
		if json.Unmarshal(body[j:end], &w) != nil {
			return "", "", u, false
		}
	}
	id, okID := firstString(body, `"id":`)
	model, okModel := firstString(body, `"model":`)
	if !okID || !okModel {
		return "", "", u, false
	}
	return id, model, w.usage(), true
}

// lastIndex is bytes.LastIndex(b, key). Stepping back from one quote to
// the previous one and comparing there takes about half the time of
// LastIndex's rolling hash for a key like "usage": near the end of a body.
func lastIndex(b []byte, key string) int {
	for end := len(b) - len(key) + 1; end > 0; {
		i := bytes.LastIndexByte(b[:end], key[0])
		if i < 0 {
			return -1
		}
		if string(b[i:i+len(key)]) == key {
			return i
		}
		end = i
	}
	return -1
}

// valueEnd returns the index just past the object or array that starts at
// body[i], or -1 if it does not end. It matches brackets, skipping strings,
// and checks nothing else: the caller decodes the slice, which validates it.
func valueEnd(body []byte, i int) int {
	depth := 0
	for ; i < len(body); i++ {
		switch body[i] {
		case '{', '[':
			depth++
		case '}', ']':
			depth--
			if depth == 0 {
				return i + 1
			}
		case '"':
			for i++; i < len(body) && body[i] != '"'; i++ {
				if body[i] == '\\' {
					i++
				}
			}
		}
	}
	return -1
}

// firstString decodes the string value after the first occurrence of key.
func firstString(body []byte, key string) (string, bool) {
	i := bytes.Index(body, []byte(key))
	if i < 0 {
		return "", false
	}
	j := skipSpace(body, i+len(key))
	if j >= len(body) || body[j] != '"' {
		return "", false
	}
	// Printable ASCII without escapes (every id and model xAI sends) is
	// the string itself; anything else is left to encoding/json, which
	// also rejects control characters and replaces invalid UTF-8.
	for k := j + 1; k < len(body); k++ {
		c := body[k]
		if c == '"' {
			return string(body[j+1 : k]), true
		}
		if c == '\\' || c < ' ' || c >= utf8.RuneSelf {
			break
		}
	}
	end := j + 1
	for end < len(body) && body[end] != '"' {
		if body[end] == '\\' {
			end++
		}
		end++
	}
	if end >= len(body) {
		return "", false
	}
	var v string
	if json.Unmarshal(body[j:end+1], &v) != nil {
		return "", false
	}
	return v, true
}

// GeneratedBytes counts the generated text in a completion body the way
// StreamMeter counts it in events, for a body that lacks usage.
func GeneratedBytes(body []byte) (content, reasoning int64) {
	return stringBytes(body, `"content"`) + stringBytes(body, `"arguments"`), stringBytes(body, `"reasoning_content"`)
}
