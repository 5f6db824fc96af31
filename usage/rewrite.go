package usage

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"

	"github.com/go-json-experiment/json/jsontext"
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

// ForceIncludeUsageValid is ForceIncludeUsage for a body known to be a valid
// JSON object (the handler validated it). One holding neither the bytes
// stream_options nor a \u escape, which could spell them, has no such
// member: it gets it without being read, the whole conversation, on the
// way to the stream's first byte.
func ForceIncludeUsageValid(body []byte) ([]byte, error) {
	if open := skipSpace(body, 0); open < len(body) && body[open] == '{' &&
		!bytes.Contains(body, []byte("stream_options")) && !bytes.Contains(body, []byte(`\u`)) {
		return splice(body, open+1, open+1, `"stream_options":{"include_usage":true},`), nil
	}
	return ForceIncludeUsage(body)
}

// memberValue finds the value of the top-level member name in the JSON
// object starting at body[off] and returns its byte span. A repeated member
// yields its last occurrence (the validator refuses repeated names anyway).
// It scans with encoding/json/v2's tokenizer, which reads the body in place:
// encoding/json's Decoder copied every member, the whole conversation
// included, before a stream's first byte.
func memberValue(body []byte, off int, name string) (start, end int, found bool, err error) {
	dec := jsontext.NewDecoder(bytes.NewBuffer(body[off:]), lenient()...)
	if dec.PeekKind() != '{' {
		return 0, 0, false, errors.New("not a JSON object")
	}
	if _, err := dec.ReadToken(); err != nil {
		return 0, 0, false, err
	}
	for dec.PeekKind() != '}' {
		key, err := dec.ReadValue() // the member's name, quoted as sent
		if err != nil {
			return 0, 0, false, unexpectedEOF(err)
		}
		match := isName(key, name)
		val, err := dec.ReadValue()
		if err != nil {
			return 0, 0, false, unexpectedEOF(err)
		}
		if match {
			end = off + int(dec.InputOffset())
			start, found = end-len(val), true
		}
	}
	if _, err := dec.ReadToken(); err != nil {
		return 0, 0, false, unexpectedEOF(err)
	}
	return start, end, found, nil
}

// isName reports whether the quoted JSON string key is name, unescaping
// only a key that has escapes.
func isName(key jsontext.Value, name string) bool {
	if bytes.IndexByte(key, '\\') < 0 {
		return len(key) == len(name)+2 && string(key[1:len(key)-1]) == name
	}
	var s string
	return json.Unmarshal(key, &s) == nil && s == name
}

func unexpectedEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

func splice(b []byte, from, to int, s string) []byte {
	out := make([]byte, 0, len(b)-(to-from)+len(s))
	out = append(out, b[:from]...)
	out = append(out, s...)
	return append(out, b[to:]...)
}
