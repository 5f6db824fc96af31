package usage

import "bytes"

// readUsage reads xAI's usage object, obj being exactly one JSON object, in
// the shape xAI sends: keys spelt as documented, integer values, and the two
// *_details objects holding integers. It reports false for anything else
// (null, a float, a string, an array, a key that encoding/json would match
// only by case folding, an escape in a key), and the caller then decodes
// with encoding/json, whose answer is the reference. Every metered request
// reads one, and encoding/json spends most of its time on so small an
// object in reflection.
func readUsage(obj []byte) (w wireUsage, ok bool) {
	r := objReader{b: obj}
	if !r.next('{') {
		return w, false
	}
	for first := true; ; first = false {
		more, ok := r.more(first)
		if !ok {
			return w, false
		}
		if !more {
			break
		}
		key, ok := r.key()
		if !ok {
			return w, false
		}
		switch string(key) {
		case "prompt_tokens":
			ok = r.int(&w.PromptTokens)
		case "completion_tokens":
			ok = r.int(&w.CompletionTokens)
		case "cost_in_usd_ticks":
			ok = r.int(&w.CostInUSDTicks)
		case "prompt_tokens_details":
			ok = r.details("cached_tokens", &w.PromptTokensDetails.CachedTokens)
		case "completion_tokens_details":
			ok = r.details("reasoning_tokens", &w.CompletionTokensDetails.ReasoningTokens)
		default:
			// encoding/json matches keys to fields case-insensitively.
			ok = !foldsTo(key, usageKeys) && r.skip(0)
		}
		if !ok {
			return w, false
		}
	}
	r.i = skipSpace(r.b, r.i)
	return w, r.i == len(r.b)
}

var usageKeys = []string{"prompt_tokens", "completion_tokens", "cost_in_usd_ticks",
	"prompt_tokens_details", "completion_tokens_details"}

// foldsTo reports whether key equals one of keys ignoring case.
func foldsTo(key []byte, keys []string) bool {
	for _, k := range keys {
		if len(key) == len(k) && bytes.EqualFold(key, []byte(k)) {
			return true
		}
	}
	return false
}

// objReader steps through JSON objects of integers and nested such objects.
type objReader struct {
	b []byte
	i int
}

// next consumes c, after any space, if it comes next.
func (r *objReader) next(c byte) bool {
	r.i = skipSpace(r.b, r.i)
	if r.i < len(r.b) && r.b[r.i] == c {
		r.i++
		return true
	}
	return false
}

// more reports whether another member follows in the object being read:
// '}' ends it, and members after the first come after a comma.
func (r *objReader) more(first bool) (more, ok bool) {
	if r.next('}') {
		return false, true
	}
	if !first && !r.next(',') {
		return false, false
	}
	return true, true
}

// key reads `"key":` for a key without escapes, whose bytes are the key.
func (r *objReader) key() ([]byte, bool) {
	if !r.next('"') {
		return nil, false
	}
	start := r.i
	for ; r.i < len(r.b); r.i++ {
		switch c := r.b[r.i]; {
		case c == '"':
			key := r.b[start:r.i]
			r.i++
			return key, r.next(':')
		case c == '\\' || c < 0x20 || c >= 0x80:
			return nil, false
		}
	}
	return nil, false
}

// int reads an integer of at most 18 digits (so it fits an int64).
func (r *objReader) int(dst *int64) bool {
	r.i = skipSpace(r.b, r.i)
	neg := r.i < len(r.b) && r.b[r.i] == '-'
	if neg {
		r.i++
	}
	start := r.i
	var n int64
	for r.i < len(r.b) && r.b[r.i] >= '0' && r.b[r.i] <= '9' {
		n = n*10 + int64(r.b[r.i]-'0')
		r.i++
	}
	digits := r.i - start
	if digits == 0 || digits > 18 || digits > 1 && r.b[start] == '0' {
		return false // none, perhaps too large, or a leading zero JSON forbids
	}
	if r.i < len(r.b) && (r.b[r.i] == '.' || r.b[r.i] == 'e' || r.b[r.i] == 'E') {
		return false
	}
	if neg {
		n = -n
	}
	*dst = n
	return true
}

// details reads a *_details object of integers, keeping the one named.
func (r *objReader) details(name string, dst *int64) bool {
	if !r.next('{') {
		return false
	}
	names := []string{name}
	for first := true; ; first = false {
		more, ok := r.more(first)
		if !ok || !more {
			return ok
		}
		key, ok := r.key()
		if !ok {
			return false
		}
		var v int64
		if !r.int(&v) {
			return false
		}
		switch {
		case string(key) == name:
			*dst = v
		case foldsTo(key, names):
			return false
		}
	}
}

// skip consumes an integer or an object of such values, nested a few levels
// at most (deeper ones are left to encoding/json).
func (r *objReader) skip(depth int) bool {
	if depth > 8 {
		return false
	}
	if !r.next('{') {
		var v int64
		return r.int(&v)
	}
	for first := true; ; first = false {
		more, ok := r.more(first)
		if !ok || !more {
			return ok
		}
		if _, ok := r.key(); !ok || !r.skip(depth+1) {
			return false
		}
	}
}
