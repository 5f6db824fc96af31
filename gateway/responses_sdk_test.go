package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/responses"

	"github.com/grokgate/grokgate"
)

// sdkClient is openai-go pointed at the harness's gateway with key.
func (h *harness) sdkClient(key string) openai.Client {
	return openai.NewClient(option.WithBaseURL(h.gw.URL+"/api/v1"), option.WithAPIKey(key), option.WithMaxRetries(0))
}

// TestResponsesOpenAIGo drives the Responses API through openai-go:
// create, stream, retrieve, continue, delete, a function tool round trip,
// a mid-stream error, another key's 404 and models.retrieve.
func TestResponsesOpenAIGo(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	c := h.sdkClient(h.user)

	first, err := c.Responses.New(ctx, responses.ResponseNewParams{Model: "grok-4.3",
		Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("Remember 7.")}})
	if err != nil || first.ID == "" || first.OutputText() == "" || first.Usage.InputTokens == 0 {
		t.Fatalf("create: %v %+v", err, first)
	}

	stream := c.Responses.NewStreaming(ctx, responses.ResponseNewParams{Model: "grok-4.3",
		Input:              responses.ResponseNewParamsInputUnion{OfString: openai.String("Which number?")},
		PreviousResponseID: openai.String(first.ID)})
	var text strings.Builder
	var completed responses.Response
	for stream.Next() {
		ev := stream.Current()
		switch ev.Type {
		case "response.output_text.delta":
			text.WriteString(ev.Delta)
		case "response.completed":
			completed = ev.Response
		}
	}
	if err := stream.Err(); err != nil || !strings.HasPrefix(text.String(), "(turn 2)") || completed.Usage.TotalTokens == 0 {
		t.Fatalf("continued stream: %v %q %+v", err, text.String(), completed.Usage)
	}

	got, err := c.Responses.Get(ctx, first.ID, responses.ResponseGetParams{})
	if err != nil || got.ID != first.ID {
		t.Fatalf("retrieve: %v", err)
	}
	other := h.sdkClient(h.mint(t, "other", grokgate.RoleUser, nil))
	var apiErr *openai.Error
	if _, err := other.Responses.Get(ctx, first.ID, responses.ResponseGetParams{}); !errors.As(err, &apiErr) || apiErr.StatusCode != 404 {
		t.Fatalf("another key's retrieve: %v", err)
	}
	if err := c.Responses.Delete(ctx, first.ID); err != nil {
		t.Fatalf("delete: %v", err)
	}
	if _, err := c.Responses.Get(ctx, first.ID, responses.ResponseGetParams{}); !errors.As(err, &apiErr) || apiErr.StatusCode != 404 {
		t.Fatalf("retrieve after delete: %v", err)
	}

	// A function tool round trip.
	tool := responses.ToolParamOfFunction("get_weather", map[string]any{"type": "object",
		"properties": map[string]any{"city": map[string]any{"type": "string"}}}, false)
	call, err := c.Responses.New(ctx, responses.ResponseNewParams{Model: "grok-4.3", Tools: []responses.ToolUnionParam{tool},
		Input: responses.ResponseNewParamsInputUnion{OfString: openai.String(`Weather? #sim{"tool_call":"get_weather","arguments":{"city":"Paris"}}`)}})
	if err != nil {
		t.Fatalf("tool call: %v", err)
	}
	var items []struct {
		Type, Name, Arguments string
		CallID                string `json:"call_id"`
	}
	json.Unmarshal([]byte(call.JSON.Output.Raw()), &items)
	if len(items) != 1 || items[0].Type != "function_call" || items[0].Name != "get_weather" || !strings.Contains(items[0].Arguments, "Paris") {
		t.Fatalf("tool call output %s", call.JSON.Output.Raw())
	}
	out := responses.ResponseInputItemParamOfFunctionCallOutput(`{"temp_c":21}`)
	out.OfFunctionCallOutput.CallID = openai.String(items[0].CallID)
	answer, err := c.Responses.New(ctx, responses.ResponseNewParams{Model: "grok-4.3", Tools: []responses.ToolUnionParam{tool},
		PreviousResponseID: openai.String(call.ID),
		Input:              responses.ResponseNewParamsInputUnion{OfInputItemList: responses.ResponseInputParam{out}}})
	if err != nil || answer.OutputText() == "" {
		t.Fatalf("tool result: %v %+v", err, errorBody(err))
	}

	// A mid-stream error ends the SDK's stream with an error carrying the message.
	bad := c.Responses.NewStreaming(ctx, responses.ResponseNewParams{Model: "grok-4.3",
		Input: responses.ResponseNewParamsInputUnion{OfString: openai.String(`Hi #sim{"error_after":2}`)}})
	for bad.Next() {
	}
	if err := bad.Err(); err == nil || !strings.Contains(err.Error(), "API error: Simulated error after 2 chunks") {
		t.Fatalf("mid-stream error: %v", err)
	}

	m, err := c.Models.Get(ctx, "grok-4.3")
	if err != nil || m.ID != "grok-4.3" {
		t.Fatalf("models.retrieve: %v %+v", err, m)
	}
}

// errorBody is the raw answer behind an openai-go error, for failure
// messages.
func errorBody(err error) string {
	var apiErr *openai.Error
	if errors.As(err, &apiErr) {
		return apiErr.RawJSON()
	}
	return ""
}
