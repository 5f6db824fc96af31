package simulator

import "encoding/json"

// responseObject is xAI's response object: the non-streaming answer, the
// snapshot inside response.* events, and what GET /v1/responses/{id}
// returns. Fields the OpenAI SDKs read are always present (null when
// unset); output_text is left to the SDKs, which compute it.
type responseObject struct {
	ID                 string             `json:"id"`
	Object             string             `json:"object"`
	CreatedAt          int64              `json:"created_at"`
	Model              string             `json:"model"`
	Status             string             `json:"status"`
	Output             []any              `json:"output"`
	Usage              *responsesUsage    `json:"usage"`
	Error              *responseError     `json:"error"`
	IncompleteDetails  *incompleteDetails `json:"incomplete_details"`
	Instructions       *string            `json:"instructions"`
	MaxOutputTokens    *int               `json:"max_output_tokens"`
	Metadata           json.RawMessage    `json:"metadata"`
	ParallelToolCalls  bool               `json:"parallel_tool_calls"`
	PreviousResponseID *string            `json:"previous_response_id"`
	Reasoning          reasoningEcho      `json:"reasoning"`
	Store              bool               `json:"store"`
	Temperature        json.RawMessage    `json:"temperature"`
	Text               json.RawMessage    `json:"text"`
	ToolChoice         json.RawMessage    `json:"tool_choice"`
	Tools              []json.RawMessage  `json:"tools"`
	TopP               json.RawMessage    `json:"top_p"`
	User               json.RawMessage    `json:"user"`
	Background         bool               `json:"background"`
}

type responseError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

type incompleteDetails struct {
	Reason string `json:"reason"`
}

type reasoningEcho struct {
	Effort  *string `json:"effort"`
	Summary *string `json:"summary"`
}

// responsesUsage is the usage object of the Responses API. Here
// output_tokens includes the reasoning tokens and total_tokens =
// input_tokens + output_tokens, as in recorded live traffic (the wire notes
// call this unsettled; grokgate stores both counts as received).
type responsesUsage struct {
	InputTokens                int              `json:"input_tokens"`
	InputTokensDetails         inputDetails     `json:"input_tokens_details"`
	OutputTokens               int              `json:"output_tokens"`
	OutputTokensDetails        outputDetails    `json:"output_tokens_details"`
	TotalTokens                int              `json:"total_tokens"`
	NumSourcesUsed             int              `json:"num_sources_used"`
	NumServerSideToolsUsed     int              `json:"num_server_side_tools_used"`
	ServerSideToolUsageDetails toolUsageDetails `json:"server_side_tool_usage_details"`
	CostInUSDTicks             int64            `json:"cost_in_usd_ticks"`
}

type inputDetails struct {
	CachedTokens int `json:"cached_tokens"`
}

type outputDetails struct {
	ReasoningTokens int `json:"reasoning_tokens"`
}

type toolUsageDetails struct {
	WebSearchCalls       int `json:"web_search_calls"`
	XSearchCalls         int `json:"x_search_calls"`
	CodeInterpreterCalls int `json:"code_interpreter_calls"`
	FileSearchCalls      int `json:"file_search_calls"`
	MCPCalls             int `json:"mcp_calls"`
	DocumentSearchCalls  int `json:"document_search_calls"`
}

// Output items. Each is marshalled as it stands at output_item.done and in
// the final response; the "added" form is a copy with status in_progress
// and empty content.

type reasoningItem struct {
	ID               string        `json:"id"`
	Type             string        `json:"type"`
	Summary          []summaryPart `json:"summary"`
	Status           string        `json:"status"`
	EncryptedContent *string       `json:"encrypted_content,omitempty"`
}

type summaryPart struct {
	Type string `json:"type"`
	Text string `json:"text"`
}

type messageItem struct {
	ID      string       `json:"id"`
	Type    string       `json:"type"`
	Role    string       `json:"role"`
	Status  string       `json:"status"`
	Content []outputText `json:"content"`
}

type outputText struct {
	Type        string       `json:"type"`
	Text        string       `json:"text"`
	Annotations []annotation `json:"annotations"`
	Logprobs    []struct{}   `json:"logprobs"`
}

type annotation struct {
	Type       string `json:"type"`
	URL        string `json:"url"`
	Title      string `json:"title"`
	StartIndex int    `json:"start_index"`
	EndIndex   int    `json:"end_index"`
}

type functionCallItem struct {
	ID        string `json:"id"`
	Type      string `json:"type"`
	CallID    string `json:"call_id"`
	Name      string `json:"name"`
	Arguments string `json:"arguments"`
	Status    string `json:"status"`
}

// toolCallItem is a server-side tool call; which optional fields are set
// depends on its type (see serverToolFor).
type toolCallItem struct {
	ID          string        `json:"id"`
	Type        string        `json:"type"`
	Status      string        `json:"status"`
	Action      *searchAction `json:"action,omitempty"`
	Queries     []string      `json:"queries,omitempty"`
	Code        *string       `json:"code,omitempty"`
	Outputs     []codeOutput  `json:"outputs,omitempty"`
	ServerLabel *string       `json:"server_label,omitempty"`
	Name        *string       `json:"name,omitempty"`
	Arguments   *string       `json:"arguments,omitempty"`
	Output      *string       `json:"output,omitempty"`
}

type searchAction struct {
	Type  string `json:"type"`
	Query string `json:"query"`
}

type codeOutput struct {
	Type string `json:"type"`
	Logs string `json:"logs"`
}

// event is one Responses stream event. type and sequence_number come first;
// the other fields appear only on the events that carry them.
type event struct {
	Type            string          `json:"type"`
	SequenceNumber  int             `json:"sequence_number"`
	Response        *responseObject `json:"response,omitempty"`
	OutputIndex     *int            `json:"output_index,omitempty"`
	Item            any             `json:"item,omitempty"`
	ItemID          string          `json:"item_id,omitempty"`
	ContentIndex    *int            `json:"content_index,omitempty"`
	SummaryIndex    *int            `json:"summary_index,omitempty"`
	Part            any             `json:"part,omitempty"`
	Delta           *string         `json:"delta,omitempty"`
	Text            *string         `json:"text,omitempty"`
	Name            string          `json:"name,omitempty"`
	Arguments       *string         `json:"arguments,omitempty"`
	AnnotationIndex *int            `json:"annotation_index,omitempty"`
	Annotation      *annotation     `json:"annotation,omitempty"`
	Logprobs        json.RawMessage `json:"logprobs,omitempty"` // "[]" on text events
	Code            string          `json:"code,omitempty"`
	Message         string          `json:"message,omitempty"`
	Param           json.RawMessage `json:"param,omitempty"`
}
