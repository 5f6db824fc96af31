package gateway

import (
	"bytes"
	"encoding/json"
	"errors"

	"github.com/go-json-experiment/json/jsontext"
)

// member is one top-level member of a JSON object, kept as the client sent
// it, so a rewrite touches only the members it means to change.
type member struct {
	key   string
	raw   []byte // `"key": value`, as sent
	value []byte
}

var errNotObject = errors.New("not a JSON object")

// splitObject splits a JSON object into its top-level members. The callers
// have already decoded body, so repeated names and invalid UTF-8 were
// answered there; encoding/json/v2's tokenizer finds the boundaries here,
// reading the body in place.
func splitObject(body []byte) ([]member, error) {
	dec := jsontext.NewDecoder(bytes.NewBuffer(body), jsontext.AllowDuplicateNames(true), jsontext.AllowInvalidUTF8(true))
	if dec.PeekKind() != '{' {
		return nil, errNotObject
	}
	if _, err := dec.ReadToken(); err != nil {
		return nil, err
	}
	var ms []member
	for dec.PeekKind() != '}' {
		name, err := dec.ReadValue() // quoted, as sent
		if err != nil {
			return nil, err
		}
		start := int(dec.InputOffset()) - len(name)
		// The decoder checked the name's syntax; the one error left is
		// invalid UTF-8, replaced with U+FFFD as encoding/json does.
		key, _ := jsontext.AppendUnquote(nil, name)
		v, err := dec.ReadValue()
		if err != nil {
			return nil, err
		}
		end := int(dec.InputOffset())
		ms = append(ms, member{key: string(key), raw: body[start:end], value: body[end-len(v) : end]})
	}
	if _, err := dec.ReadToken(); err != nil {
		return nil, err
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
