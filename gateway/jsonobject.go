package gateway

import (
	"encoding/json"
	"errors"
)

// member is one top-level member of a JSON object, kept as the client sent
// it, so a rewrite touches only the members it means to change.
type member struct {
	key   string
	raw   []byte // `"key": value`, as sent
	value []byte
}

var errNotObject = errors.New("not a JSON object")

// splitObject splits a JSON object into its top-level members. body must
// already be known to be valid JSON (the callers have unmarshalled it); the
// scanner only finds boundaries and does not validate.
func splitObject(body []byte) ([]member, error) {
	i := skipSpace(body, 0)
	if i >= len(body) || body[i] != '{' {
		return nil, errNotObject
	}
	i = skipSpace(body, i+1)
	var ms []member
	for i < len(body) && body[i] != '}' {
		if body[i] == ',' {
			i = skipSpace(body, i+1)
			continue
		}
		if body[i] != '"' {
			return nil, errNotObject
		}
		start := i
		keyEnd := skipString(body, i)
		var key string
		if err := json.Unmarshal(body[i:keyEnd], &key); err != nil {
			return nil, err
		}
		i = skipSpace(body, keyEnd)
		if i >= len(body) || body[i] != ':' {
			return nil, errNotObject
		}
		vs := skipSpace(body, i+1)
		ve := skipValue(body, vs)
		ms = append(ms, member{key: key, raw: body[start:ve], value: body[vs:ve]})
		i = skipSpace(body, ve)
	}
	if i >= len(body) {
		return nil, errNotObject
	}
	return ms, nil
}

// field is a member to add to a rebuilt object: a key and raw JSON value.
type field struct {
	key   string
	value []byte
}

// editObject returns body with the top-level members named in drop removed
// and add appended (after dropping any member of the same name). Every other
// member keeps its bytes and its place.
func editObject(body []byte, drop []string, add ...field) ([]byte, error) {
	ms, err := splitObject(body)
	if err != nil {
		return nil, err
	}
	gone := func(k string) bool {
		for _, d := range drop {
			if d == k {
				return true
			}
		}
		for _, a := range add {
			if a.key == k {
				return true
			}
		}
		return false
	}
	out := make([]byte, 0, len(body)+64)
	out = append(out, '{')
	for _, m := range ms {
		if gone(m.key) {
			continue
		}
		if len(out) > 1 {
			out = append(out, ',')
		}
		out = append(out, m.raw...)
	}
	for _, a := range add {
		if len(out) > 1 {
			out = append(out, ',')
		}
		k, _ := json.Marshal(a.key)
		out = append(append(append(out, k...), ':'), a.value...)
	}
	return append(out, '}'), nil
}

// withoutStreaming turns a streaming chat body into a non-streaming one:
// "stream" becomes false and "stream_options" (which xAI, like OpenAI, only
// allows on streams) goes.
func withoutStreaming(body []byte) ([]byte, error) {
	return editObject(body, []string{"stream_options"}, field{"stream", []byte("false")})
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the index just past the string starting at b[i] == '"'.
func skipString(b []byte, i int) int {
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return len(b)
}

// skipValue returns the index just past the value starting at b[i].
func skipValue(b []byte, i int) int {
	if i >= len(b) {
		return i
	}
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for i < len(b) {
			switch b[i] {
			case '"':
				i = skipString(b, i)
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
			i++
		}
		return i
	default: // number, true, false, null
		for i < len(b) && b[i] != ',' && b[i] != '}' && b[i] != ']' &&
			b[i] != ' ' && b[i] != '\t' && b[i] != '\n' && b[i] != '\r' {
			i++
		}
		return i
	}
}
