package usage

import (
	"bytes"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
)

// The estimates below stand in for xAI's figures only when its usage object
// never arrived (the client left, the stream was cut or ended in an error),
// and reserve a request's share of a tokens-per-minute limit before it is
// sent. Records built from them are marked estimated. The formulas are in
// docs/usage-accounting.md.

const (
	bytesPerToken         = 4   // English text averages about four bytes per token
	messageOverheadTokens = 3   // role and separators of each message
	imagePartTokens       = 256 // one image tile; a lower bound for larger images
)

// TokensForBytes estimates the tokens of n bytes of generated text:
// ceil(n / 4).
func TokensForBytes(n int64) int64 {
	if n <= 0 {
		return 0
	}
	return (n + bytesPerToken - 1) / bytesPerToken
}

// EstimatePromptTokens estimates the prompt tokens of a chat request body:
// for each message 3 + ceil(text bytes / 4), plus 256 per image part. It
// returns 0 for a body it cannot read. A caller that decodes the messages
// anyway (the chat validator) adds them up itself with MessageTokens and
// Parts, which hold the arithmetic.
func EstimatePromptTokens(body []byte) int64 {
	var req struct {
		Messages []struct {
			Content jsontext.Value `json:"content"`
		} `json:"messages"`
	}
	if json.Unmarshal(body, &req, lenient()...) != nil {
		return 0
	}
	var n int64
	for _, m := range req.Messages {
		n += MessageTokens(m.Content)
	}
	return n
}

// MessageTokens estimates one message from its raw content. A string costs
// only a scan (its escapes are counted, not decoded); an array of parts is
// decoded here, so a caller that has decoded the parts already adds them to
// a Parts instead. Content of any other kind (null, absent, a number) counts
// as no text.
func MessageTokens(content []byte) int64 {
	c := bytes.TrimSpace(content)
	if len(c) == 0 {
		return messageOverheadTokens
	}
	switch c[0] {
	case '"':
		return messageOverheadTokens + TokensForBytes(stringLen(c))
	case '[':
		var parts []struct {
			Type string   `json:"type"`
			Text PartText `json:"text"`
		}
		var p Parts
		if json.Unmarshal(c, &parts, lenient()...) == nil {
			for _, part := range parts {
				p.Add(part.Type, part.Text)
			}
		}
		return p.MessageTokens()
	}
	return messageOverheadTokens
}

// lenient are the decoding options of the estimate and of the include_usage
// rewrite. Names match exactly, as the chat validator (and xAI) read them,
// but both read bodies the validator refuses too: duplicated names (the
// last counts, each decoded), and invalid UTF-8 and lone surrogates
// (replaced by U+FFFD).
func lenient() []json.Options {
	return []json.Options{jsontext.AllowDuplicateNames(true), jsontext.AllowInvalidUTF8(true)}
}

// PartText is a content part's "text" as the estimate reads it: its length
// once decoded. It accepts any JSON value, so a validator can decode it
// alongside the fields it checks without rejecting more than it did.
type PartText struct {
	n int64
	// notString: the part's "text" held something other than a string or
	// null (in any of its occurrences, as a duplicated key is decoded each
	// time). The estimate then counts none of the message's parts, as it
	// always has: a string field refused to decode such an array.
	notString bool
}

// UnmarshalJSON is called with b valid JSON; null empties the text, as it
// empties a string.
func (t *PartText) UnmarshalJSON(b []byte) error {
	switch b[0] {
	case '"':
		t.n = stringLen(b)
	case 'n':
		t.n = 0
	default:
		t.notString = true
	}
	return nil
}

// Parts adds up one message whose content is an array of parts, part by
// part. The zero value is a message with no parts.
type Parts struct {
	n         int64
	notString bool
}

// Add counts one part of type typ: its text, or one image tile.
func (p *Parts) Add(typ string, text PartText) {
	p.notString = p.notString || text.notString
	switch typ {
	case "text", "input_text", "output_text":
		p.n += TokensForBytes(text.n)
	case "image_url", "input_image":
		p.n += imagePartTokens
	}
}

// MessageTokens is the estimate of the whole message.
func (p *Parts) MessageTokens() int64 {
	if p.notString {
		return messageOverheadTokens
	}
	return messageOverheadTokens + p.n
}

// stringLen is the length of the JSON string literal s (quotes included)
// once decoded as encoding/json decodes it, counted without decoding: an
// escape is what it stands for, a lone surrogate escape and an invalid
// UTF-8 byte are U+FFFD (3 bytes). s must be a valid JSON string.
func stringLen(s []byte) int64 {
	s = s[1 : len(s)-1]
	var n int64
	for {
		i := bytes.IndexByte(s, '\\')
		if i < 0 {
			return n + utf8Len(s)
		}
		n += utf8Len(s[:i])
		s = s[i:]
		if s[1] != 'u' {
			n++ // \n, \", \\ and the like
			s = s[2:]
			continue
		}
		r := getu4(s)
		s = s[6:]
		if utf16.IsSurrogate(r) {
			if dec := utf16.DecodeRune(r, getu4(s)); dec != utf8.RuneError {
				n += int64(utf8.RuneLen(dec))
				s = s[6:]
				continue
			}
			r = utf8.RuneError
		}
		n += int64(utf8.RuneLen(r))
	}
}

// utf8Len is the length of s once invalid UTF-8 bytes become U+FFFD.
func utf8Len(s []byte) int64 {
	if utf8.Valid(s) {
		return int64(len(s))
	}
	var n int64
	for len(s) > 0 {
		r, size := utf8.DecodeRune(s)
		n += int64(utf8.RuneLen(r)) // RuneError for an invalid byte: 3
		s = s[size:]
	}
	return n
}

// getu4 decodes the \uXXXX at the start of s, or returns -1.
func getu4(s []byte) rune {
	if len(s) < 6 || s[0] != '\\' || s[1] != 'u' {
		return -1
	}
	var r rune
	for _, c := range s[2:6] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			c = c - 'A' + 10
		default:
			return -1
		}
		r = r*16 + rune(c)
	}
	return r
}
