package gateway

import (
	"encoding/json"
)

// duplicateTopLevelKey returns a key that occurs twice at the top level of a
// JSON object, or "". Decoders disagree on duplicates (Go keeps the last,
// others the first), so a body with "model" twice could pass grokgate's
// checks with one value and reach xAI with the other. body must be valid
// JSON; one linear pass, no allocation unless a key is escaped.
func duplicateTopLevelKey(body []byte) string {
	var seen [][]byte
	depth := 0
	expectKey := false
	for i := 0; i < len(body); i++ {
		switch c := body[i]; c {
		case '{', '[':
			depth++
			expectKey = depth == 1 && c == '{'
		case '}', ']':
			depth--
		case ',':
			expectKey = depth == 1
		case '"':
			end := stringEnd(body, i)
			if expectKey {
				key := body[i : end+1]
				for _, k := range seen {
					if sameKey(k, key) {
						return unquote(key)
					}
				}
				seen = append(seen, key)
				expectKey = false
			}
			i = end
		}
	}
	return ""
}

// stringEnd returns the index of the quote closing the string opening at i.
func stringEnd(b []byte, i int) int {
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			j++
		case '"':
			return j
		}
	}
	return len(b) - 1
}

// sameKey compares two quoted keys, unescaping only when either has an
// escape, so "mod\u0065l" is caught as a second "model".
func sameKey(a, b []byte) bool {
	if !hasEscape(a) && !hasEscape(b) {
		return string(a) == string(b)
	}
	return unquote(a) == unquote(b)
}

func hasEscape(b []byte) bool {
	for _, c := range b {
		if c == '\\' {
			return true
		}
	}
	return false
}

func unquote(q []byte) string {
	var s string
	if json.Unmarshal(q, &s) != nil {
		return string(q)
	}
	return s
}
