package simulator

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
)

// responsesDirective holds the #sim{...} fields only /v1/responses reads;
// the shared ones (chunks, status, error_after, ...) come from directive.
type responsesDirective struct {
	EventLines      bool            `json:"event_lines"`
	ToolCall        string          `json:"tool_call"`
	Arguments       json.RawMessage `json:"arguments"`
	FailedAfter     *int            `json:"failed_after"`
	OmitUsage       bool            `json:"omit_usage"`
	ServerToolCalls *int            `json:"server_tool_calls"`
}

const (
	defaultServerToolCalls = 1
	maxServerToolCalls     = 16
	fileTokens             = 128 // an input_file part, whatever its size
)

// responsesDirectives decodes the Responses-only fields of each directive
// left to right; a directive whose Responses fields have the wrong type
// keeps its shared fields and loses these.
func responsesDirectives(d directive) responsesDirective {
	var ext responsesDirective
	for _, raw := range d.raw {
		var probe responsesDirective
		if json.Unmarshal(raw, &probe) == nil {
			_ = json.Unmarshal(raw, &ext) // cannot fail: probe decoded the same bytes
		}
	}
	return ext
}

// serverTool describes how one server-side tool type shows up in a
// response: its output item, the status events between added and done,
// and what a call costs (ticks; 10^10 = 1 USD).
type serverTool struct {
	typ      string
	itemType string
	idPrefix string
	phases   []string
	fee      int64
	sources  int
}

// serverToolFor returns the description of a server-side tool type. Fees
// follow xAI's price list: $5 per 1,000 web, X or code calls, $2.50 per
// 1,000 collection searches; MCP calls are billed as tokens only.
func serverToolFor(typ string) (serverTool, bool) {
	search := []string{"in_progress", "searching", "completed"}
	switch typ {
	case "web_search":
		return serverTool{typ, "web_search_call", "ws", search, 50_000_000, 1}, true
	case "x_search":
		return serverTool{typ, "x_search_call", "xs", search, 50_000_000, 1}, true
	case "code_interpreter":
		return serverTool{typ, "code_interpreter_call", "ci", []string{"in_progress", "interpreting", "completed"}, 50_000_000, 0}, true
	case "file_search":
		return serverTool{typ, "file_search_call", "fs", search, 25_000_000, 1}, true
	case "mcp":
		return serverTool{typ, "mcp_call", "mcp", []string{"in_progress", "completed"}, 0, 0}, true
	}
	return serverTool{}, false
}

// planItem is one output item with the pieces it streams.
type planItem struct {
	kind string // "reasoning", "tool", "function_call" or "message"
	id   string
	tool serverTool
	done any // the item as output_item.done and the final response show it
}

// responsesPlan is everything needed to answer a valid create request.
type responsesPlan struct {
	req         *responsesRequest
	dir         directive
	ext         responsesDirective
	prompt      string
	id          string
	turn        int // 1 for a new conversation, +1 per previous_response_id hop
	inputTokens int
	cached      int
	reasoning   []string
	text        []string
	args        []string
	incomplete  bool
	tools       toolUsageDetails
	toolCalls   int
	sources     int
	fees        int64
	items       []planItem
	base        responseObject // everything but status, output and usage
}

// planResponses validates a create body and computes the answer. The
// previous response, if named, must be in st.
func planResponses(body []byte, models []modelInfo, team string, st *responseStore, created int64) (*responsesPlan, *apiError) {
	req, aerr := parseResponsesRequest(body, models, team)
	if aerr != nil {
		return nil, aerr
	}
	p := &responsesPlan{req: req, id: newID(), turn: 1}
	if req.previousID != nil {
		prev, ok := st.get(*req.previousID)
		if !ok {
			return nil, responseNotFound(*req.previousID)
		}
		p.turn = prev.turn + 1
		p.inputTokens = prev.context
	}
	for i := len(req.items) - 1; i >= 0; i-- {
		if it := req.items[i]; it.typ == "message" && it.role == "user" {
			p.dir, p.prompt = parseDirectives(strings.Join(it.texts, "\n"))
			break
		}
	}
	p.ext = responsesDirectives(p.dir)
	p.inputTokens += inputTokens(req)
	p.cached = clamp(p.dir.CachedTokens, 0, p.inputTokens)
	p.base = responseObject{
		ID: p.id, Object: "response", CreatedAt: created, Model: req.model.id,
		Instructions: req.instructions, MaxOutputTokens: req.maxOutput, Metadata: orJSON(req.echo.metadata, `{}`),
		ParallelToolCalls: req.echo.parallelToolCalls, PreviousResponseID: req.previousID,
		Reasoning: reasoningEcho{Effort: req.effort}, Store: req.store,
		Temperature: req.echo.temperature, Text: orJSON(req.echo.text, `{"format":{"type":"text"}}`),
		ToolChoice: req.echo.toolChoice, Tools: req.echo.tools, TopP: req.echo.topP, User: req.echo.user,
	}
	if p.base.Tools == nil {
		p.base.Tools = []json.RawMessage{}
	}
	p.buildItems()
	return p, nil
}

func orJSON(v json.RawMessage, def string) json.RawMessage {
	if len(v) == 0 || string(v) == "null" {
		return json.RawMessage(def)
	}
	return v
}

// inputTokens counts this request's input like chat counts messages:
// 3 per item plus ceil(bytes/4) of its text, 256 per image, 128 per file;
// items sent back verbatim count ceil(bytes/4) of their JSON.
func inputTokens(req *responsesRequest) int {
	n := 0
	if req.instructions != nil {
		n += messageOverheadTokens + (len(*req.instructions)+3)/4
	}
	for _, it := range req.items {
		n += messageOverheadTokens + (it.size+3)/4 + imageTokens*it.images + fileTokens*it.files
		for _, t := range it.texts {
			n += (len(t) + 3) / 4
		}
	}
	return n
}

// buildItems decides the output: reasoning (reasoning models), one call
// item per server-side tool call, then either a function call or the
// message.
func (p *responsesPlan) buildItems() {
	req := p.req
	if req.model.reasoning() {
		p.reasoning = reasoningReply(p.prompt, p.dir.reasoningChunks())
	}
	budget := maxChunks
	if req.maxOutput != nil {
		budget = *req.maxOutput
	}
	if len(p.reasoning) > budget {
		p.reasoning, p.incomplete = p.reasoning[:budget], true
	}
	budget -= len(p.reasoning)
	if len(p.reasoning) > 0 {
		item := reasoningItem{ID: "rs_" + p.id, Type: "reasoning", Status: "completed",
			Summary: []summaryPart{{Type: "summary_text", Text: strings.Join(p.reasoning, "")}}}
		if req.includeEncrypted {
			enc := base64.StdEncoding.EncodeToString([]byte("sim-reasoning:" + p.id))
			item.EncryptedContent = &enc
		}
		p.items = append(p.items, planItem{kind: "reasoning", id: item.ID, done: item})
	}

	if req.toolChoice.mode != "none" {
		p.addServerToolCalls()
	}
	if name, args, ok := p.functionCall(); ok {
		p.args = splitArguments(args)
		item := functionCallItem{ID: p.itemID("fc", 0), Type: "function_call", Name: name, Arguments: args,
			CallID: "call_" + strings.ReplaceAll(p.id, "-", "")[:24], Status: "completed"}
		p.items = append(p.items, planItem{kind: "function_call", id: item.ID, done: item})
		return
	}

	p.text = Reply(p.prompt, p.dir.chunks())
	if len(p.text) > budget {
		p.text, p.incomplete = p.text[:budget], true
	}
	if p.turn > 1 && len(p.text) > 0 {
		// Lets a client check that the conversation was continued.
		p.text[0] = fmt.Sprintf("(turn %d) %s", p.turn, p.text[0])
	}
	text := strings.Join(p.text, "")
	var notes []annotation
	for _, it := range p.items {
		if it.kind == "tool" && it.tool.sources > 0 {
			n := len(notes) + 1
			notes = append(notes, annotation{Type: "url_citation", Title: "Simulated source " + strconv.Itoa(n),
				URL: "https://sources.sim.invalid/" + it.tool.typ + "/" + strconv.Itoa(n), EndIndex: len(text)})
		}
	}
	if notes == nil {
		notes = []annotation{}
	}
	item := messageItem{ID: "msg_" + p.id, Type: "message", Role: "assistant", Status: "completed",
		Content: []outputText{{Type: "output_text", Text: text, Annotations: notes, Logprobs: []struct{}{}}}}
	p.items = append(p.items, planItem{kind: "message", id: item.ID, done: item})
}

// itemID is <prefix>_<response id>_<n>: tool items embed the response id.
func (p *responsesPlan) itemID(prefix string, n int) string {
	return prefix + "_" + p.id + "_" + strconv.Itoa(n)
}

// addServerToolCalls adds server_tool_calls (default 1) calls for each
// server-side tool type declared.
func (p *responsesPlan) addServerToolCalls() {
	calls := defaultServerToolCalls
	if p.ext.ServerToolCalls != nil {
		calls = clamp(*p.ext.ServerToolCalls, 0, maxServerToolCalls)
	}
	seen := map[string]bool{}
	for _, d := range p.req.tools {
		t, ok := serverToolFor(d.typ)
		if !ok || seen[d.typ] {
			continue
		}
		seen[d.typ] = true
		for n := range calls {
			item := toolCallItem{ID: p.itemID(t.idPrefix, n), Type: t.itemType, Status: "completed"}
			switch t.typ {
			case "web_search", "x_search":
				item.Action = &searchAction{Type: "search", Query: p.prompt}
			case "file_search":
				item.Queries = []string{p.prompt}
			case "code_interpreter":
				code, logs := "print(6 * 7)", "42\n"
				item.Code, item.Outputs = &code, []codeOutput{{Type: "logs", Logs: logs}}
			case "mcp":
				label, name, args, out := d.label, "sim_lookup", "{}", "simulated mcp result"
				item.ServerLabel, item.Name, item.Arguments, item.Output = &label, &name, &args, &out
			}
			p.items = append(p.items, planItem{kind: "tool", id: item.ID, tool: t, done: item})
			p.countTool(t)
		}
	}
}

func (p *responsesPlan) countTool(t serverTool) {
	p.toolCalls++
	p.sources += t.sources
	p.fees += t.fee
	u := &p.tools
	switch t.typ {
	case "web_search":
		u.WebSearchCalls++
	case "x_search":
		u.XSearchCalls++
	case "code_interpreter":
		u.CodeInterpreterCalls++
	case "file_search":
		u.FileSearchCalls++
	case "mcp":
		u.MCPCalls++
	}
}

// functionCall decides whether the answer is a function call: never right
// after a function_call_output (the model answers the result), else when a
// tool_call directive or tool_choice ("required" or a named function) asks.
func (p *responsesPlan) functionCall() (name, args string, ok bool) {
	req := p.req
	if n := len(req.items); n > 0 && req.items[n-1].typ == "function_call_output" {
		return "", "", false
	}
	args = "{}"
	switch {
	case p.ext.ToolCall != "":
		name = p.ext.ToolCall
		if a := p.ext.Arguments; len(a) > 0 && string(a) != "null" {
			var s string
			if json.Unmarshal(a, &s) == nil {
				args = s
			} else {
				args = string(marshal(a)) // compact
			}
		}
	case req.toolChoice.mode == "function":
		name = req.toolChoice.name
	case req.toolChoice.mode == "required":
		for _, t := range req.tools {
			if t.typ == "function" {
				name = t.name
				break
			}
		}
	}
	return name, args, name != ""
}

// splitArguments cuts the arguments into up to 4 streamed pieces (one
// output token each).
func splitArguments(args string) []string {
	const pieces = 4
	if args == "" {
		return []string{""}
	}
	size := max((len(args)+pieces-1)/pieces, 1)
	var out []string
	for len(args) > size {
		out = append(out, args[:size])
		args = args[size:]
	}
	return append(out, args)
}

// usage is the usage after content output pieces (text or argument
// pieces) and reasoning pieces were produced; every tool call planned
// counts, since they all precede the text.
func (p *responsesPlan) usage(content, reasoning int) *responsesUsage {
	m := p.req.model
	out := content + reasoning
	return &responsesUsage{
		InputTokens:                p.inputTokens,
		InputTokensDetails:         inputDetails{CachedTokens: p.cached},
		OutputTokens:               out,
		OutputTokensDetails:        outputDetails{ReasoningTokens: reasoning},
		TotalTokens:                p.inputTokens + out,
		NumSourcesUsed:             p.sources,
		NumServerSideToolsUsed:     p.toolCalls,
		ServerSideToolUsageDetails: p.tools,
		CostInUSDTicks: int64(p.inputTokens-p.cached)*m.promptPrice + int64(p.cached)*m.cachedPrice +
			int64(out)*m.outputPrice + p.fees,
	}
}

// final is the finished response: completed, or incomplete when
// max_output_tokens cut the answer.
func (p *responsesPlan) final() responseObject {
	r := p.base
	r.Status = "completed"
	if p.incomplete {
		r.Status = "incomplete"
		r.IncompleteDetails = &incompleteDetails{Reason: "max_output_tokens"}
	}
	for _, it := range p.items {
		r.Output = append(r.Output, it.done)
	}
	r.Usage = p.usage(len(p.text)+len(p.args), len(p.reasoning))
	if p.ext.OmitUsage {
		r.Usage = nil
	}
	return r
}

// continuation is what a later previous_response_id needs of this answer:
// the whole conversation so far counts as input again (xAI re-reads it).
func (p *responsesPlan) continuation() storedMeta {
	return storedMeta{turn: p.turn, context: p.inputTokens + len(p.text) + len(p.args)}
}

func responseNotFound(id string) *apiError {
	return &apiError{status: http.StatusNotFound, msg: "Response with id '" + id + "' not found."}
}
