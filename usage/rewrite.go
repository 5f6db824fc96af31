package usage

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
)

// ForceIncludeUsage returns a chat request body that asks xAI for the usage
// chunk of a stream (stream_options.include_usage = true), changing nothing
// else: the client's bytes are spliced, never re-encoded, so unknown fields,
// key order, number formats and whitespace all survive. body must be a JSON
// object (the handler has validated it).
func ForceIncludeUsage(body []byte) ([]byte, error) {
	start, end, found, err := memberValue(body, 0, "stream_options")
	if err != nil {
		return nil, err
	}
	if !found {
		// Insert as the first member; "model" is required, so a comma follows.
		open := bytes.IndexByte(body, '{')
		return splice(body, open+1, open+1, `"stream_options":{"include_usage":true},`), nil
	}
	val := body[start:end]
	if val[0] != '{' {
		// null (parseChat rejects other types): replace it whole.
		return splice(body, start, end, `{"include_usage":true}`), nil
	}
	is, ie, has, err := memberValue(body, start, "include_usage")
	if err != nil {
		return nil, err
	}
	if has {
		return splice(body, is, ie, `true`), nil
	}
	ins := `"include_usage":true`
	if body[skipSpace(body, start+1)] != '}' {
		ins += ","
	}
	return splice(body, start+1, start+1, ins), nil
}

// memberValue finds the value of the top-level member name in the JSON
// object starting at body[off] and returns its byte span. A repeated member
// yields its last occurrence, the one encoding/json (and so parseChat) uses.
func memberValue(body []byte, off int, name string) (start, end int, found bool, err error) {
	dec := json.NewDecoder(bytes.NewReader(body[off:]))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return 0, 0, false, errors.New("not a JSON object")
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return 0, 0, false, err
		}
		key, _ := tok.(string)
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return 0, 0, false, err
		}
		if key == name {
			end = off + int(dec.InputOffset())
			start, found = end-len(raw), true
		}
	}
	return start, end, found, nil
}

func splice(b []byte, from, to int, s string) []byte {
	out := make([]byte, 0, len(b)-(to-from)+len(s))
	out = append(out, b[:from]...)
	out = append(out, s...)
	return append(out, b[to:]...)
}
