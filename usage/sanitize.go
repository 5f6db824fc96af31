package usage

import (
	"strings"
	"unicode/utf8"

	"github.com/grokgate/grokgate"
)

// MaxFieldBytes bounds each text field of a record. The gateway refuses a
// model name longer than this at its edge; the bound here is the last
// guard before the database.
const MaxFieldBytes = 256

// Sanitize makes rec's text fields storable in every store: NUL bytes
// removed (PostgreSQL's text cannot hold them), invalid UTF-8 replaced by
// U+FFFD, each field cut to MaxFieldBytes on a character boundary. A clean
// record is left untouched and costs no allocation.
func Sanitize(rec *grokgate.Record) {
	for _, f := range []*string{&rec.RequestID, &rec.KeyID, &rec.Route, &rec.RequestedModel, &rec.Model, &rec.UpstreamID} {
		*f = CleanText(*f, MaxFieldBytes)
	}
}

// CleanText returns s without NUL bytes or invalid UTF-8, at most max bytes
// long; s itself when it is already so.
func CleanText(s string, max int) string {
	if len(s) <= max && utf8.ValidString(s) && strings.IndexByte(s, 0) < 0 {
		return s
	}
	s = strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "")
	if len(s) > max {
		cut := max
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut]
	}
	return s
}
