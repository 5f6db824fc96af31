package simulator

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// Usage is xAI's usage object. Note total_tokens = prompt_tokens +
// completion_tokens + reasoning_tokens: completion_tokens excludes reasoning.
type Usage struct {
	PromptTokens            int                     `json:"prompt_tokens"`
	CompletionTokens        int                     `json:"completion_tokens"`
	TotalTokens             int                     `json:"total_tokens"`
	PromptTokensDetails     PromptTokensDetails     `json:"prompt_tokens_details"`
	CompletionTokensDetails CompletionTokensDetails `json:"completion_tokens_details"`
	NumSourcesUsed          int                     `json:"num_sources_used"`
	CostInUSDTicks          int64                   `json:"cost_in_usd_ticks"`
}

// PromptTokensDetails is Usage.prompt_tokens_details.
type PromptTokensDetails struct {
	TextTokens   int `json:"text_tokens"`
	AudioTokens  int `json:"audio_tokens"`
	ImageTokens  int `json:"image_tokens"`
	CachedTokens int `json:"cached_tokens"`
}

// CompletionTokensDetails is Usage.completion_tokens_details.
type CompletionTokensDetails struct {
	ReasoningTokens          int `json:"reasoning_tokens"`
	AudioTokens              int `json:"audio_tokens"`
	AcceptedPredictionTokens int `json:"accepted_prediction_tokens"`
	RejectedPredictionTokens int `json:"rejected_prediction_tokens"`
}

const (
	messageOverheadTokens = 3
	imageTokens           = 256
)

// ExpectedUsage returns the usage the simulator reports for a successful
// chat completion with this request body (streaming or not, as long as no
// fault directive interferes). It applies the same decoding, validation and
// directives as the handler; an invalid body yields the error the handler
// would answer with.
func ExpectedUsage(body []byte) (Usage, error) {
	p, err := planChat(body, chatModels(), "")
	if err != nil {
		return Usage{}, err
	}
	return p.usage, nil
}

type chatRequest struct {
	Model               string          `json:"model"`
	Messages            []chatMessage   `json:"messages"`
	Stream              bool            `json:"stream"`
	StreamOptions       *streamOptions  `json:"stream_options"`
	MaxCompletionTokens *int            `json:"max_completion_tokens"`
	MaxTokens           *int            `json:"max_tokens"`
	SearchParameters    json.RawMessage `json:"search_parameters"`
	Tools               []chatTool      `json:"tools"`
	ToolChoice          json.RawMessage `json:"tool_choice"`
}

type streamOptions struct {
	IncludeUsage bool `json:"include_usage"`
}

type chatMessage struct {
	Role    string         `json:"role"`
	Content messageContent `json:"content"`
}

// messageContent accepts both shapes of "content": a string or an array of
// parts. Anything else fails decoding, hence a 422 like xAI.
type messageContent struct {
	texts  []string
	images []string // image_url.url of each image part
}

type contentPart struct {
	Type     string `json:"type"`
	Text     string `json:"text"`
	ImageURL *struct {
		URL string `json:"url"`
	} `json:"image_url"`
}

func (c *messageContent) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	switch {
	case bytes.Equal(b, []byte("null")):
		return nil
	case len(b) > 0 && b[0] == '"':
		var s string
		if err := unmarshal(b, &s); err != nil {
			return err
		}
		c.texts = []string{s}
		return nil
	}
	var parts []contentPart
	if err := unmarshal(b, &parts); err != nil {
		return errors.New("content: expected a string or an array of content parts")
	}
	for i, p := range parts {
		switch p.Type {
		case "text":
			c.texts = append(c.texts, p.Text)
		case "image_url":
			url := ""
			if p.ImageURL != nil {
				url = p.ImageURL.URL
			}
			c.images = append(c.images, url)
		default:
			// xAI's content parts are a tagged enum: an unknown type is a
			// deserialization error, not a part to skip.
			return fmt.Errorf("content[%d]: unknown variant `%s`, expected `text` or `image_url`", i, p.Type)
		}
	}
	return nil
}

// chatPlan is everything the handler needs to answer a valid request.
type chatPlan struct {
	model        modelInfo
	stream       bool
	includeUsage bool
	dir          directive
	prompt       string
	reasoning    []string
	content      []string
	finish       string
	toolCall     *toolCallPlan // answer with this call instead of content
	usage        Usage
}

// planChat decodes and validates a chat request in xAI's order and computes
// the answer. team goes into the unknown-model message.
func planChat(body []byte, models []modelInfo, team string) (*chatPlan, *apiError) {
	var req chatRequest
	if err := decodeJSON(body, &req); err != nil {
		return nil, err
	}
	if req.Model == "" {
		return nil, &apiError{status: http.StatusBadRequest, msg: "Model must be specified"}
	}
	m, ok := findChatModel(models, req.Model)
	if !ok {
		return nil, &apiError{status: http.StatusNotFound,
			msg: "The model " + req.Model + " does not exist or your team " + team + " does not have access to it."}
	}
	if len(req.Messages) == 0 {
		return nil, &apiError{status: http.StatusBadRequest, msg: "Messages must not be empty"}
	}
	for i, msg := range req.Messages {
		switch msg.Role {
		case "system", "developer", "user", "assistant", "tool":
		default:
			return nil, &apiError{status: http.StatusUnprocessableEntity, plain: true,
				msg: fmt.Sprintf("Failed to deserialize the JSON body into the target type: messages[%d].role: unknown variant `%s`, "+
					"expected one of `system`, `developer`, `user`, `assistant`, `tool`", i, msg.Role)}
		}
	}
	if len(req.SearchParameters) > 0 && !bytes.Equal(req.SearchParameters, []byte("null")) {
		return nil, &apiError{status: http.StatusGone,
			msg: "Live search (search_parameters) is deprecated. Please switch to the Agent Tools API: https://docs.x.ai/docs/guides/tools/overview"}
	}
	for _, msg := range req.Messages {
		for _, url := range msg.Content.images {
			if !m.vision {
				return nil, &apiError{status: http.StatusBadRequest,
					msg: "Image inputs are not supported by model " + m.id + "."}
			}
			if err := checkImageURL(url); err != nil {
				return nil, err
			}
		}
	}
	limit := maxChunks
	for _, v := range []*int{req.MaxTokens, req.MaxCompletionTokens} { // the newer field wins
		if v == nil {
			continue
		}
		if *v < 1 {
			return nil, &apiError{status: http.StatusBadRequest, msg: "max_completion_tokens must be at least 1"}
		}
		limit = *v
	}

	p := &chatPlan{model: m, stream: req.Stream, finish: "stop"}
	p.includeUsage = req.Stream && req.StreamOptions != nil && req.StreamOptions.IncludeUsage
	for i := len(req.Messages) - 1; i >= 0; i-- {
		if req.Messages[i].Role == "user" {
			p.dir, p.prompt = parseDirectives(strings.Join(req.Messages[i].Content.texts, "\n"))
			break
		}
	}
	call, aerr := planToolCall(&req, p.dir)
	if aerr != nil {
		return nil, aerr
	}
	completionTokens := 0
	if call != nil {
		p.toolCall, p.content, p.finish = call, []string{}, "tool_calls"
		completionTokens = call.tokens()
	} else {
		p.content = Reply(p.prompt, p.dir.chunks())
		if len(p.content) > limit {
			p.content = p.content[:limit]
			p.finish = "length"
		}
		completionTokens = len(p.content)
	}
	if m.reasoning() {
		p.reasoning = reasoningReply(p.prompt, p.dir.reasoningChunks())
	}
	p.usage = computeUsage(m, req.Messages, p.dir.CachedTokens, completionTokens, len(p.reasoning))
	return p, nil
}

// checkImageURL accepts https URLs and jpeg/png data URIs, like xAI.
func checkImageURL(url string) *apiError {
	switch {
	case url == "":
		return &apiError{status: http.StatusBadRequest, msg: "image_url.url must not be empty"}
	case strings.HasPrefix(url, "data:"):
		for _, prefix := range []string{"data:image/jpeg;base64,", "data:image/jpg;base64,", "data:image/png;base64,"} {
			if strings.HasPrefix(url, prefix) {
				return nil
			}
		}
		return &apiError{status: http.StatusBadRequest, msg: "Unsupported image format: only jpg/jpeg and png data URIs are supported"}
	}
	return nil
}

func computeUsage(m modelInfo, msgs []chatMessage, cached, completion, reasoning int) Usage {
	text, images := 0, 0
	for _, msg := range msgs {
		text += messageOverheadTokens
		for _, t := range msg.Content.texts {
			text += (len(t) + 3) / 4
		}
		images += imageTokens * len(msg.Content.images)
	}
	prompt := text + images
	cached = clamp(cached, 0, prompt)
	return Usage{
		PromptTokens:     prompt,
		CompletionTokens: completion,
		TotalTokens:      prompt + completion + reasoning,
		PromptTokensDetails: PromptTokensDetails{
			TextTokens: text, ImageTokens: images, CachedTokens: cached,
		},
		CompletionTokensDetails: CompletionTokensDetails{ReasoningTokens: reasoning},
		CostInUSDTicks: int64(prompt-cached)*m.promptPrice + int64(cached)*m.cachedPrice +
			int64(completion+reasoning)*m.outputPrice,
	}
}

type chunk struct {
	ID                string        `json:"id"`
	Object            string        `json:"object"`
	Created           int64         `json:"created"`
	Model             string        `json:"model"`
	Choices           []chunkChoice `json:"choices"`
	Usage             *Usage        `json:"usage,omitempty"`
	SystemFingerprint string        `json:"system_fingerprint"`
}

type chunkChoice struct {
	Index        int        `json:"index"`
	Delta        chunkDelta `json:"delta"`
	FinishReason string     `json:"finish_reason,omitempty"`
}

type chunkDelta struct {
	Content          *string    `json:"content,omitempty"`
	ReasoningContent *string    `json:"reasoning_content,omitempty"`
	Role             string     `json:"role,omitempty"`
	ToolCalls        []toolCall `json:"tool_calls,omitempty"`
}

type completion struct {
	ID                string             `json:"id"`
	Object            string             `json:"object"`
	Created           int64              `json:"created"`
	Model             string             `json:"model"`
	Choices           []completionChoice `json:"choices"`
	Usage             Usage              `json:"usage"`
	SystemFingerprint string             `json:"system_fingerprint"`
}

type completionChoice struct {
	Index        int               `json:"index"`
	Message      completionMessage `json:"message"`
	FinishReason string            `json:"finish_reason"`
}

type completionMessage struct {
	Role             string     `json:"role"`
	Content          string     `json:"content"`
	ReasoningContent string     `json:"reasoning_content,omitempty"`
	ToolCalls        []toolCall `json:"tool_calls,omitempty"`
	Refusal          *string    `json:"refusal"`
}

func (s *Simulator) handleChat(w http.ResponseWriter, r *http.Request) {
	var raw json.RawMessage
	if err := readJSON(w, r, &raw); err != nil {
		writeError(w, err)
		return
	}
	p, aerr := planChat(raw, s.chat, teamID(r))
	if aerr != nil {
		writeError(w, aerr)
		return
	}
	ctx := r.Context()
	d := p.dir
	if d.FailTimes > 0 && s.attempts.next(raw) > d.FailTimes {
		d.Status, d.JSONError, d.Hang = 0, false, false
	}
	switch {
	case d.Hang:
		if p.stream {
			s.streamsStarted.Add(1)
		}
		<-ctx.Done()
		if p.stream {
			s.streamsCanceled.Add(1)
		}
		return
	case d.status() != 0:
		st := d.status()
		writeError(w, &apiError{status: st, retryAfter: d.RetryAfter,
			msg: fmt.Sprintf("Simulated upstream error (status %d)", st)})
		return
	case d.JSONError:
		if wait(ctx, d.ttft()) {
			writeJSON(w, http.StatusOK, errorBody{Code: "The service is currently unavailable",
				Error: "Timed out waiting for first token"})
		}
		return
	}
	if p.stream {
		s.stream(w, r, p)
		return
	}

	// Non-streaming: spend the time the stream would have taken, then answer.
	events := len(p.reasoning) + len(p.content)
	if d.CutAfter != nil {
		events = min(events, len(p.reasoning)+*d.CutAfter)
	}
	if d.ErrorAfter != nil {
		events = min(events, len(p.reasoning)+*d.ErrorAfter)
	}
	if !wait(ctx, d.ttft()+time.Duration(max(events-1, 0))*d.delay()) {
		s.requestsCanceled.Add(1)
		return
	}
	if d.CutAfter != nil {
		panic(http.ErrAbortHandler) // the client sees the connection drop
	}
	if d.ErrorAfter != nil {
		writeError(w, &apiError{status: http.StatusInternalServerError, code: "Internal error",
			msg: fmt.Sprintf("Simulated error after %d chunks", min(*d.ErrorAfter, len(p.content)))})
		return
	}
	writeJSON(w, http.StatusOK, completion{
		ID: newID(), Object: "chat.completion", Created: s.now().Unix(), Model: p.model.id,
		Choices: []completionChoice{{
			Message: completionMessage{Role: "assistant", Content: strings.Join(p.content, ""),
				ReasoningContent: strings.Join(p.reasoning, ""), ToolCalls: p.toolCall.messageOrNil()},
			FinishReason: p.finish,
		}},
		Usage:             p.usage,
		SystemFingerprint: p.model.fingerprint(),
	})
}

// stream writes the SSE answer. Each event is flushed on its own so the
// client sees the pacing set by ttft_ms and delay_ms.
func (s *Simulator) stream(w http.ResponseWriter, r *http.Request, p *chatPlan) {
	ctx := r.Context()
	rc := http.NewResponseController(w)
	d := p.dir
	s.streamsStarted.Add(1)
	canceled := func() { s.streamsCanceled.Add(1) }

	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	_ = rc.Flush() // a writer without Flush still works, just unpaced

	send := func(data []byte) bool {
		if ctx.Err() != nil {
			return false
		}
		buf := make([]byte, 0, len(data)+8)
		buf = append(append(append(buf, "data: "...), data...), "\n\n"...)
		if _, err := w.Write(buf); err != nil {
			return false
		}
		if err := rc.Flush(); err != nil && !errors.Is(err, http.ErrNotSupported) {
			return false
		}
		return true
	}
	base := chunk{ID: newID(), Object: "chat.completion.chunk", Created: s.now().Unix(),
		Model: p.model.id, SystemFingerprint: p.model.fingerprint()}
	first := true
	sendDelta := func(delta chunkDelta) bool {
		pause := d.delay()
		if first {
			pause = d.ttft()
			delta.Role = "assistant"
			first = false
		}
		if !wait(ctx, pause) {
			return false
		}
		c := base
		c.Choices = []chunkChoice{{Delta: delta}}
		return send(marshal(c))
	}

	for _, piece := range p.reasoning {
		if !sendDelta(chunkDelta{ReasoningContent: &piece}) {
			canceled()
			return
		}
	}
	n := len(p.content)
	if d.ErrorAfter != nil {
		n = min(n, max(*d.ErrorAfter, 0))
	}
	if d.CutAfter != nil {
		n = min(n, max(*d.CutAfter, 0))
	}
	for _, piece := range p.content[:n] {
		if !sendDelta(chunkDelta{Content: &piece}) {
			canceled()
			return
		}
	}
	if p.toolCall != nil {
		for _, delta := range p.toolCall.streamDeltas() {
			if !sendDelta(delta) {
				canceled()
				return
			}
		}
	}
	if d.ErrorAfter != nil {
		if first && !wait(ctx, d.ttft()) {
			canceled()
			return
		}
		if !send(marshal(errorBody{Code: "Internal error", Error: fmt.Sprintf("Simulated error after %d chunks", n)})) {
			canceled()
		}
		return
	}
	if d.CutAfter != nil {
		// Abort without terminating the chunked body: an abrupt cut, not a clean EOF.
		panic(http.ErrAbortHandler)
	}
	if first { // zero content chunks: the role still has to arrive once
		empty := ""
		if !sendDelta(chunkDelta{Content: &empty}) {
			canceled()
			return
		}
	}
	fin := base
	fin.Choices = []chunkChoice{{Delta: chunkDelta{}, FinishReason: p.finish}}
	if !send(marshal(fin)) {
		canceled()
		return
	}
	if p.includeUsage {
		u := base
		u.Choices = []chunkChoice{}
		u.Usage = &p.usage
		if !send(marshal(u)) {
			canceled()
			return
		}
	}
	if !send([]byte("[DONE]")) {
		canceled()
		return
	}
	s.streamsCompleted.Add(1)
}
