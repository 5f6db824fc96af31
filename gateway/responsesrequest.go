package gateway

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/grokgate/grokgate/apierror"
	"github.com/grokgate/grokgate/usage"
)

// responsesRequest holds only the fields of a Responses API body that
// grokgate checks or acts on; the body forwarded upstream is the client's
// own bytes.
type responsesRequest struct {
	Model              *string         `json:"model"`
	Input              jsontext.Value  `json:"input"`
	Stream             *bool           `json:"stream"`
	PreviousResponseID *string         `json:"previous_response_id"`
	MaxOutputTokens    *int64          `json:"max_output_tokens"`
	MaxTurns           *int64          `json:"max_turns"`
	Tools              []responsesTool `json:"tools"`
	Instructions       *usage.PartText `json:"instructions"`
	Background         *bool           `json:"background"`
	Store              *bool           `json:"store"`
}

// responsesTool is one entry of "tools": its type is all grokgate reads.
// (The mcp tool's authorization and headers are secrets; they are never
// decoded, so never logged.)
type responsesTool struct {
	Type *string `json:"type"`
}

// responsesItem is one entry of an items-valued "input".
type responsesItem struct {
	Type    *string        `json:"type"`
	ID      *string        `json:"id"`
	Role    *string        `json:"role"`
	Content jsontext.Value `json:"content"`
}

// parsedResponses is what the handler needs to know about a valid request.
type parsedResponses struct {
	model        string
	stream       bool
	background   bool // run detached from the client, readable and resumable by id (background.go)
	hasImage     bool
	maxOutput    int64    // 0 when absent; for the token reservation
	maxTurns     int64    // 0 when absent; bounds the server-side tool calls reserved
	previous     string   // previous_response_id, "" when absent
	referenced   []string // response ids embedded in input item ids (msg_<id>, rs_<id>, ...)
	serverTools  []string // the types of the tools xAI runs itself
	promptTokens int64
}

// parseResponses validates a Responses API create body (also the compact
// body). Every problem it reports names the field and says what is
// expected; the rest of the body is xAI's to judge.
func parseResponses(body []byte) (parsedResponses, *apierror.Error) {
	var p parsedResponses
	var req responsesRequest
	if e := decodeObject(body, &req, ` with "model" and "input"`); e != nil {
		return p, e
	}
	var e *apierror.Error
	if p.model, e = requiredModel(req.Model); e != nil {
		return p, e
	}
	if req.Stream != nil {
		p.stream = *req.Stream
	}
	if req.PreviousResponseID != nil {
		if *req.PreviousResponseID == "" {
			return p, apierror.Invalid("previous_response_id", "'previous_response_id' must be the id of an earlier response, or left out.")
		}
		p.previous = *req.PreviousResponseID
	}
	if req.MaxOutputTokens != nil {
		if *req.MaxOutputTokens < 1 {
			return p, apierror.Invalid("max_output_tokens", fmt.Sprintf("Invalid value for 'max_output_tokens': %d; expected a positive integer.", *req.MaxOutputTokens))
		}
		p.maxOutput = *req.MaxOutputTokens
	}
	if req.MaxTurns != nil {
		if *req.MaxTurns < 1 {
			return p, apierror.Invalid("max_turns", fmt.Sprintf("Invalid value for 'max_turns': %d; expected a positive integer.", *req.MaxTurns))
		}
		p.maxTurns = *req.MaxTurns
	}
	if req.Background != nil {
		p.background = *req.Background
	}
	for i, t := range req.Tools {
		if t.Type == nil || *t.Type == "" {
			f := "tools[" + strconv.Itoa(i) + "].type"
			return p, apierror.Invalid(f, "Missing required parameter: '"+f+"' (such as \"function\" or \"web_search\").")
		}
		if *t.Type != "function" {
			p.serverTools = append(p.serverTools, *t.Type)
		}
	}
	if req.Instructions != nil {
		var est usage.Parts
		est.Add("input_text", *req.Instructions)
		p.promptTokens += est.MessageTokens()
	}
	if e := p.readInput(req.Input); e != nil {
		return p, e
	}
	return p, nil
}

// readInput checks "input" (a string, or an array of items), estimates its
// tokens, and notes image parts and the response ids item ids embed.
func (p *parsedResponses) readInput(raw jsontext.Value) *apierror.Error {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return apierror.Invalid("input", "Missing required parameter: 'input' (a string, or an array of input items).")
	}
	switch raw[0] {
	case '"':
		p.promptTokens += usage.MessageTokens(raw)
		return nil
	case '[':
	default:
		return apierror.Invalid("input", "Invalid type for 'input': expected a string or an array of input items.")
	}
	if ok, e := p.readMessages(raw); ok {
		return e
	}
	return p.readItems(raw)
}

// readItems reads an array of input items one at a time: any items, and
// the error that says which one is wrong and how.
func (p *parsedResponses) readItems(raw jsontext.Value) *apierror.Error {
	var items []jsontext.Value
	if err := unmarshal(raw, &items); err != nil {
		return apierror.Invalid("input", "Invalid 'input': "+err.Error())
	}
	for i, rawItem := range items {
		var it responsesItem
		if err := unmarshal(rawItem, &it); err != nil {
			f := itemField(i)
			if cv := (*caseVariantError)(nil); errors.As(err, &cv) {
				return cv.invalid(f)
			}
			return apierror.Invalid(f, "Invalid '"+f+"': each input item must be an object.")
		}
		p.noteReferenced(&it)
		if it.Type != nil && *it.Type != "message" {
			// Earlier output items, function_call_output and the like:
			// counted by their size.
			p.promptTokens += usage.MessageTokens(rawItem)
			continue
		}
		if e := p.readMessage(i, it.Content); e != nil {
			return e
		}
	}
	return nil
}

// readMessages reads an input that is all messages (the items a
// conversation is made of) in one pass, instead of one pass for the array
// and one per item (readItems); ok is false, with nothing noted, for any
// other input: one with other items, whose token estimate needs each item's
// own bytes, or one that does not decode, whose error readItems words.
func (p *parsedResponses) readMessages(raw jsontext.Value) (ok bool, _ *apierror.Error) {
	var items []responsesItem
	if unmarshal(raw, &items) != nil {
		return false, nil
	}
	for _, it := range items {
		if it.Type != nil && *it.Type != "message" {
			return false, nil
		}
	}
	for i := range items {
		p.noteReferenced(&items[i])
		if e := p.readMessage(i, items[i].Content); e != nil {
			return true, e
		}
	}
	return true, nil
}

// noteReferenced notes the response id an item's id embeds, if any.
func (p *parsedResponses) noteReferenced(it *responsesItem) {
	if it.ID != nil {
		if id, ok := embeddedResponseID(*it.ID); ok {
			p.referenced = append(p.referenced, id)
		}
	}
}

// readMessage checks the content of input[i], a message.
func (p *parsedResponses) readMessage(i int, raw jsontext.Value) *apierror.Error {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] == '"' || string(raw) == "null" {
		p.promptTokens += usage.MessageTokens(raw)
		return nil
	}
	if raw[0] != '[' {
		f := itemField(i) + ".content"
		return apierror.Invalid(f, "Invalid type for '"+f+"': expected a string or an array of content parts.")
	}
	parts, e := inputParts(i, raw)
	if e != nil {
		return e
	}
	var est usage.Parts
	for _, part := range parts {
		if *part.Type == "input_image" {
			p.hasImage = true
		}
		est.Add(*part.Type, part.Text)
	}
	p.promptTokens += est.MessageTokens()
	return nil
}

// inputParts is contentParts for input[i].
func inputParts(i int, raw jsontext.Value) ([]contentPart, *apierror.Error) {
	field := func() string { return itemField(i) + ".content" }
	return contentParts(raw, field, func(j int, part *contentPart, err error) *apierror.Error {
		if err == nil && part.Type != nil {
			return nil
		}
		f := itemField(i) + ".content[" + strconv.Itoa(j) + "]"
		if cv := (*caseVariantError)(nil); errors.As(err, &cv) {
			return cv.invalid(f)
		}
		return apierror.Invalid(f, "Invalid '"+f+"': each content part must be an object with a string \"type\".")
	})
}

func itemField(i int) string { return "input[" + strconv.Itoa(i) + "]" }

// embeddedResponseID returns the response id an output item's id embeds:
// xAI names items msg_<id>, rs_<id>, fc_<id>_0, ws_<id>_0 and so on, with
// <id> the response's UUID.
func embeddedResponseID(itemID string) (string, bool) {
	_, rest, ok := strings.Cut(itemID, "_")
	if !ok || len(rest) < 36 {
		return "", false
	}
	id := rest[:36]
	if len(rest) > 36 && rest[36] != '_' {
		return "", false
	}
	for i, c := range id {
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return "", false
			}
		default:
			if !strings.ContainsRune("0123456789abcdefABCDEF", c) {
				return "", false
			}
		}
	}
	return id, true
}
