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

// requestSchemas are the name-case schemas of the types a request's
// validation decodes, built once from the types (never changed after), so
// the check costs a request one pass over its body and no reflection.
// Other types (the admin API's) get theirs built per call.
var requestSchemas = newCaseSchemas(
	reflect.TypeFor[*chatRequest](), reflect.TypeFor[*[]jsontext.Value](), reflect.TypeFor[*contentPart](),
	reflect.TypeFor[*responsesRequest](), reflect.TypeFor[*responsesItem](),
	reflect.TypeFor[*visionJSON](), reflect.TypeFor[*imageRequest](),
)

// caseSchema is what checkNameCase needs of a Go type: for a struct, its
// fields by exact JSON name and by lower-cased name; for a slice or array,
// its element's schema. A nil *caseSchema is a value to skip unread.
type caseSchema struct {
	fields map[string]*caseSchema // by exact name; a nil value is a field not walked into
	folded map[string]string      // lower-cased name → exact name
	struc  bool
	elem   *caseSchema // slices and arrays
}

// newCaseSchemas builds the schemas of ts and of every type they reach.
func newCaseSchemas(ts ...reflect.Type) map[reflect.Type]*caseSchema {
	m := map[reflect.Type]*caseSchema{}
	for _, t := range ts {
		m[t] = buildCaseSchema(t, map[reflect.Type]*caseSchema{})
	}
	return m
}

// buildCaseSchema builds t's schema; seen holds the structs being built,
// so a recursive type ends.
func buildCaseSchema(t reflect.Type, seen map[reflect.Type]*caseSchema) *caseSchema {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == jsonValueType || t == rawMessage ||
		reflect.PointerTo(t).Implements(unmarshalerV1) || reflect.PointerTo(t).Implements(unmarshalerV2) {
		return nil
	}
	switch t.Kind() {
	case reflect.Slice, reflect.Array:
		if el := buildCaseSchema(t.Elem(), seen); el != nil {
			return &caseSchema{elem: el}
		}
	case reflect.Struct:
		if s, ok := seen[t]; ok {
			return s
		}
		s := &caseSchema{struc: true, fields: map[string]*caseSchema{}, folded: map[string]string{}}
		seen[t] = s
		for i := range t.NumField() {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if !f.IsExported() || name == "-" {
				continue
			}
			if name == "" {
				name = f.Name
			}
			s.fields[name] = buildCaseSchema(f.Type, seen)
			s.folded[strings.ToLower(name)] = name
		}
		return s
	}
	return nil
}

// checkNameCase walks b along the Go type t that it was decoded into and
// returns a *caseVariantError for the first member whose name matches one
// of t's fields only when case is ignored. Members grokgate does not read
// are skipped unread, so a client's own data (a tool's schema with a
// "Model" property) is never judged.
func checkNameCase(b []byte, t reflect.Type) error {
	s, ok := requestSchemas[t]
	if !ok {
		s = buildCaseSchema(t, map[reflect.Type]*caseSchema{})
	}
	if s == nil || (!s.struc && s.elem == nil) {
		return nil // nothing named in it is read: Unmarshal's pass was enough
	}
	// From a bytes.Buffer the decoder reads b in place; from any other
	// reader it copies it into buffers of its own.
	dec := jsontext.NewDecoder(bytes.NewBuffer(b), jsontext.AllowDuplicateNames(true), jsontext.AllowInvalidUTF8(true))
	return walkNameCase(dec, s)
}

func walkNameCase(dec *jsontext.Decoder, s *caseSchema) error {
	switch kind := dec.PeekKind(); {
	case s == nil:
	case kind == '{' && s.struc:
		if _, err := dec.ReadToken(); err != nil {
			return err
		}
		for dec.PeekKind() != '}' {
			// The name as raw bytes, valid until the next read: looking it
			// up with string(name) allocates nothing.
			raw, err := dec.ReadValue()
			if err != nil {
				return err
			}
			name := raw[1 : len(raw)-1]
			if bytes.IndexByte(name, '\\') >= 0 {
				name, _ = jsontext.AppendUnquote(nil, raw)
			}
			if f, ok := s.fields[string(name)]; ok {
				if err := walkNameCase(dec, f); err != nil {
					return err
				}
				continue
			}
			if want, ok := s.folded[strings.ToLower(string(name))]; ok {
				return &caseVariantError{param: pointerParam(dec.StackPointer()), want: want}
			}
			if err := dec.SkipValue(); err != nil {
				return err
			}
		}
		_, err := dec.ReadToken()
		return err
	case kind == '[' && s.elem != nil:
		if _, err := dec.ReadToken(); err != nil {
			return err
		}
		for dec.PeekKind() != ']' {
			if err := walkNameCase(dec, s.elem); err != nil {
				return err
			}
		}
		_, err := dec.ReadToken()
		return err
	}
	return dec.SkipValue()
}
