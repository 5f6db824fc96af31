package simulator

import (
	"bytes"
	"encoding/json"
	"net/http"
)

// chatTool is one entry of a chat request's "tools"; only the function's
// name matters to the simulator.
type chatTool struct {
	Type     string `json:"type"`
	Function struct {
		Name string `json:"name"`
	} `json:"function"`
}

// toolCall is a tool call on the wire: in a completion message (no index)
// and in stream deltas (with one).
type toolCall struct {
	Index    *int         `json:"index,omitempty"`
	ID       string       `json:"id,omitempty"`
	Type     string       `json:"type,omitempty"`
	Function toolFunction `json:"function"`
}

type toolFunction struct {
	Name      string `json:"name,omitempty"`
	Arguments string `json:"arguments"`
}

// chatToolDirective is the chat-only part of a #sim directive: ToolCall
// names a function of the request's tools to call, with Arguments;
// ToolCallDeltas > 0 streams the arguments in that many pieces instead of
// the whole call in one chunk.
type chatToolDirective struct {
	ToolCall       string          `json:"tool_call"`
	Arguments      json.RawMessage `json:"arguments"`
	ToolCallDeltas int             `json:"tool_call_deltas"`
}

// chatToolDirectives decodes those fields of each directive left to right;
// a directive whose fields here have the wrong type keeps only its shared
// fields.
func chatToolDirectives(d directive) chatToolDirective {
	var ext chatToolDirective
	for _, raw := range d.raw {
		var probe chatToolDirective
		if unmarshal(raw, &probe) == nil {
			_ = unmarshal(raw, &ext) // cannot fail: probe decoded the same bytes
		}
	}
	return ext
}

// toolCallPlan is the one function call the simulator answers with.
type toolCallPlan struct {
	id, name, arguments string
	// deltas > 0 streams the arguments in that many pieces after a first
	// delta with the name; 0 sends the whole call in one chunk, as xAI does.
	deltas int
}

// planToolCall decides whether a request is answered with a tool call: it
// must offer tools, its last message must be the user's (a request ending
// with a tool result is answered with text), and either the directive names
// a tool or tool_choice forces one ("required" takes the first tool).
// tool_choice "none" never calls one.
func planToolCall(req *chatRequest, dir directive) (*toolCallPlan, *apiError) {
	d := chatToolDirectives(dir)
	if len(req.Tools) == 0 || req.Messages[len(req.Messages)-1].Role != "user" {
		return nil, nil
	}
	choice, forced, err := parseToolChoice(req.ToolChoice)
	if err != nil {
		return nil, err
	}
	name := d.ToolCall
	switch {
	case choice == "none":
		return nil, nil
	case name != "":
	case forced != "":
		name = forced
	case choice == "required":
		name = req.Tools[0].Function.Name
	default:
		return nil, nil
	}
	if !offersTool(req.Tools, name) {
		return nil, &apiError{status: http.StatusBadRequest,
			msg: "Function " + name + " is not among the request's tools; name one of them in tool_choice or #sim{\"tool_call\":...}"}
	}
	args, err := toolArguments(d.Arguments)
	if err != nil {
		return nil, err
	}
	return &toolCallPlan{id: "call_" + newID()[:8], name: name, arguments: args, deltas: clamp(d.ToolCallDeltas, 0, maxChunks)}, nil
}

// parseToolChoice reads "auto", "none", "required" or
// {"type":"function","function":{"name":...}}.
func parseToolChoice(raw json.RawMessage) (choice, forced string, _ *apiError) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return "auto", "", nil
	}
	if unmarshal(raw, &choice) == nil {
		switch choice {
		case "auto", "none", "required":
			return choice, "", nil
		}
		return "", "", &apiError{status: http.StatusBadRequest, msg: "tool_choice must be auto, none, required or a function, got " + string(raw)}
	}
	var named struct {
		Function struct {
			Name string `json:"name"`
		} `json:"function"`
	}
	if unmarshal(raw, &named) != nil || named.Function.Name == "" {
		return "", "", &apiError{status: http.StatusBadRequest, msg: "tool_choice must be auto, none, required or a function, got " + string(raw)}
	}
	return "function", named.Function.Name, nil
}

func offersTool(tools []chatTool, name string) bool {
	for _, t := range tools {
		if t.Function.Name == name {
			return true
		}
	}
	return false
}

// toolArguments is the call's arguments string: the directive's object
// compacted, a JSON string as is (to send arguments that are not valid
// JSON), or "{}".
func toolArguments(raw json.RawMessage) (string, *apiError) {
	var s string
	switch {
	case len(raw) == 0:
		return "{}", nil
	case unmarshal(raw, &s) == nil:
		return s, nil
	}
	var b bytes.Buffer
	if json.Compact(&b, raw) != nil || b.Bytes()[0] != '{' {
		return "", &apiError{status: http.StatusBadRequest, msg: "#sim arguments must be a JSON object or string"}
	}
	return b.String(), nil
}

// tokens is what the call counts as completion tokens: about four bytes a
// token, like the prompt.
func (c *toolCallPlan) tokens() int {
	return (len(c.name) + len(c.arguments) + 3) / 4
}

// messageOrNil is the call in a non-streaming completion; nil (no
// tool_calls key) when the answer is text.
func (c *toolCallPlan) messageOrNil() []toolCall {
	if c == nil {
		return nil
	}
	return c.message()
}

func (c *toolCallPlan) message() []toolCall {
	return []toolCall{{ID: c.id, Type: "function", Function: toolFunction{Name: c.name, Arguments: c.arguments}}}
}

// streamDeltas are the deltas that carry the call in a stream: the whole
// call in one, or the name first and the arguments in pieces.
func (c *toolCallPlan) streamDeltas() []chunkDelta {
	zero := 0
	if c.deltas == 0 {
		call := c.message()
		call[0].Index = &zero
		return []chunkDelta{{ToolCalls: call}}
	}
	out := []chunkDelta{{ToolCalls: []toolCall{{Index: &zero, ID: c.id, Type: "function", Function: toolFunction{Name: c.name}}}}}
	for _, piece := range splitRunes(c.arguments, c.deltas) {
		out = append(out, chunkDelta{ToolCalls: []toolCall{{Index: &zero, Function: toolFunction{Arguments: piece}}}})
	}
	return out
}

// splitRunes cuts s into at most n pieces of nearly equal length, never
// inside a UTF-8 sequence.
func splitRunes(s string, n int) []string {
	r := []rune(s)
	n = clamp(n, 1, max(len(r), 1))
	out := make([]string, 0, n)
	for i := range n {
		out = append(out, string(r[i*len(r)/n:(i+1)*len(r)/n]))
	}
	return out
}
