package usage

import (
	"bytes"
	"strings"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/grokgate/grokgate"
)

// Terminal event types of a Responses API stream: each ends it, and only
// they (and the error event) carry the response's final state.
const (
	ResponseCompleted  = "response.completed"
	ResponseIncomplete = "response.incomplete"
	ResponseFailed     = "response.failed"
	ResponseError      = "error"
)

// ResponsesMeter follows one Responses API stream. Like StreamMeter it
// decodes only the events that matter (the first, which names the response
// and model, once Head asks, and the terminal one, which carries usage);
// every other event costs a few byte searches and no allocation. The zero
// value is ready.
type ResponsesMeter struct {
	head  streamHead // the response id and resolved model (Head)
	Usage Usage
	Tools grokgate.ToolCalls
	// HaveUsage is set once a terminal event's usage arrived.
	HaveUsage bool
	// Terminal is the type of the terminal event seen ("" while none).
	Terminal string
	// ErrorCode and ErrorMessage are an error event's fields.
	ErrorCode, ErrorMessage string
	// Seq is the last sequence_number seen, -1 before any: an error event
	// the gateway writes takes the next one.
	Seq int64
	// ContentBytes and ReasoningBytes count generated text (output text and
	// function arguments, and reasoning text) for the estimate when usage
	// never arrives.
	ContentBytes, ReasoningBytes int64
}

// Head returns the response's id and resolved model: the first event's, or
// the terminal event's where the first had none.
func (m *ResponsesMeter) Head() (id, model string) { return m.head.get(responseHead) }

// NewResponsesMeter returns a meter that has seen no event.
func NewResponsesMeter() ResponsesMeter { return ResponsesMeter{Seq: -1} }

// Observe takes one event's data and reports whether it ends the stream (a
// terminal event or an error event).
func (m *ResponsesMeter) Observe(data []byte) (terminal bool) {
	typ, end, ok := leadingType(data)
	if !ok {
		return m.observeAnyLayout(data)
	}
	// xAI writes every event as {"type":...,"sequence_number":N,...}: the
	// type says what the event is, with no search of the rest of it.
	if n, ok := leadingSequenceNumber(data[end:]); ok {
		m.Seq = n
	} else if n, ok := sequenceNumber(data); ok {
		m.Seq = n
	}
	m.head.keep(data)
	// Compared as bytes: a type held as a string would be allocated for
	// the longer names (response.reasoning_summary_text.delta).
	switch {
	case bytes.HasSuffix(typ, []byte(".delta")):
		m.countDelta(data, bytes.HasPrefix(typ, []byte("response.reasoning")))
		return false
	case string(typ) == ResponseCompleted || string(typ) == ResponseIncomplete || string(typ) == ResponseFailed || string(typ) == ResponseError:
		return m.decodeTerminal(data)
	}
	return false
}

// observeAnyLayout is Observe for an event whose first member is not its
// type: it finds the kind of event by byte searches instead.
func (m *ResponsesMeter) observeAnyLayout(data []byte) (terminal bool) {
	if n, ok := sequenceNumber(data); ok {
		m.Seq = n
	}
	m.head.keep(data)
	if bytes.Contains(data, []byte(`.delta"`)) {
		m.countDelta(data, bytes.Contains(data, []byte(`"response.reasoning`)))
		return false
	}
	// A raw quoted type name can only be a JSON string token, never text
	// inside one (whose quotes are escaped), so these searches cannot be
	// fooled by generated text. "error" is also a member name (every
	// response object has "error":null), so it counts only as a value.
	if !bytes.Contains(data, []byte(`"`+ResponseCompleted+`"`)) && !bytes.Contains(data, []byte(`"`+ResponseIncomplete+`"`)) &&
		!bytes.Contains(data, []byte(`"`+ResponseFailed+`"`)) && !hasStringValue(data, `"`+ResponseError+`"`) {
		return false
	}
	return m.decodeTerminal(data)
}

func (m *ResponsesMeter) countDelta(data []byte, reasoning bool) {
	n := stringBytes(data, `"delta"`)
	if reasoning {
		m.ReasoningBytes += n
	} else {
		m.ContentBytes += n
	}
}

// decodeTerminal decodes an event that may be terminal and reports whether
// its type says it is.
func (m *ResponsesMeter) decodeTerminal(data []byte) (terminal bool) {
	var ev terminalEvent
	if decodeHead(data, &ev) != nil {
		return false
	}
	switch ev.Type {
	case ResponseCompleted, ResponseIncomplete, ResponseFailed:
	case ResponseError:
		m.Terminal, m.ErrorMessage = ev.Type, ev.Message
		if c, ok := ev.Code.(string); ok {
			m.ErrorCode = c
		}
		return true
	default:
		return false
	}
	m.Terminal = ev.Type
	if r := ev.Response; r != nil {
		m.head.fallback(r.ID, r.Model)
		if r.Usage != nil {
			m.Usage, m.Tools, m.HaveUsage = r.Usage.usage(), r.Usage.tools(), true
		}
	}
	return true
}

// terminalEvent is what the meter reads of a terminal or error event.
type terminalEvent struct {
	Type     string `json:"type"`
	Code     any    `json:"code"`
	Message  string `json:"message"`
	Response *struct {
		ID    string              `json:"id"`
		Model string              `json:"model"`
		Usage *wireResponsesUsage `json:"usage"`
	} `json:"response"`
}

// leadingType returns the value of an event's "type" member when it is the
// object's first, written without spaces or escapes, and the index just
// after its closing quote; ok is false for any other layout.
func leadingType(data []byte) (typ []byte, end int, ok bool) {
	const prefix = `{"type":"`
	if !bytes.HasPrefix(data, []byte(prefix)) {
		return nil, 0, false
	}
	rest := data[len(prefix):]
	i := bytes.IndexByte(rest, '"')
	if i < 0 || bytes.IndexByte(rest[:i], '\\') >= 0 {
		return nil, 0, false
	}
	return rest[:i], len(prefix) + i + 1, true
}

// leadingSequenceNumber reads a "sequence_number" member that directly
// follows the type (rest is what comes after the type's value).
func leadingSequenceNumber(rest []byte) (int64, bool) {
	const key = `,"sequence_number":`
	if !bytes.HasPrefix(rest, []byte(key)) {
		return 0, false
	}
	return readInt(rest, len(key))
}

// responseHead reads the "id" and "model" of an event's "response" object
// (names matched as decodeHead matches them, without regard to case) and
// stops reading there: the first event's response object repeats the
// request's instructions and tools, which can run to kilobytes, and this is
// on the way to the client's first byte. A malformed event yields what was
// read before the fault.
func responseHead(data []byte) (id, model string) {
	d := jsontext.NewDecoder(bytes.NewBuffer(data), lenient()...) // a Buffer is read in place
	if t, err := d.ReadToken(); err != nil || t.Kind() != '{' {
		return "", ""
	}
	for d.PeekKind() == '"' {
		name, _ := d.ReadToken()
		if !strings.EqualFold(name.String(), "response") || d.PeekKind() != '{' {
			if d.SkipValue() != nil {
				return id, model
			}
			continue
		}
		d.ReadToken()
		for d.PeekKind() == '"' {
			name, _ := d.ReadToken()
			field := name.String()
			switch {
			case strings.EqualFold(field, "id") && d.PeekKind() == '"':
				v, _ := d.ReadToken()
				id = v.String()
			case strings.EqualFold(field, "model") && d.PeekKind() == '"':
				v, _ := d.ReadToken()
				model = v.String()
			default:
				if d.SkipValue() != nil {
					return id, model
				}
			}
			if id != "" && model != "" {
				return id, model
			}
		}
		return id, model
	}
	return id, model
}

// sequenceNumber reads the top-level "sequence_number" of an event without
// decoding it; nested objects carry none.
func sequenceNumber(data []byte) (int64, bool) {
	const key = `"sequence_number":`
	i := bytes.LastIndex(data, []byte(key))
	if i < 0 {
		return 0, false
	}
	return readInt(data, i+len(key))
}

// readInt reads the non-negative integer at data[i:], after any spaces; at
// most 18 digits are read, so it cannot overflow.
func readInt(data []byte, i int) (int64, bool) {
	j := skipSpace(data, i)
	var n int64
	start := j
	for ; j < len(data) && data[j] >= '0' && data[j] <= '9' && j-start < 18; j++ {
		n = n*10 + int64(data[j]-'0')
	}
	return n, j > start
}

// hasStringValue reports whether the quoted string occurs in data as a
// member's value (after a colon), not only as a member's name.
func hasStringValue(data []byte, quoted string) bool {
	for off := 0; ; {
		i := bytes.Index(data[off:], []byte(quoted))
		if i < 0 {
			return false
		}
		j := off + i - 1
		for j >= 0 && (data[j] == ' ' || data[j] == '\t' || data[j] == '\n' || data[j] == '\r') {
			j--
		}
		if j >= 0 && data[j] == ':' {
			return true
		}
		off += i + len(quoted)
	}
}

// wireResponsesUsage is the usage object of the Responses API.
type wireResponsesUsage struct {
	InputTokens        int64 `json:"input_tokens"`
	InputTokensDetails struct {
		CachedTokens int64 `json:"cached_tokens"`
	} `json:"input_tokens_details"`
	OutputTokens        int64 `json:"output_tokens"`
	OutputTokensDetails struct {
		ReasoningTokens int64 `json:"reasoning_tokens"`
	} `json:"output_tokens_details"`
	TotalTokens    *int64 `json:"total_tokens"`
	CostInUSDTicks int64  `json:"cost_in_usd_ticks"`
	ToolDetails    struct {
		WebSearch       int64 `json:"web_search_calls"`
		XSearch         int64 `json:"x_search_calls"`
		CodeInterpreter int64 `json:"code_interpreter_calls"`
		FileSearch      int64 `json:"file_search_calls"`
		MCP             int64 `json:"mcp_calls"`
		DocumentSearch  int64 `json:"document_search_calls"`
	} `json:"server_side_tool_usage_details"`
}

// usage maps Responses usage onto the ledger's counts, in which Completion
// excludes Reasoning. Whether xAI's output_tokens includes the reasoning
// tokens is not settled; total_tokens tells: when it equals input plus
// output, reasoning is inside output and is taken out of it.
func (w *wireResponsesUsage) usage() Usage {
	u := Usage{Prompt: w.InputTokens, Completion: w.OutputTokens, Reasoning: w.OutputTokensDetails.ReasoningTokens,
		Cached: w.InputTokensDetails.CachedTokens, CostTicks: w.CostInUSDTicks}
	if w.TotalTokens != nil && *w.TotalTokens == w.InputTokens+w.OutputTokens && u.Reasoning <= u.Completion {
		u.Completion -= u.Reasoning
	}
	return u
}

func (w *wireResponsesUsage) tools() grokgate.ToolCalls {
	d := w.ToolDetails
	return grokgate.ToolCalls{WebSearch: d.WebSearch, XSearch: d.XSearch, CodeInterpreter: d.CodeInterpreter,
		FileSearch: d.FileSearch, MCP: d.MCP, DocumentSearch: d.DocumentSearch}
}

// ParseResponse reads the id, resolved model, status, usage and tool calls
// of a non-streaming Responses API body (a response object). ok is false
// when it has no usage object.
func ParseResponse(body []byte) (id, model, status string, u Usage, tools grokgate.ToolCalls, ok bool) {
	var r struct {
		ID     string              `json:"id"`
		Model  string              `json:"model"`
		Status string              `json:"status"`
		Usage  *wireResponsesUsage `json:"usage"`
	}
	if decodeHead(body, &r) != nil {
		return "", "", "", u, tools, false
	}
	if r.Usage != nil {
		u, tools, ok = r.Usage.usage(), r.Usage.tools(), true
	}
	return r.ID, r.Model, r.Status, u, tools, ok
}

// ResponseGeneratedBytes counts the generated text of a response object
// without usage (its texts, reasoning summaries included, and function
// arguments), for the estimate.
func ResponseGeneratedBytes(body []byte) int64 {
	return stringBytes(body, `"text"`) + stringBytes(body, `"arguments"`)
}
