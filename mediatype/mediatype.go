// Package mediatype reads the media type of a Content-Type value without
// allocating in the common case.
//
// mime.ParseMediaType builds a parameter map for every call; a gateway that
// checks the Content-Type of every request and every upstream answer pays
// for that map three times per request. Values with parameters, upper case
// or spaces still go through mime.ParseMediaType, so the answer is always
// the same as its.
package mediatype

import "mime"

// Of returns the media type of the Content-Type value v, lower-cased and
// without parameters, or "" when v is empty or malformed (as
// mime.ParseMediaType reports an error for).
func Of(v string) string {
	if plain(v) {
		return v
	}
	mt, _, err := mime.ParseMediaType(v)
	if err != nil {
		return ""
	}
	return mt
}

// plain reports whether v is already in the form mime.ParseMediaType
// returns: type "/" subtype, both non-empty tokens of lower-case token
// characters, nothing else.
func plain(v string) bool {
	slash := -1
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case c == '/':
			if slash >= 0 {
				return false
			}
			slash = i
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9':
		case c < 0x80 && tokenPunct[c]:
		default:
			return false
		}
	}
	return slash > 0 && slash < len(v)-1
}

// tokenPunct marks the punctuation RFC 9110 allows in a token.
var tokenPunct = [128]bool{
	'!': true, '#': true, '$': true, '%': true, '&': true, '\'': true, '*': true,
	'+': true, '-': true, '.': true, '^': true, '_': true, '`': true, '|': true, '~': true,
}
