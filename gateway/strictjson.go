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
	reflect.TypeFor[*chatRequest](), reflect.TypeFor[*[]jsontext.Value](), reflect.TypeFor[*contentPart](), reflect.TypeFor[*[]contentPart](),
	reflect.TypeFor[*responsesRequest](), reflect.TypeFor[*responsesItem](), reflect.TypeFor[*[]responsesItem](),
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
	// lower: every name in this schema and those it reaches is lower-case
	// ASCII, so a body with no name that holds an upper-case letter, an
	// escape or a non-ASCII byte has no case variant of any (plainNames).
	lower bool
}

// newCaseSchemas builds the schemas of ts and of every type they reach.
func newCaseSchemas(ts ...reflect.Type) map[reflect.Type]*caseSchema {
	m := map[reflect.Type]*caseSchema{}
	for _, t := range ts {
		m[t] = newCaseSchema(t)
	}
	return m
}

// newCaseSchema builds t's schema and notes whether all its names are
// lower-case.
func newCaseSchema(t reflect.Type) *caseSchema {
	seen := map[reflect.Type]*caseSchema{}
	s := buildCaseSchema(t, seen)
	if s != nil {
		s.lower = true
		for _, st := range seen {
			for name := range st.fields {
				s.lower = s.lower && plainName([]byte(name))
			}
		}
	}
	return s
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
		s = newCaseSchema(t)
	}
	if s == nil || (!s.struc && s.elem == nil) {
		return nil // nothing named in it is read: Unmarshal's pass was enough
	}
	if s.lower && plainNames(b) {
		// No name in b can match a lower-case name only when case is
		// ignored: nearly every request, spared the walk.
		return nil
	}
	return walkCase(b, s)
}

// walkCase is checkNameCase's walk of b along s.
func walkCase(b []byte, s *caseSchema) error {
	// From a bytes.Buffer the decoder reads b in place; from any other
	// reader it copies it into buffers of its own.
	dec := jsontext.NewDecoder(bytes.NewBuffer(b), jsontext.AllowDuplicateNames(true), jsontext.AllowInvalidUTF8(true))
	return walkNameCase(dec, s)
}

// plainNames reports whether every member name in b, valid JSON, is plain:
// no upper-case ASCII letter, no escape and no non-ASCII byte (which case
// folding may turn into ASCII: the Kelvin sign K folds to k). Such a name
// equals its own lower case, so it matches a lower-case field exactly or
// not at all. In valid JSON every quote outside a string opens one, and a
// string followed by a colon is a member name.
func plainNames(b []byte) bool {
	for i := 0; ; {
		q := bytes.IndexByte(b[i:], '"')
		if q < 0 {
			return true
		}
		start := i + q + 1
		end := closingQuote(b, start)
		if end < 0 {
			return false // not the JSON expected: let the walk judge
		}
		j := end + 1
		for j < len(b) && (b[j] == ' ' || b[j] == '\t' || b[j] == '\n' || b[j] == '\r') {
			j++
		}
		if j < len(b) && b[j] == ':' && !plainName(b[start:end]) {
			return false
		}
		i = end + 1
	}
}

// closingQuote returns the index of the quote that ends the string whose
// text starts at b[i], or -1: the first quote not escaped, that is not
// preceded by an odd run of backslashes.
func closingQuote(b []byte, i int) int {
	for {
		q := bytes.IndexByte(b[i:], '"')
		if q < 0 {
			return -1
		}
		p := i + q
		n := 0
		for k := p - 1; k >= i && b[k] == '\\'; k-- {
			n++
		}
		if n%2 == 0 {
			return p
		}
		i = p + 1
	}
}

func plainName(name []byte) bool {
	for _, c := range name {
		if 'A' <= c && c <= 'Z' || c == '\\' || c >= 0x80 {
			return false
		}
	}
	return true
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
