package gateway

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"

	"github.com/grokgate/grokgate/apierror"
)

// caseVariantError is a member whose name differs only in case from a field
// grokgate reads. Decoders disagree on such names (encoding/json matches
// "MODEL" to "model", encoding/json/v2 and xAI do not), so grokgate refuses
// them rather than check one field while another reaches upstream.
type caseVariantError struct {
	param string // where, as OpenAI names parameters: messages[0].Role
	want  string // the field's real name
}

func (e *caseVariantError) Error() string {
	return "the field '" + e.param + "' differs only in case from '" + e.want + "'"
}

// caseVariantMessage says what to fix, for a member found under prefix.
func (e *caseVariantError) invalid(prefix string) *apierror.Error {
	p := e.param
	if prefix != "" {
		p = prefix + "." + p
	}
	return apierror.Invalid(p, "Request body has the field '"+p+"', which differs only in case from '"+e.want+"'; field names are case-sensitive: send '"+e.want+"' once.")
}

var (
	jsonValueType = reflect.TypeFor[jsontext.Value]()
	rawMessage    = reflect.TypeFor[json.RawMessage]()
	unmarshalerV1 = reflect.TypeFor[json.Unmarshaler]()
	unmarshalerV2 = reflect.TypeFor[jsonv2.Unmarshaler]()
)

// checkNameCase walks b along the Go type t that it was decoded into and
// returns a *caseVariantError for the first member whose name matches one
// of t's fields only when case is ignored. Members grokgate does not read
// are skipped unread, so a client's own data (a tool's schema with a
// "Model" property) is never judged.
func checkNameCase(b []byte, t reflect.Type) error {
	dec := jsontext.NewDecoder(bytes.NewReader(b), jsontext.AllowDuplicateNames(true), jsontext.AllowInvalidUTF8(true))
	fields := map[reflect.Type]map[string]fieldInfo{}
	return walkNameCase(dec, t, fields)
}

type fieldInfo struct {
	name string
	t    reflect.Type
}

func walkNameCase(dec *jsontext.Decoder, t reflect.Type, cache map[reflect.Type]map[string]fieldInfo) error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	opaque := t == jsonValueType || t == rawMessage ||
		reflect.PointerTo(t).Implements(unmarshalerV1) || reflect.PointerTo(t).Implements(unmarshalerV2)
	switch kind := dec.PeekKind(); {
	case opaque:
	case kind == '{' && t.Kind() == reflect.Struct:
		fs, ok := cache[t]
		if !ok {
			fs = structFields(t)
			cache[t] = fs
		}
		if _, err := dec.ReadToken(); err != nil {
			return err
		}
		for dec.PeekKind() != '}' {
			tok, err := dec.ReadToken()
			if err != nil {
				return err
			}
			name := tok.String()
			if f, ok := fs[strings.ToLower(name)]; ok {
				if f.name != name {
					return &caseVariantError{param: pointerParam(dec.StackPointer()), want: f.name}
				}
				if err := walkNameCase(dec, f.t, cache); err != nil {
					return err
				}
				continue
			}
			if err := dec.SkipValue(); err != nil {
				return err
			}
		}
		_, err := dec.ReadToken()
		return err
	case kind == '[' && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array):
		if _, err := dec.ReadToken(); err != nil {
			return err
		}
		for dec.PeekKind() != ']' {
			if err := walkNameCase(dec, t.Elem(), cache); err != nil {
				return err
			}
		}
		_, err := dec.ReadToken()
		return err
	}
	return dec.SkipValue()
}

// structFields maps the lower-cased JSON names of t's fields to the names
// and types.
func structFields(t reflect.Type) map[string]fieldInfo {
	fs := map[string]fieldInfo{}
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if !f.IsExported() || name == "-" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		fs[strings.ToLower(name)] = fieldInfo{name, f.Type}
	}
	return fs
}
