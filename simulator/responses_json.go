package simulator

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
)

// The Responses API is served by a Rust (serde) backend: field names are
// matched exactly (encoding/json would also accept "Model"), a duplicated
// field is an error, and a field of the wrong type fails the whole body.
// jsonObject reproduces that for the fields the simulator reads; every other
// field is ignored, as serde ignores unknown fields.
type jsonObject map[string]json.RawMessage

// decodeError is a body that does not deserialize: xAI answers 422, and on
// /v1/responses it uses the flat JSON error body like every other error.
func decodeError(format string, args ...any) *apiError {
	return &apiError{status: http.StatusUnprocessableEntity,
		msg: "Failed to deserialize the JSON body into the target type: " + fmt.Sprintf(format, args...)}
}

// invalid is a well-formed body that asks for something xAI refuses.
func invalid(format string, args ...any) *apiError {
	return &apiError{status: http.StatusBadRequest, msg: "Invalid request content: " + fmt.Sprintf(format, args...)}
}

// parseObject reads one JSON object with exact, unique keys. path names the
// object in error messages ("" for the body itself).
func parseObject(b json.RawMessage, path string) (jsonObject, *apiError) {
	dec := json.NewDecoder(bytes.NewReader(b))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, decodeError("%sexpected an object", prefix(path))
	}
	obj := jsonObject{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, decodeError("%s%v", prefix(path), err)
		}
		key, _ := tok.(string) // object keys are always strings once Token succeeds
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, decodeError("%s%v", prefix(path+"."+key), err)
		}
		if _, dup := obj[key]; dup {
			return nil, decodeError("%sduplicate field `%s`", prefix(path), key)
		}
		obj[key] = v
	}
	if _, err := dec.Token(); err != nil {
		return nil, decodeError("%s%v", prefix(path), err)
	}
	if dec.More() {
		return nil, decodeError("trailing characters after the JSON value")
	}
	return obj, nil
}

func prefix(path string) string {
	path = strings.TrimPrefix(path, ".")
	if path == "" {
		return ""
	}
	return path + ": "
}

// has reports whether key is present and not null (serde's Option).
func (o jsonObject) has(key string) bool {
	v, ok := o[key]
	return ok && !bytes.Equal(bytes.TrimSpace(v), []byte("null"))
}

// kind returns the JSON kind of a present, non-null field: "string",
// "number", "bool", "object" or "array".
func (o jsonObject) kind(key string) string {
	v := bytes.TrimSpace(o[key])
	if len(v) == 0 {
		return ""
	}
	switch v[0] {
	case '"':
		return "string"
	case '{':
		return "object"
	case '[':
		return "array"
	case 't', 'f':
		return "bool"
	}
	return "number"
}

// str reads an optional string field; absent or null gives "".
func (o jsonObject) str(path, key string) (string, *apiError) {
	var s string
	if !o.has(key) {
		return "", nil
	}
	if err := json.Unmarshal(o[key], &s); err != nil {
		return "", decodeError("%sinvalid type: %s, expected a string", prefix(path+"."+key), o.kind(key))
	}
	return s, nil
}

// optStr reads an optional string field, keeping "absent" apart from "".
func (o jsonObject) optStr(path, key string) (*string, *apiError) {
	if !o.has(key) {
		return nil, nil
	}
	s, err := o.str(path, key)
	return &s, err
}

// boolean reads an optional bool field; absent or null gives def.
func (o jsonObject) boolean(path, key string, def bool) (bool, *apiError) {
	if !o.has(key) {
		return def, nil
	}
	var b bool
	if err := json.Unmarshal(o[key], &b); err != nil {
		return false, decodeError("%sinvalid type: %s, expected a boolean", prefix(path+"."+key), o.kind(key))
	}
	return b, nil
}

// integer reads an optional integer field.
func (o jsonObject) integer(path, key string) (*int, *apiError) {
	if !o.has(key) {
		return nil, nil
	}
	var n int
	if err := json.Unmarshal(o[key], &n); err != nil {
		return nil, decodeError("%sinvalid type: %s, expected an integer", prefix(path+"."+key), o.kind(key))
	}
	return &n, nil
}

// array reads an optional array field into its raw elements.
func (o jsonObject) array(path, key string) ([]json.RawMessage, *apiError) {
	if !o.has(key) {
		return nil, nil
	}
	var a []json.RawMessage
	if err := json.Unmarshal(o[key], &a); err != nil {
		return nil, decodeError("%sinvalid type: %s, expected a sequence", prefix(path+"."+key), o.kind(key))
	}
	return a, nil
}

// object reads an optional object field (nil when absent or null).
func (o jsonObject) object(path, key string) (jsonObject, *apiError) {
	if !o.has(key) {
		return nil, nil
	}
	return parseObject(o[key], path+"."+key)
}

// expect checks that an echoed-only field, when present, has one of kinds.
func (o jsonObject) expect(path, key string, kinds ...string) *apiError {
	if !o.has(key) {
		return nil
	}
	k := o.kind(key)
	for _, want := range kinds {
		if k == want {
			return nil
		}
	}
	return decodeError("%sinvalid type: %s, expected %s", prefix(path+"."+key), k, strings.Join(kinds, " or "))
}
