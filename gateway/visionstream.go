package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/grokgate/grokgate/apierror"
)

// VisionStream says how a request with image input that asks to stream is
// answered (GROKGATE_VISION_STREAM).
type VisionStream string

const (
	// VisionStreamEmulate, the default, sends the request upstream as
	// non-streaming and delivers the complete answer in SSE framing
	// (role+content chunk, finish chunk, usage chunk if asked, [DONE]), with
	// X-Stream-Fallback: true: every streaming client reads it.
	VisionStreamEmulate VisionStream = "emulate"
	// VisionStreamJSON makes the same single non-streaming upstream call but
	// answers with the complete JSON completion and X-Stream-Fallback: true.
	// Only clients that check the header read it; SDK streaming loops see
	// zero chunks.
	VisionStreamJSON VisionStream = "json"
	// VisionStreamNative streams from upstream like any other request.
	VisionStreamNative VisionStream = "native"
)

// visionStreamFallback is VisionStreamJSON's old name, still accepted so
// that existing configurations keep working.
const visionStreamFallback = "fallback"

// ParseVisionStream checks a configured mode. renamed reports that s is a
// mode's old name, which the caller should warn about.
func ParseVisionStream(s string) (_ VisionStream, renamed bool, _ error) {
	switch v := VisionStream(s); v {
	case VisionStreamEmulate, VisionStreamJSON, VisionStreamNative:
		return v, false, nil
	case visionStreamFallback:
		return VisionStreamJSON, true, nil
	}
	return "", false, fmt.Errorf("%q is not a vision stream mode; use emulate, json or native", s)
}

// visionStreaming applies the specified contract to a chat request: one that
// streams and has image input is sent upstream as non-streaming (and marked
// X-Stream-Fallback), unless the mode is native. It returns whether to
// stream from upstream and the body to send.
func (s *Server) visionStreaming(w http.ResponseWriter, req parsedChat, body []byte) (bool, []byte, *apierror.Error) {
	if !req.stream || !req.hasImage || s.cfg.VisionStream == VisionStreamNative {
		return req.stream, body, nil
	}
	body, err := withoutStreaming(body)
	if err != nil { // parseChat accepted it as an object, so not expected
		return false, nil, apierror.Invalid("", "Request body must be a JSON object.")
	}
	w.Header().Set(headerStreamFallback, "true")
	return false, body, nil
}

// completionIn is the part of a chat.completion the emulated stream needs;
// the message itself is kept raw so every field of it reaches the client.
type completionIn struct {
	ID                string          `json:"id"`
	Created           int64           `json:"created"`
	Model             string          `json:"model"`
	SystemFingerprint json.RawMessage `json:"system_fingerprint"`
	Choices           []struct {
		Index        int             `json:"index"`
		Message      json.RawMessage `json:"message"`
		FinishReason json.RawMessage `json:"finish_reason"`
		Logprobs     json.RawMessage `json:"logprobs"`
	} `json:"choices"`
	Usage json.RawMessage `json:"usage"`
}

// chunkOut is one emulated chat.completion.chunk. It has no "error" key at
// all: openai-go ends a stream on any chunk with one, even "error":null.
type chunkOut struct {
	ID                string           `json:"id"`
	Object            string           `json:"object"`
	Created           int64            `json:"created"`
	Model             string           `json:"model"`
	Choices           []chunkChoiceOut `json:"choices"`
	Usage             json.RawMessage  `json:"usage,omitempty"`
	SystemFingerprint json.RawMessage  `json:"system_fingerprint,omitempty"`
}

type chunkChoiceOut struct {
	Index        int             `json:"index"`
	Delta        json.RawMessage `json:"delta"`
	Logprobs     json.RawMessage `json:"logprobs,omitempty"`
	FinishReason json.RawMessage `json:"finish_reason,omitempty"`
}

// emulateStream answers a streaming request from a complete upstream
// answer, in the framing xAI's own streams have. Upstream errors are still
// answered with their HTTP status, since no byte was sent yet.
func (s *Server) emulateStream(ctx context.Context, w http.ResponseWriter, r *http.Request, resp *http.Response, includeUsage bool) {
	body, e, cause := upstreamAnswer(ctx, w, r, resp)
	if e != nil {
		s.fail(w, r, e, cause)
		return
	}
	m := meterFrom(r.Context())
	m.completion(body)
	events, err := streamEvents(body, includeUsage, infoFrom(r.Context()).id)
	if err != nil {
		s.fail(w, r, badUpstream("a chat completion"), err)
		return
	}
	writeEmulated(w, m, events)
}

var errNoChoices = errors.New("completion has no choices")

// streamEvents renders a chat.completion as the SSE body of the same answer
// streamed: per choice one delta with the role and the whole message, then
// per choice the finish chunk, the usage chunk only if asked for, and
// [DONE]. One id throughout, the completion's, as the SDKs' accumulators
// require.
func streamEvents(body []byte, includeUsage bool, requestID string) ([]byte, error) {
	var c completionIn
	if err := json.Unmarshal(body, &c); err != nil {
		return nil, err
	}
	if len(c.Choices) == 0 {
		return nil, errNoChoices
	}
	if c.ID == "" {
		c.ID = "chatcmpl-" + strings.TrimPrefix(requestID, "req_")
	}
	base := chunkOut{ID: c.ID, Object: "chat.completion.chunk", Created: c.Created, Model: c.Model,
		SystemFingerprint: nullToNil(c.SystemFingerprint)}
	var chunks []chunkOut
	for _, ch := range c.Choices {
		delta, err := deltaOf(ch.Message)
		if err != nil {
			return nil, err
		}
		ev := base
		ev.Choices = []chunkChoiceOut{{Index: ch.Index, Delta: delta, Logprobs: nullToNil(ch.Logprobs)}}
		chunks = append(chunks, ev)
	}
	for _, ch := range c.Choices {
		finish := nullToNil(ch.FinishReason)
		if finish == nil {
			finish = json.RawMessage(`"stop"`)
		}
		ev := base
		ev.Choices = []chunkChoiceOut{{Index: ch.Index, Delta: json.RawMessage("{}"), FinishReason: finish}}
		chunks = append(chunks, ev)
	}
	if includeUsage && nullToNil(c.Usage) != nil {
		ev := base
		ev.Choices = []chunkChoiceOut{}
		ev.Usage = c.Usage
		chunks = append(chunks, ev)
	}
	out := make([]byte, 0, len(body)+512)
	for _, ch := range chunks {
		b, err := json.Marshal(ch)
		if err != nil {
			return nil, err
		}
		out = append(append(append(out, "data: "...), b...), "\n\n"...)
	}
	return append(out, "data: [DONE]\n\n"...), nil
}

// deltaOf turns a completion message into a stream delta: the same members,
// with an "index" added to each tool call as stream deltas carry one.
func deltaOf(msg json.RawMessage) (json.RawMessage, error) {
	ms, err := splitObject(msg)
	if err != nil {
		return nil, err
	}
	for _, m := range ms {
		if m.key != "tool_calls" || nullToNil(m.value) == nil {
			continue
		}
		var calls []json.RawMessage
		if err := json.Unmarshal(m.value, &calls); err != nil {
			return nil, err
		}
		out := []byte{'['}
		for i, call := range calls {
			if i > 0 {
				out = append(out, ',')
			}
			indexed, err := editObject(call, nil, field{"index", []byte(strconv.Itoa(i))})
			if err != nil {
				return nil, err
			}
			out = append(out, indexed...)
		}
		out = append(out, ']')
		return editObject(msg, nil, field{"tool_calls", out})
	}
	return msg, nil
}
