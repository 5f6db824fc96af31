package simulator

import (
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"
)

// maxResponseTools is xAI's limit on the tools array.
const maxResponseTools = 128

// responsesRequest is a validated POST /v1/responses body: the fields the
// simulator acts on, plus the ones it echoes in the response object.
type responsesRequest struct {
	model            modelInfo
	items            []inputItem
	instructions     *string
	previousID       *string
	store            bool
	stream           bool
	maxOutput        *int
	tools            []toolDecl
	toolChoice       toolChoice
	effort           *string
	includeEncrypted bool
	echo             responseEcho
}

// responseEcho holds request fields the response object repeats as sent.
type responseEcho struct {
	tools             []json.RawMessage // mcp secrets removed
	toolChoice        json.RawMessage
	text              json.RawMessage
	metadata          json.RawMessage
	temperature       json.RawMessage
	topP              json.RawMessage
	user              json.RawMessage
	parallelToolCalls bool
}

// inputItem is one entry of "input", reduced to what the simulator needs:
// its type, the text it carries (for directives and token counts) and its
// attachments.
type inputItem struct {
	typ    string // "message", "function_call_output", or an earlier output item's type
	role   string
	texts  []string
	images int
	files  int
	size   int // bytes of an item that is neither a message nor a tool output
}

// toolDecl is one entry of "tools".
type toolDecl struct {
	typ   string
	name  string // function tools
	label string // mcp tools: server_label
}

// toolChoice is "auto", "none", "required", or a named function.
type toolChoice struct {
	mode string
	name string
}

// inputItemTypes are the earlier output items a client may send back
// (constants, not slices, so no package state can be mutated).
const inputItemTypes = "function_call reasoning web_search_call x_search_call code_interpreter_call " +
	"file_search_call mcp_call mcp_list_tools custom_tool_call compaction item_reference"

// toolTypes are the tool types xAI accepts in "tools".
const toolTypes = "function web_search x_search code_interpreter file_search mcp view_image view_x_video"

// parseResponsesRequest decodes and validates a create body in xAI's order:
// deserialization (422), model (400/404), then the content (400).
func parseResponsesRequest(body []byte, models []modelInfo, team string) (*responsesRequest, *apiError) {
	o, aerr := parseObject(body, "")
	if aerr != nil {
		return nil, aerr
	}
	req := &responsesRequest{}
	model, aerr := o.str("", "model")
	if aerr != nil {
		return nil, aerr
	}
	if req.instructions, aerr = o.optStr("", "instructions"); aerr != nil {
		return nil, aerr
	}
	if req.previousID, aerr = o.optStr("", "previous_response_id"); aerr != nil {
		return nil, aerr
	}
	if req.store, aerr = o.boolean("", "store", true); aerr != nil {
		return nil, aerr
	}
	if req.stream, aerr = o.boolean("", "stream", false); aerr != nil {
		return nil, aerr
	}
	if req.echo.parallelToolCalls, aerr = o.boolean("", "parallel_tool_calls", true); aerr != nil {
		return nil, aerr
	}
	if req.maxOutput, aerr = o.integer("", "max_output_tokens"); aerr != nil {
		return nil, aerr
	}
	for _, f := range []struct {
		key   string
		kinds []string
	}{{"text", []string{"object"}}, {"metadata", []string{"object"}}, {"temperature", []string{"number"}},
		{"top_p", []string{"number"}}, {"user", []string{"string"}}, {"input", []string{"string", "array"}},
		{"tool_choice", []string{"string", "object"}}} {
		if aerr := o.expect("", f.key, f.kinds...); aerr != nil {
			return nil, aerr
		}
	}
	req.echo.text, req.echo.metadata = o["text"], o["metadata"]
	req.echo.temperature, req.echo.topP, req.echo.user = o["temperature"], o["top_p"], o["user"]
	if aerr := req.parseReasoning(o); aerr != nil {
		return nil, aerr
	}
	include, aerr := o.array("", "include")
	if aerr != nil {
		return nil, aerr
	}
	for i, inc := range include {
		var s string
		if json.Unmarshal(inc, &s) != nil {
			return nil, decodeError("include[%d]: expected a string", i)
		}
		req.includeEncrypted = req.includeEncrypted || s == "reasoning.encrypted_content"
	}

	if model == "" {
		return nil, &apiError{status: http.StatusBadRequest, msg: "Model must be specified"}
	}
	m, ok := findChatModel(models, model)
	if !ok {
		return nil, &apiError{status: http.StatusNotFound,
			msg: "The model " + model + " does not exist or your team " + team + " does not have access to it."}
	}
	req.model = m
	if aerr := req.parseInput(o); aerr != nil {
		return nil, aerr
	}
	if aerr := req.parseTools(o); aerr != nil {
		return nil, aerr
	}
	if aerr := req.parseToolChoice(o); aerr != nil {
		return nil, aerr
	}
	if req.maxOutput != nil && *req.maxOutput < 1 {
		return nil, invalid("max_output_tokens must be at least 1")
	}
	if req.previousID != nil && req.instructions != nil {
		return nil, invalid("instructions cannot be used together with previous_response_id")
	}
	return req, nil
}

func (req *responsesRequest) parseReasoning(o jsonObject) *apiError {
	r, aerr := o.object("", "reasoning")
	if r == nil || aerr != nil {
		return aerr
	}
	if req.effort, aerr = r.optStr("reasoning", "effort"); aerr != nil {
		return aerr
	}
	if req.effort != nil && !slices.Contains([]string{"none", "minimal", "low", "medium", "high"}, *req.effort) {
		return invalid("reasoning.effort: unknown value %q, expected one of none, minimal, low, medium, high", *req.effort)
	}
	return nil
}

func (req *responsesRequest) parseInput(o jsonObject) *apiError {
	if !o.has("input") {
		return invalid("input must be specified")
	}
	if o.kind("input") == "string" {
		s, _ := o.str("", "input") // kind checked above
		req.items = []inputItem{{typ: "message", role: "user", texts: []string{s}}}
		return nil
	}
	raw, aerr := o.array("", "input")
	if aerr != nil {
		return aerr
	}
	if len(raw) == 0 {
		return invalid("input must not be empty")
	}
	for i, r := range raw {
		item, aerr := req.parseItem(r, "input["+strconv.Itoa(i)+"]")
		if aerr != nil {
			return aerr
		}
		req.items = append(req.items, item)
	}
	return nil
}

func (req *responsesRequest) parseItem(raw json.RawMessage, path string) (inputItem, *apiError) {
	o, aerr := parseObject(raw, path)
	if aerr != nil {
		return inputItem{}, aerr
	}
	typ, aerr := o.str(path, "type")
	if aerr != nil {
		return inputItem{}, aerr
	}
	if typ == "" && o.has("role") {
		typ = "message" // the "easy" input message form has no type
	}
	switch {
	case typ == "message":
		return req.parseMessage(o, path)
	case typ == "function_call_output":
		callID, aerr := o.str(path, "call_id")
		if aerr != nil {
			return inputItem{}, aerr
		}
		if callID == "" {
			return inputItem{}, invalid("%s.call_id must be specified", path)
		}
		if aerr := o.expect(path, "output", "string", "array"); aerr != nil {
			return inputItem{}, aerr
		}
		out, _ := o.str(path, "output") // an array of parts counts by its size below
		if o.kind("output") == "array" {
			out = string(o["output"])
		}
		return inputItem{typ: typ, texts: []string{out}}, nil
	case slices.Contains(strings.Fields(inputItemTypes), typ):
		return inputItem{typ: typ, size: len(raw)}, nil
	case typ == "":
		return inputItem{}, invalid("%s: an item needs a type or a role", path)
	}
	return inputItem{}, invalid("%s: unknown item type %q", path, typ)
}

func (req *responsesRequest) parseMessage(o jsonObject, path string) (inputItem, *apiError) {
	role, aerr := o.str(path, "role")
	if aerr != nil {
		return inputItem{}, aerr
	}
	if !slices.Contains([]string{"user", "assistant", "system", "developer"}, role) {
		return inputItem{}, invalid("%s.role: unknown role %q, expected one of user, assistant, system, developer", path, role)
	}
	item := inputItem{typ: "message", role: role}
	if aerr := o.expect(path, "content", "string", "array"); aerr != nil {
		return inputItem{}, aerr
	}
	if o.kind("content") == "string" {
		s, _ := o.str(path, "content")
		item.texts = []string{s}
		return item, nil
	}
	parts, aerr := o.array(path, "content")
	if aerr != nil {
		return inputItem{}, aerr
	}
	if len(parts) == 0 {
		return inputItem{}, invalid("%s.content must not be empty", path)
	}
	for j, raw := range parts {
		ppath := path + ".content[" + strconv.Itoa(j) + "]"
		p, aerr := parseObject(raw, ppath)
		if aerr != nil {
			return inputItem{}, aerr
		}
		typ, aerr := p.str(ppath, "type")
		if aerr != nil {
			return inputItem{}, aerr
		}
		switch typ {
		case "input_text", "output_text":
			text, aerr := p.str(ppath, "text")
			if aerr != nil {
				return inputItem{}, aerr
			}
			item.texts = append(item.texts, text)
		case "refusal":
			text, aerr := p.str(ppath, "refusal")
			if aerr != nil {
				return inputItem{}, aerr
			}
			item.texts = append(item.texts, text)
		case "input_image":
			if aerr := req.checkImagePart(p, ppath); aerr != nil {
				return inputItem{}, aerr
			}
			item.images++
		case "input_file":
			item.files++
		default:
			return inputItem{}, invalid("%s.type: unknown content part type %q, expected one of input_text, input_image, input_file, output_text, refusal", ppath, typ)
		}
	}
	return item, nil
}

func (req *responsesRequest) checkImagePart(p jsonObject, path string) *apiError {
	if !req.model.vision {
		return &apiError{status: http.StatusBadRequest, msg: "Image inputs are not supported by model " + req.model.id + "."}
	}
	url, aerr := p.str(path, "image_url")
	if aerr != nil {
		return aerr
	}
	fileID, aerr := p.str(path, "file_id")
	if aerr != nil || fileID != "" {
		return aerr
	}
	return checkImageURL(url)
}

func (req *responsesRequest) parseTools(o jsonObject) *apiError {
	raw, aerr := o.array("", "tools")
	if aerr != nil {
		return aerr
	}
	if len(raw) > maxResponseTools {
		return invalid("tools: at most %d tools are allowed, got %d", maxResponseTools, len(raw))
	}
	req.echo.tools = []json.RawMessage{}
	for i, r := range raw {
		path := "tools[" + strconv.Itoa(i) + "]"
		t, aerr := parseObject(r, path)
		if aerr != nil {
			return aerr
		}
		typ, aerr := t.str(path, "type")
		if aerr != nil {
			return aerr
		}
		if !slices.Contains(strings.Fields(toolTypes), typ) {
			return invalid("%s.type: unknown tool type %q, expected one of %s", path, typ, toolTypes)
		}
		d := toolDecl{typ: typ}
		switch typ {
		case "function":
			if d.name, aerr = t.str(path, "name"); aerr != nil {
				return aerr
			}
			if d.name == "" {
				return invalid("%s.name must be specified for a function tool", path)
			}
		case "mcp":
			url, aerr := t.str(path, "server_url")
			if aerr != nil {
				return aerr
			}
			if url == "" {
				return invalid("%s.server_url must be specified for an mcp tool", path)
			}
			if d.label, aerr = t.str(path, "server_label"); aerr != nil {
				return aerr
			}
			// authorization and headers are the caller's secrets: never echoed.
			delete(t, "authorization")
			delete(t, "headers")
			r = marshal(t)
		}
		req.tools = append(req.tools, d)
		req.echo.tools = append(req.echo.tools, r)
	}
	return nil
}

func (req *responsesRequest) parseToolChoice(o jsonObject) *apiError {
	req.toolChoice = toolChoice{mode: "auto"}
	req.echo.toolChoice = json.RawMessage(`"auto"`)
	if !o.has("tool_choice") {
		return nil
	}
	req.echo.toolChoice = o["tool_choice"]
	if o.kind("tool_choice") == "string" {
		s, _ := o.str("", "tool_choice")
		if !slices.Contains([]string{"auto", "none", "required"}, s) {
			return invalid("tool_choice: unknown value %q, expected auto, none, required or an object", s)
		}
		req.toolChoice.mode = s
		return nil
	}
	c, aerr := o.object("", "tool_choice")
	if aerr != nil {
		return aerr
	}
	typ, aerr := c.str("tool_choice", "type")
	if aerr != nil || typ != "function" {
		return aerr // a hosted tool type: the model may use it, as with auto
	}
	name, aerr := c.str("tool_choice", "name")
	if aerr != nil {
		return aerr
	}
	if !slices.ContainsFunc(req.tools, func(t toolDecl) bool { return t.typ == "function" && t.name == name }) {
		return invalid("tool_choice names function %q, which is not in tools", name)
	}
	req.toolChoice = toolChoice{mode: "function", name: name}
	return nil
}
