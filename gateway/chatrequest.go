package gateway

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"

	"github.com/grokgate/grokgate/apierror"
	"github.com/grokgate/grokgate/usage"
)

// chatRequest holds only the fields grokgate checks or acts on. The body
// forwarded upstream is the client's own bytes, so fields not listed here,
// and the exact form of those that are, pass through untouched.
type chatRequest struct {
	Model               *string        `json:"model"`
	Messages            []chatMessage  `json:"messages"`
	Stream              *bool          `json:"stream"`
	StreamOptions       *streamOptions `json:"stream_options"`
	N                   *int64         `json:"n"`
	MaxTokens           *int64         `json:"max_tokens"`
	MaxCompletionTokens *int64         `json:"max_completion_tokens"`
	Temperature         *float64       `json:"temperature"`
	TopP                *float64       `json:"top_p"`
}

type streamOptions struct {
	IncludeUsage *bool `json:"include_usage"`
}

type chatMessage struct {
	Role    *string        `json:"role"`
	Content jsontext.Value `json:"content"`
}

// contentPart is one element of an array-valued message content.
type contentPart struct {
	Type     *string        `json:"type"`
	ImageURL jsontext.Value `json:"image_url"`
	Text     usage.PartText `json:"text"` // for the prompt estimate; never an error
}

var validRoles = map[string]bool{"system": true, "developer": true, "user": true, "assistant": true, "tool": true, "function": true}

// parsedChat is what the handler needs to know about a valid request.
type parsedChat struct {
	model        string
	stream       bool
	includeUsage bool
	hasImage     bool
	n, maxTokens int64  // 0 when absent; for the token reservation
	maxParam     string // the field maxTokens came from, for errors
	// promptTokens is usage.EstimatePromptTokens of the body, added up
	// while validating so the body is not decoded a second time.
	promptTokens int64
}

// parseChat validates a chat completion body. Every problem it reports names
// the field and says what is expected.
func parseChat(body []byte) (parsedChat, *apierror.Error) {
	var p parsedChat
	var req chatRequest
	if e := decodeObject(body, &req, ` with "model" and "messages"`); e != nil {
		return p, e
	}
	var e *apierror.Error
	if p.model, e = requiredModel(req.Model); e != nil {
		return p, e
	}
	if req.Messages == nil {
		return p, apierror.Invalid("messages", "Missing required parameter: 'messages' (a non-empty array of message objects).")
	}
	if len(req.Messages) == 0 {
		return p, apierror.Invalid("messages", "'messages' must contain at least one message.")
	}
	for i, m := range req.Messages {
		if m.Role == nil {
			field := messageField(i)
			return p, apierror.Invalid(field+".role", "Missing required parameter: '"+field+".role'.")
		}
		if !validRoles[*m.Role] {
			field := messageField(i)
			return p, apierror.Invalid(field+".role", fmt.Sprintf("Invalid value for '%s.role': %q; expected one of system, developer, user, assistant, tool.", field, *m.Role))
		}
		img, tokens, e := checkContent(i, *m.Role, m.Content)
		if e != nil {
			return p, e
		}
		p.hasImage = p.hasImage || img
		p.promptTokens += tokens
	}
	if req.Stream != nil {
		p.stream = *req.Stream
	}
	if req.StreamOptions != nil && req.StreamOptions.IncludeUsage != nil {
		p.includeUsage = *req.StreamOptions.IncludeUsage
	}
	if req.N != nil && (*req.N < 1 || *req.N > 128) {
		return p, apierror.Invalid("n", fmt.Sprintf("Invalid value for 'n': %d; expected an integer from 1 to 128.", *req.N))
	}
	for _, f := range []struct {
		name string
		v    *int64
	}{{"max_tokens", req.MaxTokens}, {"max_completion_tokens", req.MaxCompletionTokens}} {
		if f.v != nil && *f.v < 1 {
			return p, apierror.Invalid(f.name, fmt.Sprintf("Invalid value for '%s': %d; expected a positive integer.", f.name, *f.v))
		}
	}
	if req.N != nil {
		p.n = *req.N
	}
	for _, f := range []struct {
		name string
		v    *int64
	}{{"max_tokens", req.MaxTokens}, {"max_completion_tokens", req.MaxCompletionTokens}} {
		if f.v != nil && *f.v > p.maxTokens {
			p.maxTokens, p.maxParam = *f.v, f.name
		}
	}
	if req.Temperature != nil && (*req.Temperature < 0 || *req.Temperature > 2) {
		return p, apierror.Invalid("temperature", fmt.Sprintf("Invalid value for 'temperature': %g; expected a number from 0 to 2.", *req.Temperature))
	}
	if req.TopP != nil && (*req.TopP < 0 || *req.TopP > 1) {
		return p, apierror.Invalid("top_p", fmt.Sprintf("Invalid value for 'top_p': %g; expected a number from 0 to 1.", *req.TopP))
	}
	return p, nil
}

// decodeObject decodes body, which must be a JSON object, into v with
// decodeBody; wants ends the message for an empty body, saying what the
// object must hold (` with "model" and "messages"`), or is "".
func decodeObject(body []byte, v any, wants string) *apierror.Error {
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	if len(trimmed) == 0 {
		return apierror.Invalid("", "Request body is empty; send a JSON object"+wants+".")
	}
	if trimmed[0] != '{' {
		return apierror.Invalid("", "Request body must be a JSON object.")
	}
	return decodeBody(body, v)
}

// requiredModel returns the request's model, or the error for one that is
// missing or not a model name.
func requiredModel(m *string) (string, *apierror.Error) {
	if m == nil || *m == "" {
		return "", apierror.Invalid("model", "Missing required parameter: 'model' (a string such as \"grok-4.3\").")
	}
	return *m, checkModelName(*m)
}

// decodeBody decodes a request body into v, as every JSON endpoint reads
// them: with encoding/json/v2's decoder (a mirror until Go 1.27 has it), in
// one pass that validates and decodes, names matched exactly and given once
// at any depth. encoding/json validates in a pass of its own, keeps the
// last of two names and takes "MODEL" for "model"; decoders disagree on
// both, and a body must reach xAI meaning what grokgate checked.
func decodeBody(body []byte, v any) *apierror.Error {
	if !utf8.Valid(body) {
		return &apierror.Error{Status: http.StatusBadRequest, Code: "invalid_encoding",
			Message: "Request body is not valid UTF-8; send JSON encoded as UTF-8."}
	}
	if err := unmarshal(body, v); err != nil {
		return jsonError(err)
	}
	return nil
}

// unmarshal is jsonv2.Unmarshal for bytes decodeBody has found to be UTF-8:
// what AllowInvalidUTF8 still lets through are escaped lone surrogates
// ("\ud800"), valid JSON, and what JavaScript's JSON.stringify writes for
// a string cut inside an emoji.
//
// It also refuses a member whose name differs only in case from a field of
// v (checkNameCase), so every body means to xAI what grokgate checked.
func unmarshal(b []byte, v any) error {
	if err := jsonv2.Unmarshal(b, v, jsontext.AllowInvalidUTF8(true)); err != nil {
		return err
	}
	return checkNameCase(b, reflect.TypeOf(v))
}

// The field names in errors are built only when there is an error to
// report: for a valid body (nearly all of them) they would be garbage.

// messageField names messages[i].
func messageField(i int) string { return "messages[" + strconv.Itoa(i) + "]" }

// partField names messages[i].content[j].
func partField(i, j int) string { return messageField(i) + ".content[" + strconv.Itoa(j) + "]" }

// checkContent validates the content of messages[i], reports whether it
// holds an image part, and estimates the message's prompt tokens.
func checkContent(i int, role string, raw jsontext.Value) (hasImage bool, tokens int64, _ *apierror.Error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		if role == "assistant" {
			// an assistant turn that only made tool calls
			return false, usage.MessageTokens(raw), nil
		}
		field := messageField(i) + ".content"
		return false, 0, apierror.Invalid(field, "Missing required parameter: '"+field+"' (a string or an array of content parts).")
	}
	switch raw[0] {
	case '"':
		return false, usage.MessageTokens(raw), nil
	case '[':
	default:
		field := messageField(i) + ".content"
		return false, 0, apierror.Invalid(field, "Invalid type for '"+field+"': expected a string or an array of content parts.")
	}
	parts, e := chatParts(i, raw)
	if e != nil {
		return false, 0, e
	}
	var est usage.Parts
	for _, part := range parts {
		if *part.Type == "image_url" {
			hasImage = true
		}
		est.Add(*part.Type, part.Text)
	}
	return hasImage, est.MessageTokens(), nil
}

// contentParts reads an array of content parts: in one pass when every
// part decodes and has its type, as nearly all do; otherwise one part at a
// time, so that check, given each part with its decoding error, can say
// which one is wrong and how. field names the array, for an error; it is
// called only then.
func contentParts(raw jsontext.Value, field func() string, check func(j int, part *contentPart, err error) *apierror.Error) ([]contentPart, *apierror.Error) {
	var parts []contentPart
	if unmarshal(raw, &parts) == nil && !slices.ContainsFunc(parts, func(p contentPart) bool { return p.Type == nil }) {
		return parts, nil
	}
	var raws []jsontext.Value
	if err := unmarshal(raw, &raws); err != nil {
		f := field()
		return nil, apierror.Invalid(f, "Invalid '"+f+"': "+err.Error())
	}
	parts = make([]contentPart, len(raws))
	for j, rawPart := range raws {
		if e := check(j, &parts[j], unmarshal(rawPart, &parts[j])); e != nil {
			return nil, e
		}
	}
	return parts, nil
}

// chatParts is contentParts for messages[i].
func chatParts(i int, raw jsontext.Value) ([]contentPart, *apierror.Error) {
	field := func() string { return messageField(i) + ".content" }
	return contentParts(raw, field, func(j int, part *contentPart, err error) *apierror.Error {
		switch {
		case err != nil:
			pf := partField(i, j)
			if cv := (*caseVariantError)(nil); errors.As(err, &cv) {
				return cv.invalid(pf)
			}
			return apierror.Invalid(pf, "Invalid '"+pf+"': each content part must be an object with a string \"type\".")
		case part.Type == nil:
			pf := partField(i, j)
			return apierror.Invalid(pf+".type", "Missing required parameter: '"+pf+".type'.")
		}
		return nil
	})
}

// jsonError explains a decoding failure of decodeBody in terms of the
// request, not Go.
func jsonError(err error) *apierror.Error {
	var syn *jsontext.SyntacticError
	var sem *jsonv2.SemanticError
	var cv *caseVariantError
	switch {
	case errors.As(err, &cv):
		return cv.invalid("")
	case errors.As(err, &syn) && syn.Err == jsontext.ErrDuplicateName:
		k := pointerParam(syn.JSONPointer)
		return apierror.Invalid(k, "Request body has the field '"+k+"' more than once; send each field once.")
	case errors.As(err, &syn):
		return &apierror.Error{Status: http.StatusBadRequest, Code: "invalid_json",
			Message: fmt.Sprintf("Request body is not valid JSON (%s at byte %d).", syn.Err, syn.ByteOffset)}
	case errors.As(err, &sem) && sem.GoType != nil:
		field := pointerParam(sem.JSONPointer)
		if field == "" {
			field = "request body"
		}
		return &apierror.Error{Status: http.StatusBadRequest, Code: "invalid_type", Param: field,
			Message: fmt.Sprintf("Invalid type for '%s': expected %s, got %s.", field, jsonKind(sem.GoType), kindName(sem.JSONKind, sem.JSONValue))}
	default:
		return &apierror.Error{Status: http.StatusBadRequest, Code: "invalid_json",
			Message: "Request body is not valid JSON: " + strings.TrimPrefix(err.Error(), "json: ")}
	}
}

// pointerParam turns a JSON pointer (/messages/0/role) into the parameter
// form OpenAI's errors use (messages[0].role).
func pointerParam(p jsontext.Pointer) string {
	var b strings.Builder
	for tok := range p.Tokens() {
		if tok != "" && strings.Trim(tok, "0123456789") == "" && b.Len() > 0 {
			b.WriteString("[" + tok + "]")
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		b.WriteString(tok)
	}
	return b.String()
}

// kindName says what a JSON value is, in v1's words ("number", "string").
func kindName(k jsontext.Kind, v jsontext.Value) string {
	switch k {
	case '"':
		return "string"
	case '0':
		if len(v) > 0 {
			return "number " + string(v)
		}
		return "number"
	case 't', 'f':
		return "bool"
	case 'n':
		return "null"
	case '{':
		return "object"
	case '[':
		return "array"
	}
	return "a value of another type"
}

func jsonKind(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean"
	case reflect.Int, reflect.Int64, reflect.Int32:
		return "an integer"
	case reflect.Float64, reflect.Float32:
		return "a number"
	case reflect.Slice:
		return "an array"
	case reflect.Struct, reflect.Map:
		return "an object"
	default:
		return t.String()
	}
}
