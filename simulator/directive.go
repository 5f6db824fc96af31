package simulator

import (
	"encoding/json"
	"strings"
	"time"
)

// directive is the parsed #sim{...} object (fields documented in doc.go).
// Pointers mark fields whose zero value is meaningful.
type directive struct {
	Chunks          *int `json:"chunks"`
	DelayMS         int  `json:"delay_ms"`
	TTFTMS          int  `json:"ttft_ms"`
	Status          int  `json:"status"`
	RetryAfter      int  `json:"retry_after"`
	ErrorAfter      *int `json:"error_after"`
	CutAfter        *int `json:"cut_after"`
	Hang            bool `json:"hang"`
	JSONError       bool `json:"json_error"`
	ReasoningChunks *int `json:"reasoning_chunks"`
	CachedTokens    int  `json:"cached_tokens"`
	Moderate        bool `json:"moderate"`
	// FailTimes limits the faults (status, json_error, hang) to the first N
	// identical requests, so retry and failover can be tested.
	FailTimes int `json:"fail_times"`
	// raw holds each well-formed directive object in order, so an endpoint
	// can decode fields of its own without widening this shared struct.
	raw []json.RawMessage
}

const (
	defaultChunks          = 8
	maxChunks              = 10000
	defaultReasoningChunks = 2
	maxReasoningChunks     = 1000
)

const directiveTag = "#sim"

// parseDirectives removes every well-formed #sim{...} from text, merging them
// left to right, and returns the merged directive with the trimmed rest.
// json.Decoder finds the end of the object, so braces inside strings are
// handled; anything that fails to decode stays in the text untouched.
func parseDirectives(text string) (directive, string) {
	var d directive
	var out strings.Builder
	rest := text
	for {
		i := strings.Index(rest, directiveTag+"{")
		if i < 0 {
			out.WriteString(rest)
			break
		}
		obj := i + len(directiveTag)
		dec := json.NewDecoder(strings.NewReader(rest[obj:]))
		var raw json.RawMessage
		var probe directive
		if dec.Decode(&raw) != nil || json.Unmarshal(raw, &probe) != nil {
			// Malformed: keep "#sim{" as text and look further on.
			out.WriteString(rest[:obj+1])
			rest = rest[obj+1:]
			continue
		}
		_ = json.Unmarshal(raw, &d) // cannot fail: probe decoded the same bytes
		d.raw = append(d.raw, raw)
		out.WriteString(rest[:i])
		rest = rest[obj+int(dec.InputOffset()):]
	}
	return d, strings.TrimSpace(out.String())
}

func (d directive) chunks() int {
	if d.Chunks == nil {
		return defaultChunks
	}
	return clamp(*d.Chunks, 0, maxChunks)
}

func (d directive) reasoningChunks() int {
	if d.ReasoningChunks == nil {
		return defaultReasoningChunks
	}
	return clamp(*d.ReasoningChunks, 0, maxReasoningChunks)
}

func (d directive) delay() time.Duration { return ms(d.DelayMS) }
func (d directive) ttft() time.Duration  { return ms(d.TTFTMS) }

// status returns the forced HTTP status, or 0 if none (or out of range).
func (d directive) status() int {
	if d.Status >= 400 && d.Status <= 599 {
		return d.Status
	}
	return 0
}

func ms(n int) time.Duration {
	if n <= 0 {
		return 0
	}
	return time.Duration(n) * time.Millisecond
}

func clamp(v, lo, hi int) int {
	return max(lo, min(v, hi))
}
