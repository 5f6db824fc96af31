package spool

import (
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/grokgate/grokgate"
)

// appendRecord appends rec as a JSON object that encoding/json reads back
// into the same grokgate.Record (its field names and values), without
// reflection: the journal writes two per request. Fields at their zero
// value are left out, as they decode to it anyway: a request's begin line
// is then a third of the size, and every byte of the journal is a byte
// the page cache takes and the disk gets.
func appendRecord(b []byte, r *grokgate.Record) []byte {
	b = append(b, `{"Time":"`...)
	b = r.Time.AppendFormat(b, time.RFC3339Nano)
	b = appendStringField(append(b, '"'), "RequestID", r.RequestID)
	b = appendStringField(b, "KeyID", r.KeyID)
	b = appendStringField(b, "Route", r.Route)
	b = appendStringField(b, "RequestedModel", r.RequestedModel)
	b = appendStringField(b, "Model", r.Model)
	b = appendBoolField(b, "Stream", r.Stream)
	b = appendBoolField(b, "Fallback", r.Fallback)
	b = appendIntField(b, "Status", int64(r.Status))
	b = appendStringField(b, "Outcome", string(r.Outcome))
	b = appendIntField(b, "PromptTokens", r.PromptTokens)
	b = appendIntField(b, "CompletionTokens", r.CompletionTokens)
	b = appendIntField(b, "ReasoningTokens", r.ReasoningTokens)
	b = appendIntField(b, "CachedTokens", r.CachedTokens)
	b = appendIntField(b, "CostTicks", r.CostTicks)
	b = appendBoolField(b, "Estimated", r.Estimated)
	b = appendIntField(b, "Latency", int64(r.Latency))
	b = appendIntField(b, "TTFB", int64(r.TTFB))
	b = appendStringField(b, "UpstreamID", r.UpstreamID)
	if t := &r.ToolCalls; *t != (grokgate.ToolCalls{}) {
		b = append(b, `,"ToolCalls":{"WebSearch":`...)
		b = strconv.AppendInt(b, t.WebSearch, 10)
		b = appendIntField(b, "XSearch", t.XSearch)
		b = appendIntField(b, "CodeInterpreter", t.CodeInterpreter)
		b = appendIntField(b, "FileSearch", t.FileSearch)
		b = appendIntField(b, "MCP", t.MCP)
		b = appendIntField(b, "DocumentSearch", t.DocumentSearch)
		b = append(b, '}')
	}
	b = appendIntField(b, "Count", r.Count)
	return append(b, '}')
}

// appendIntField appends ,"name":v, or nothing when v is 0.
func appendIntField(b []byte, name string, v int64) []byte {
	if v == 0 {
		return b
	}
	b = append(append(append(b, `,"`...), name...), `":`...)
	return strconv.AppendInt(b, v, 10)
}

// appendBoolField appends ,"name":true, or nothing when v is false.
func appendBoolField(b []byte, name string, v bool) []byte {
	if !v {
		return b
	}
	return append(append(append(b, `,"`...), name...), `":true`...)
}

// appendStringField appends ,"name":"v", or nothing when v is "". (The
// request id always has a value.)
func appendStringField(b []byte, name, v string) []byte {
	if v == "" {
		return b
	}
	b = append(append(append(b, `,"`...), name...), `":`...)
	return appendString(b, v)
}

// appendString appends s as a JSON string: quotes, backslashes and control
// characters escaped, invalid UTF-8 as U+FFFD (as encoding/json does).
func appendString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c < 0x20:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 {
			b = append(b, `\ufffd`...)
		} else {
			b = append(b, s[i:i+n]...)
		}
		i += n
	}
	return append(b, '"')
}
