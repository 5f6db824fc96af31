package simulator

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

var uuidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

// respBody builds a create body; extra fields are merged in.
func respBody(t *testing.T, model string, input any, extra map[string]any) string {
	t.Helper()
	req := map[string]any{"model": model, "input": input}
	for k, v := range extra {
		req[k] = v
	}
	b, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// testResponse is the response object as a client reads it.
type testResponse struct {
	ID                 string                       `json:"id"`
	Object             string                       `json:"object"`
	CreatedAt          int64                        `json:"created_at"`
	Model              string                       `json:"model"`
	Status             string                       `json:"status"`
	Output             []map[string]json.RawMessage `json:"output"`
	Usage              *responsesUsage              `json:"usage"`
	Error              *responseError               `json:"error"`
	IncompleteDetails  *incompleteDetails           `json:"incomplete_details"`
	PreviousResponseID *string                      `json:"previous_response_id"`
	Store              bool                         `json:"store"`
	Tools              []map[string]any             `json:"tools"`
}

func (r testResponse) outputTypes() []string {
	var out []string
	for _, it := range r.Output {
		var typ string
		_ = json.Unmarshal(it["type"], &typ)
		out = append(out, typ)
	}
	return out
}

func (r testResponse) item(typ string) map[string]json.RawMessage {
	for _, it := range r.Output {
		if string(it["type"]) == `"`+typ+`"` {
			return it
		}
	}
	return nil
}

// text is what the SDKs compute as output_text.
func (r testResponse) text() string {
	var s string
	for _, it := range r.Output {
		var parts []struct{ Text string }
		_ = json.Unmarshal(it["content"], &parts)
		for _, p := range parts {
			s += p.Text
		}
	}
	return s
}

func str(raw json.RawMessage) string {
	var s string
	_ = json.Unmarshal(raw, &s)
	return s
}

func createResponse(t *testing.T, srv *httptest.Server, body string) testResponse {
	t.Helper()
	resp := post(t, srv, "/v1/responses", body)
	b := readBody(t, resp)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("status %d %q: %s", resp.StatusCode, resp.Header.Get("Content-Type"), b)
	}
	var r testResponse
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("%v: %s", err, b)
	}
	return r
}

type testEvent struct {
	Type           string          `json:"type"`
	SequenceNumber *int            `json:"sequence_number"`
	Response       *testResponse   `json:"response"`
	ItemID         string          `json:"item_id"`
	OutputIndex    *int            `json:"output_index"`
	Item           json.RawMessage `json:"item"`
	Delta          string          `json:"delta"`
	Code           string          `json:"code"`
	Message        string          `json:"message"`
	raw            string
}

// readEvents parses a Responses stream strictly: "data: " lines (after an
// "event: <type>" line exactly when eventLines), JSON with a type equal to
// that line, sequence numbers 0, 1, 2, ... and no [DONE].
func readEvents(t *testing.T, body []byte, eventLines bool) []testEvent {
	t.Helper()
	s := string(body)
	if !strings.HasSuffix(s, "\n\n") {
		t.Fatalf("body does not end with a blank line: %q", s)
	}
	var out []testEvent
	for i, block := range strings.Split(strings.TrimSuffix(s, "\n\n"), "\n\n") {
		name := ""
		if eventLines {
			line, rest, ok := strings.Cut(block, "\n")
			if name, ok = strings.CutPrefix(line, "event: "); !ok {
				t.Fatalf("event %d lacks an event line: %q", i, block)
			}
			block = rest
		}
		data, ok := strings.CutPrefix(block, "data: ")
		if !ok || strings.Contains(data, "\n") || data == "[DONE]" {
			t.Fatalf("malformed event %q", block)
		}
		var ev testEvent
		if err := json.Unmarshal([]byte(data), &ev); err != nil {
			t.Fatalf("event %d: %v: %s", i, err, data)
		}
		ev.raw = data
		if ev.Type == "" || ev.SequenceNumber == nil || *ev.SequenceNumber != i {
			t.Fatalf("event %d: bad type or sequence number: %s", i, data)
		}
		if eventLines && name != ev.Type {
			t.Fatalf("event line %q for %s", name, ev.Type)
		}
		out = append(out, ev)
	}
	return out
}

func streamResponse(t *testing.T, srv *httptest.Server, body string) []testEvent {
	t.Helper()
	resp := post(t, srv, "/v1/responses", body)
	b := readBody(t, resp)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("status %d: %s", resp.StatusCode, b)
	}
	return readEvents(t, b, strings.Contains(body, `event_lines`))
}

func types(evs []testEvent) []string {
	var out []string
	for _, ev := range evs {
		out = append(out, ev.Type)
	}
	return out
}

// squash folds runs of one type into "type*" so orders read plainly.
func squash(ts []string) []string {
	var out []string
	for _, tp := range ts {
		if n := len(out); n > 0 && strings.TrimSuffix(out[n-1], "*") == tp {
			out[n-1] = tp + "*"
			continue
		}
		out = append(out, tp)
	}
	return out
}

func TestResponsesNonStreaming(t *testing.T) {
	t.Parallel()
	fixed := time.Unix(1773345550, 0)
	_, srv := newServer(t, Options{APIKey: testKey, Now: func() time.Time { return fixed }})
	const prompt = "Tell me about gateways"

	r := createResponse(t, srv, respBody(t, "grok-4.3", prompt, map[string]any{"unknown_field": 1}))
	if !uuidRE.MatchString(r.ID) || r.Object != "response" || r.CreatedAt != fixed.Unix() || r.Model != "grok-4.3" ||
		r.Status != "completed" || !r.Store || r.Error != nil || r.IncompleteDetails != nil {
		t.Fatalf("%+v", r)
	}
	if got := r.outputTypes(); !slices.Equal(got, []string{"message"}) {
		t.Fatalf("output %v", got)
	}
	msg := r.item("message")
	if str(msg["id"]) != "msg_"+r.ID || str(msg["role"]) != "assistant" || str(msg["status"]) != "completed" {
		t.Fatalf("message %v", msg)
	}
	if r.text() != strings.Join(Reply(prompt, 8), "") {
		t.Fatalf("text %q", r.text())
	}
	u := r.Usage
	// 3 + ceil(22/4) = 9 input tokens, 8 output tokens at grok-4.3 prices.
	if u.InputTokens != 9 || u.OutputTokens != 8 || u.TotalTokens != 17 || u.OutputTokensDetails.ReasoningTokens != 0 ||
		u.CostInUSDTicks != 9*2000+8*5000 || u.NumServerSideToolsUsed != 0 {
		t.Fatalf("usage %+v", u)
	}

	t.Run("reasoning model", func(t *testing.T) {
		r := createResponse(t, srv, respBody(t, "grok-4-fast-reasoning",
			[]any{map[string]any{"role": "user", "content": `hi #sim{"reasoning_chunks":3,"chunks":2}`}}, nil))
		if r.Model != "grok-4.20-0309-reasoning" || !slices.Equal(r.outputTypes(), []string{"reasoning", "message"}) {
			t.Fatalf("%s %v", r.Model, r.outputTypes())
		}
		rs := r.item("reasoning")
		if str(rs["id"]) != "rs_"+r.ID || !strings.Contains(string(rs["summary"]), "summary_text") || rs["encrypted_content"] != nil {
			t.Fatalf("reasoning %v", rs)
		}
		u := r.Usage
		if u.OutputTokens != 5 || u.OutputTokensDetails.ReasoningTokens != 3 || u.TotalTokens != u.InputTokens+5 {
			t.Fatalf("usage %+v", u)
		}
		r = createResponse(t, srv, respBody(t, "grok-4.20-0309-reasoning", "x",
			map[string]any{"include": []string{"reasoning.encrypted_content"}}))
		if r.item("reasoning")["encrypted_content"] == nil {
			t.Fatal("no encrypted_content although included")
		}
	})

	t.Run("max_output_tokens", func(t *testing.T) {
		r := createResponse(t, srv, respBody(t, "grok-4.3", "long answer please", map[string]any{"max_output_tokens": 3}))
		if r.Status != "incomplete" || r.IncompleteDetails == nil || r.IncompleteDetails.Reason != "max_output_tokens" ||
			r.Usage.OutputTokens != 3 || r.text() != strings.Join(Reply("long answer please", 8)[:3], "") {
			t.Fatalf("%+v %q", r, r.text())
		}
		// Reasoning counts against the limit too.
		r = createResponse(t, srv, respBody(t, "grok-4.20-0309-reasoning", "x", map[string]any{"max_output_tokens": 3}))
		if r.Status != "incomplete" || r.Usage.OutputTokens != 3 || r.Usage.OutputTokensDetails.ReasoningTokens != 2 {
			t.Fatalf("%+v", r.Usage)
		}
	})

	t.Run("input items", func(t *testing.T) {
		input := []any{
			map[string]any{"type": "message", "role": "system", "content": "Be terse."},
			map[string]any{"role": "developer", "content": []any{map[string]any{"type": "input_text", "text": "abcd"}}},
			map[string]any{"type": "message", "role": "assistant", "content": []any{map[string]any{"type": "output_text", "text": "ok"}}},
			map[string]any{"role": "user", "content": []any{
				map[string]any{"type": "input_text", "text": "What is this? #sim{\"chunks\":2}"},
				map[string]any{"type": "input_image", "image_url": "data:image/png;base64,iVBORw0KGgo="},
				map[string]any{"type": "input_file", "file_id": "file-1"},
			}},
		}
		r := createResponse(t, srv, respBody(t, "grok-4.3", input, map[string]any{"instructions": "abcdefgh"}))
		if r.text() != strings.Join(Reply("What is this?", 2), "") {
			t.Fatalf("text %q", r.text())
		}
		// instructions 3+2, system 3+3, developer 3+1, assistant 3+1, user 3+ceil(31/4)=8 +256 +128.
		if want := 5 + 6 + 4 + 4 + 3 + 8 + 256 + 128; r.Usage.InputTokens != want {
			t.Fatalf("input tokens %d, want %d", r.Usage.InputTokens, want)
		}
	})
}

func TestResponsesStreamOrder(t *testing.T) {
	t.Parallel()
	sim, srv := newServer(t, Options{})
	const prompt = "Why is the sky blue?"

	evs := streamResponse(t, srv, respBody(t, "grok-4.20-0309-reasoning", prompt+` #sim{"reasoning_chunks":2,"chunks":3}`,
		map[string]any{"stream": true}))
	want := []string{"response.created", "response.in_progress",
		"response.output_item.added", "response.reasoning_summary_part.added",
		"response.reasoning_summary_text.delta", "response.reasoning_summary_text.delta",
		"response.reasoning_summary_text.done", "response.reasoning_summary_part.done", "response.output_item.done",
		"response.output_item.added", "response.content_part.added",
		"response.output_text.delta", "response.output_text.delta", "response.output_text.delta",
		"response.output_text.done", "response.content_part.done", "response.output_item.done", "response.completed"}
	if got := types(evs); !slices.Equal(got, want) {
		t.Fatalf("order\n got %v\nwant %v", got, want)
	}
	id := evs[0].Response.ID
	if !uuidRE.MatchString(id) || evs[0].Response.Status != "in_progress" || evs[0].Response.Usage != nil ||
		!strings.Contains(evs[0].raw, `"usage":null`) || !strings.Contains(evs[1].raw, `"usage":null`) {
		t.Fatalf("created: %s", evs[0].raw)
	}
	if evs[2].ItemID != "" || !strings.Contains(string(evs[2].Item), `"id":"rs_`+id+`"`) || evs[3].ItemID != "rs_"+id {
		t.Fatalf("reasoning ids: %s %s", evs[2].raw, evs[3].raw)
	}
	text := ""
	for _, ev := range evs {
		if ev.Type == "response.output_text.delta" {
			if ev.ItemID != "msg_"+id || *ev.OutputIndex != 1 || !strings.Contains(ev.raw, `"logprobs":[]`) {
				t.Fatalf("delta %s", ev.raw)
			}
			text += ev.Delta
		}
	}
	if text != strings.Join(Reply(prompt, 3), "") {
		t.Fatalf("text %q", text)
	}
	last := evs[len(evs)-1].Response
	if last.ID != id || last.Status != "completed" || last.Usage == nil || last.Usage.OutputTokens != 5 ||
		last.text() != text || !slices.Equal(last.outputTypes(), []string{"reasoning", "message"}) {
		t.Fatalf("completed: %s", evs[len(evs)-1].raw)
	}
	// The streamed response was stored and reads back the same.
	resp := do(t, context.Background(), srv, "GET", "/v1/responses/"+id, "k", "")
	var got testResponse
	if err := json.Unmarshal(readBody(t, resp), &got); err != nil || got.ID != id || *got.Usage != *last.Usage {
		t.Fatalf("stored %+v (%v)", got, err)
	}
	if st := sim.Stats(); st.StreamsStarted != 1 || st.StreamsCompleted != 1 {
		t.Fatalf("stats %+v", st)
	}

	t.Run("event lines", func(t *testing.T) {
		evs := streamResponse(t, srv, respBody(t, "grok-4.3", `#sim{"event_lines":true,"chunks":1}`, map[string]any{"stream": true}))
		if len(evs) != 9 || evs[8].Type != "response.completed" {
			t.Fatalf("%v", types(evs))
		}
	})

	t.Run("incomplete", func(t *testing.T) {
		evs := streamResponse(t, srv, respBody(t, "grok-4.3", "x", map[string]any{"stream": true, "max_output_tokens": 2}))
		last := evs[len(evs)-1]
		if last.Type != "response.incomplete" || last.Response.IncompleteDetails.Reason != "max_output_tokens" ||
			last.Response.Usage.OutputTokens != 2 {
			t.Fatalf("%s", last.raw)
		}
	})

	t.Run("zero chunks", func(t *testing.T) {
		evs := streamResponse(t, srv, respBody(t, "grok-4.3", `#sim{"chunks":0}`, map[string]any{"stream": true}))
		if slices.Contains(types(evs), "response.output_text.delta") || evs[len(evs)-1].Type != "response.completed" {
			t.Fatalf("%v", types(evs))
		}
	})
}

func TestResponsesServerTools(t *testing.T) {
	t.Parallel()
	_, srv := newServer(t, Options{})
	tools := []any{
		map[string]any{"type": "web_search"},
		map[string]any{"type": "x_search"},
		map[string]any{"type": "code_interpreter"},
		map[string]any{"type": "mcp", "server_url": "https://mcp.example/sse", "server_label": "docs",
			"authorization": "Bearer mcp-secret-token", "headers": map[string]string{"X-Key": "hdr-secret"}},
	}
	body := respBody(t, "grok-4.3", `search please #sim{"chunks":2}`, map[string]any{"tools": tools, "stream": true})
	resp := post(t, srv, "/v1/responses", body)
	raw := readBody(t, resp)
	if strings.Contains(string(raw), "secret") {
		t.Fatalf("mcp secrets echoed: %s", raw)
	}
	evs := readEvents(t, raw, false)
	id := evs[0].Response.ID
	want := []string{"response.created", "response.in_progress",
		"response.output_item.added", "response.web_search_call.in_progress", "response.web_search_call.searching",
		"response.web_search_call.completed", "response.output_item.done",
		"response.output_item.added", "response.x_search_call.in_progress", "response.x_search_call.searching",
		"response.x_search_call.completed", "response.output_item.done",
		"response.output_item.added", "response.code_interpreter_call.in_progress", "response.code_interpreter_call.interpreting",
		"response.code_interpreter_call.completed", "response.output_item.done",
		"response.output_item.added", "response.mcp_call.in_progress", "response.mcp_call.completed", "response.output_item.done",
		"response.output_item.added", "response.content_part.added", "response.output_text.delta*",
		"response.output_text.annotation.added*", "response.output_text.done", "response.content_part.done",
		"response.output_item.done", "response.completed"}
	if got := squash(types(evs)); !slices.Equal(got, want) {
		t.Fatalf("order\n got %v\nwant %v", got, want)
	}
	for i, prefix := range []string{"ws_", "xs_", "ci_", "mcp_"} {
		if ev := evs[3+5*i]; ev.ItemID != prefix+id+"_0" || *ev.OutputIndex != i {
			t.Fatalf("tool event %s", ev.raw)
		}
	}
	final := evs[len(evs)-1].Response
	if got := final.outputTypes(); !slices.Equal(got, []string{"web_search_call", "x_search_call", "code_interpreter_call", "mcp_call", "message"}) {
		t.Fatalf("output %v", got)
	}
	u := final.Usage
	d := u.ServerSideToolUsageDetails
	if u.NumServerSideToolsUsed != 4 || d.WebSearchCalls != 1 || d.XSearchCalls != 1 || d.CodeInterpreterCalls != 1 ||
		d.MCPCalls != 1 || d.FileSearchCalls != 0 || u.NumSourcesUsed != 2 {
		t.Fatalf("usage %+v", u)
	}
	m, _ := findChatModel(chatModels(), "grok-4.3")
	if want := int64(u.InputTokens)*m.promptPrice + int64(u.OutputTokens)*m.outputPrice + 3*50_000_000; u.CostInUSDTicks != want {
		t.Fatalf("cost %d, want %d", u.CostInUSDTicks, want)
	}
	if len(final.Tools) != 4 || final.Tools[3]["server_label"] != "docs" {
		t.Fatalf("tools echo %v", final.Tools)
	}

	t.Run("server_tool_calls", func(t *testing.T) {
		r := createResponse(t, srv, respBody(t, "grok-4.3", `#sim{"server_tool_calls":3}`,
			map[string]any{"tools": []any{map[string]any{"type": "web_search"}}}))
		if r.Usage.ServerSideToolUsageDetails.WebSearchCalls != 3 || str(r.Output[2]["id"]) != "ws_"+r.ID+"_2" ||
			r.Usage.CostInUSDTicks != int64(r.Usage.InputTokens)*m.promptPrice+8*m.outputPrice+3*50_000_000 {
			t.Fatalf("%+v %v", r.Usage, r.outputTypes())
		}
	})
}

func TestResponsesFunctionTools(t *testing.T) {
	t.Parallel()
	_, srv := newServer(t, Options{})
	tools := []any{map[string]any{"type": "function", "name": "get_weather", "parameters": map[string]any{"type": "object"}}}
	body := respBody(t, "grok-4.3", `Weather? #sim{"tool_call":"get_weather","arguments":{"city":"Paris"}}`,
		map[string]any{"tools": tools, "stream": true})
	evs := streamResponse(t, srv, body)
	want := []string{"response.created", "response.in_progress", "response.output_item.added",
		"response.function_call_arguments.delta*", "response.function_call_arguments.done", "response.output_item.done",
		"response.completed"}
	if got := squash(types(evs)); !slices.Equal(got, want) {
		t.Fatalf("order %v", got)
	}
	final := evs[len(evs)-1].Response
	id := final.ID
	fc := final.item("function_call")
	if str(fc["id"]) != "fc_"+id+"_0" || str(fc["name"]) != "get_weather" || str(fc["arguments"]) != `{"city":"Paris"}` ||
		!strings.HasPrefix(str(fc["call_id"]), "call_") {
		t.Fatalf("function call %v", fc)
	}
	args := ""
	for _, ev := range evs {
		if ev.Type == "response.function_call_arguments.delta" {
			args += ev.Delta
		}
	}
	if args != `{"city":"Paris"}` || !strings.Contains(evs[len(evs)-3].raw, `"arguments":"{\"city\":\"Paris\"}"`) {
		t.Fatalf("arguments %q / %s", args, evs[len(evs)-3].raw)
	}

	// The follow-up carries the output and continues the conversation: text.
	follow := respBody(t, "grok-4.3", []any{map[string]any{"type": "function_call_output",
		"call_id": str(fc["call_id"]), "output": `{"temp":21}`}},
		map[string]any{"tools": tools, "previous_response_id": id, "tool_choice": "required"})
	r := createResponse(t, srv, follow)
	if !slices.Equal(r.outputTypes(), []string{"message"}) || *r.PreviousResponseID != id || !strings.HasPrefix(r.text(), "(turn 2) ") {
		t.Fatalf("follow-up %v %q", r.outputTypes(), r.text())
	}

	for _, choice := range []any{"required", map[string]any{"type": "function", "name": "get_weather"}} {
		r := createResponse(t, srv, respBody(t, "grok-4.3", "hi", map[string]any{"tools": tools, "tool_choice": choice}))
		if fc := r.item("function_call"); fc == nil || str(fc["arguments"]) != "{}" || r.item("message") != nil {
			t.Fatalf("tool_choice %v: %v", choice, r.outputTypes())
		}
	}
	r = createResponse(t, srv, respBody(t, "grok-4.3", "hi", map[string]any{"tools": tools}))
	if !slices.Equal(r.outputTypes(), []string{"message"}) {
		t.Fatalf("auto without directive: %v", r.outputTypes())
	}
}

func doJSON(t *testing.T, srv *httptest.Server, method, path, body string) (int, map[string]any) {
	t.Helper()
	resp := do(t, context.Background(), srv, method, path, "k", body)
	b := readBody(t, resp)
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("%s %s: %d %q", method, path, resp.StatusCode, b)
	}
	return resp.StatusCode, m
}

// isFlatError reports whether m is xAI's {"code","error"} body.
func isFlatError(m map[string]any) bool {
	c, ok1 := m["code"].(string)
	e, ok2 := m["error"].(string)
	return len(m) == 2 && ok1 && ok2 && c != "" && e != ""
}

func TestResponsesStored(t *testing.T) {
	t.Parallel()
	_, srv := newServer(t, Options{})
	first := createResponse(t, srv, respBody(t, "grok-4.3", "My name is Ada.", nil))
	second := createResponse(t, srv, respBody(t, "grok-4.3", "What is my name?", map[string]any{"previous_response_id": first.ID}))
	third := createResponse(t, srv, respBody(t, "grok-4.3", "And again?", map[string]any{"previous_response_id": second.ID}))
	if strings.Contains(first.text(), "(turn") || !strings.HasPrefix(second.text(), "(turn 2) ") || !strings.HasPrefix(third.text(), "(turn 3) ") {
		t.Fatalf("turns: %q %q %q", first.text(), second.text(), third.text())
	}
	// The earlier conversation counts as input again.
	own := 3 + (len("What is my name?")+3)/4
	if second.Usage.InputTokens != first.Usage.InputTokens+first.Usage.OutputTokens+own {
		t.Fatalf("continued input %d", second.Usage.InputTokens)
	}

	st, got := doJSON(t, srv, "GET", "/v1/responses/"+first.ID, "")
	if st != 200 || got["id"] != first.ID || got["object"] != "response" || got["status"] != "completed" {
		t.Fatalf("GET %d %v", st, got)
	}
	st, got = doJSON(t, srv, "DELETE", "/v1/responses/"+first.ID, "")
	if st != 200 || len(got) != 3 || got["id"] != first.ID || got["object"] != "response" || got["deleted"] != true {
		t.Fatalf("DELETE %d %v", st, got)
	}
	for _, m := range []string{"GET", "DELETE"} {
		if st, got := doJSON(t, srv, m, "/v1/responses/"+first.ID, ""); st != 404 || !isFlatError(got) ||
			!strings.Contains(got["error"].(string), first.ID) {
			t.Fatalf("%s after delete: %d %v", m, st, got)
		}
	}
	st, got = doJSON(t, srv, "POST", "/v1/responses", respBody(t, "grok-4.3", "x", map[string]any{"previous_response_id": first.ID}))
	if st != 404 || !isFlatError(got) {
		t.Fatalf("continuing a deleted response: %d %v", st, got)
	}

	// store:false is answered but not kept.
	r := createResponse(t, srv, respBody(t, "grok-4.3", "x", map[string]any{"store": false}))
	if r.Store {
		t.Fatal("store echoed true")
	}
	if st, _ := doJSON(t, srv, "GET", "/v1/responses/"+r.ID, ""); st != 404 {
		t.Fatalf("unstored response readable: %d", st)
	}
	if st, got := doJSON(t, srv, "GET", "/v1/responses/"+second.ID+"/input_items", ""); st != 404 || !isFlatError(got) {
		t.Fatalf("input_items %d", st)
	}
	if st, got := doJSON(t, srv, "PUT", "/v1/responses/"+second.ID, ""); st != 405 || !isFlatError(got) {
		t.Fatalf("PUT %d", st)
	}
}

func TestResponseStoreBounded(t *testing.T) {
	t.Parallel()
	st := newResponseStore(3)
	ids := []string{"a", "b", "c", "d"}
	for _, id := range ids {
		st.put(storedResponse{obj: responseObject{ID: id}})
	}
	if _, ok := st.get("a"); ok {
		t.Fatal("oldest kept past the limit")
	}
	for _, id := range ids[1:] {
		if _, ok := st.get(id); !ok {
			t.Fatalf("%s dropped", id)
		}
	}
	if !st.remove("c") || st.remove("c") {
		t.Fatal("remove")
	}
	for i := range 20 {
		st.put(storedResponse{obj: responseObject{ID: string(rune('e' + i))}})
	}
	if len(st.byID) != 3 || len(st.order) > 6 {
		t.Fatalf("store grew: %d ids, %d order", len(st.byID), len(st.order))
	}
}

func TestResponsesCompact(t *testing.T) {
	t.Parallel()
	_, srv := newServer(t, Options{})
	st, got := doJSON(t, srv, "POST", "/v1/responses/compact", respBody(t, "grok-4.3", "a long conversation", nil))
	out, _ := got["output"].([]any)
	if st != 200 || got["object"] != "response.compaction" || len(out) != 1 {
		t.Fatalf("%d %v", st, got)
	}
	item := out[0].(map[string]any)
	if item["type"] != "compaction" || item["id"] != "cmp_"+got["id"].(string) || item["encrypted_content"] == "" {
		t.Fatalf("item %v", item)
	}
	// The item goes back in as input.
	r := createResponse(t, srv, respBody(t, "grok-4.3", []any{item, map[string]any{"role": "user", "content": "go on"}}, nil))
	if r.Status != "completed" {
		t.Fatalf("%+v", r)
	}
}

func TestResponsesValidation(t *testing.T) {
	t.Parallel()
	_, srv := newServer(t, Options{})
	cases := []struct {
		name, body string
		status     int
		msgHas     string
	}{
		{"not json", `{"model":`, 422, ""},
		{"not an object", `[1]`, 422, "expected an object"},
		{"model type", `{"model":1,"input":"x"}`, 422, "model"},
		{"model case", `{"Model":"grok-4.3","input":"x"}`, 400, "Model must be specified"},
		{"duplicate field", `{"model":"grok-4.3","model":"grok-4.3","input":"x"}`, 422, "duplicate field `model`"},
		{"unknown model", `{"model":"grok-9","input":"x"}`, 404, "The model grok-9 does not exist"},
		{"no input", `{"model":"grok-4.3"}`, 400, "input"},
		{"input type", `{"model":"grok-4.3","input":5}`, 422, "input"},
		{"empty input", `{"model":"grok-4.3","input":[]}`, 400, "input"},
		{"stream type", `{"model":"grok-4.3","input":"x","stream":"yes"}`, 422, "stream"},
		{"store type", `{"model":"grok-4.3","input":"x","store":1}`, 422, "store"},
		{"max_output_tokens type", `{"model":"grok-4.3","input":"x","max_output_tokens":"5"}`, 422, "max_output_tokens"},
		{"max_output_tokens zero", `{"model":"grok-4.3","input":"x","max_output_tokens":0}`, 400, "max_output_tokens"},
		{"tools type", `{"model":"grok-4.3","input":"x","tools":{}}`, 422, "tools"},
		{"unknown tool", `{"model":"grok-4.3","input":"x","tools":[{"type":"browser"}]}`, 400, "unknown tool type"},
		{"function without name", `{"model":"grok-4.3","input":"x","tools":[{"type":"function"}]}`, 400, "name"},
		{"mcp without url", `{"model":"grok-4.3","input":"x","tools":[{"type":"mcp","server_label":"a"}]}`, 400, "server_url"},
		{"tool_choice value", `{"model":"grok-4.3","input":"x","tool_choice":"always"}`, 400, "tool_choice"},
		{"tool_choice unknown function", `{"model":"grok-4.3","input":"x","tool_choice":{"type":"function","name":"f"}}`, 400, "f"},
		{"reasoning effort", `{"model":"grok-4.3","input":"x","reasoning":{"effort":"max"}}`, 400, "effort"},
		{"role", `{"model":"grok-4.3","input":[{"role":"tool","content":"x"}]}`, 400, "role"},
		{"role case", `{"model":"grok-4.3","input":[{"role":"User","content":"x"}]}`, 400, "role"},
		{"part type", `{"model":"grok-4.3","input":[{"role":"user","content":[{"type":"text","text":"x"}]}]}`, 400, "unknown content part type"},
		{"part text type", `{"model":"grok-4.3","input":[{"role":"user","content":[{"type":"input_text","text":3}]}]}`, 422, "text"},
		{"item type", `{"model":"grok-4.3","input":[{"type":"mystery"}]}`, 400, "unknown item type"},
		{"tool output without call_id", `{"model":"grok-4.3","input":[{"type":"function_call_output","output":"x"}]}`, 400, "call_id"},
		{"image to text-only model", `{"model":"grok-3","input":[{"role":"user","content":[{"type":"input_image","image_url":"https://x/y.png"}]}]}`, 400, "Image"},
		{"image format", `{"model":"grok-4.3","input":[{"role":"user","content":[{"type":"input_image","image_url":"data:image/gif;base64,R0l"}]}]}`, 400, "Unsupported image format"},
		{"instructions with previous", `{"model":"grok-4.3","input":"x","instructions":"y","previous_response_id":"5b3c0c1e-0000-4000-8000-000000000000"}`, 400, "instructions"},
		{"unknown previous", `{"model":"grok-4.3","input":"x","previous_response_id":"5b3c0c1e-0000-4000-8000-000000000000"}`, 404, "not found"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st, got := doJSON(t, srv, "POST", "/v1/responses", tc.body)
			if st != tc.status || !isFlatError(got) || !strings.Contains(got["error"].(string), tc.msgHas) {
				t.Fatalf("%d %v, want %d with %q", st, got, tc.status, tc.msgHas)
			}
		})
	}
	t.Run("too many tools", func(t *testing.T) {
		tools := make([]any, 129)
		for i := range tools {
			tools[i] = map[string]any{"type": "web_search"}
		}
		if st, got := doJSON(t, srv, "POST", "/v1/responses", respBody(t, "grok-4.3", "x", map[string]any{"tools": tools})); st != 400 || !isFlatError(got) {
			t.Fatalf("%d %v", st, got)
		}
	})
	t.Run("nulls are absent", func(t *testing.T) {
		r := createResponse(t, srv, `{"model":"grok-4.3","input":"x","stream":null,"store":null,"tools":null,"max_output_tokens":null,"instructions":null}`)
		if r.Status != "completed" || !r.Store {
			t.Fatalf("%+v", r)
		}
	})
}

func TestResponsesDirectives(t *testing.T) {
	t.Parallel()
	sim, srv := newServer(t, Options{})
	stream := map[string]any{"stream": true}

	t.Run("status", func(t *testing.T) {
		for _, extra := range []map[string]any{nil, stream} {
			resp := post(t, srv, "/v1/responses", respBody(t, "grok-4.3", `#sim{"status":429,"retry_after":3}`, extra))
			b := readBody(t, resp)
			if resp.StatusCode != 429 || resp.Header.Get("Retry-After") != "3" ||
				string(b) != `{"code":"Some resource has been exhausted","error":"Simulated upstream error (status 429)"}` {
				t.Fatalf("%d %s", resp.StatusCode, b)
			}
		}
	})

	t.Run("fail_times", func(t *testing.T) {
		body := respBody(t, "grok-4.3", `#sim{"status":503,"fail_times":1}`, nil)
		if resp := post(t, srv, "/v1/responses", body); resp.StatusCode != 503 {
			t.Fatalf("first try %d", resp.StatusCode)
		}
		createResponse(t, srv, body)
	})

	t.Run("json_error", func(t *testing.T) {
		resp := post(t, srv, "/v1/responses", respBody(t, "grok-4.3", `#sim{"json_error":true}`, stream))
		b := readBody(t, resp)
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" || !strings.Contains(string(b), "Timed out") {
			t.Fatalf("%d %s", resp.StatusCode, b)
		}
	})

	t.Run("error_after", func(t *testing.T) {
		evs := streamResponse(t, srv, respBody(t, "grok-4.3", `#sim{"error_after":2}`, stream))
		last := evs[len(evs)-1]
		if last.Type != "error" || last.raw != `{"type":"error","sequence_number":`+itoa(len(evs)-1)+
			`,"code":"Internal error","message":"Simulated error after 2 chunks","param":null}` {
			t.Fatalf("%s", last.raw)
		}
		if n := strings.Count(strings.Join(types(evs), " "), "output_text.delta"); n != 2 {
			t.Fatalf("%d deltas", n)
		}
		resp := post(t, srv, "/v1/responses", respBody(t, "grok-4.3", `#sim{"error_after":2}`, nil))
		b := readBody(t, resp)
		if resp.StatusCode != 500 || string(b) != `{"code":"Internal error","error":"Simulated error after 2 chunks"}` {
			t.Fatalf("%d %s", resp.StatusCode, b)
		}
	})

	t.Run("failed_after", func(t *testing.T) {
		evs := streamResponse(t, srv, respBody(t, "grok-4.3", `#sim{"failed_after":1}`, stream))
		last := evs[len(evs)-1]
		if last.Type != "response.failed" || last.Response.Status != "failed" || last.Response.Error == nil ||
			last.Response.Usage == nil || last.Response.Usage.OutputTokens != 1 {
			t.Fatalf("%s", last.raw)
		}
		r := createResponse(t, srv, respBody(t, "grok-4.3", `#sim{"failed_after":1}`, nil))
		if r.Status != "failed" || r.Error.Message != "Simulated failure after 1 chunks" {
			t.Fatalf("%+v", r)
		}
	})

	t.Run("cut_after", func(t *testing.T) {
		resp := post(t, srv, "/v1/responses", respBody(t, "grok-4.3", `#sim{"cut_after":2}`, stream))
		b, err := io.ReadAll(resp.Body)
		if !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("err = %v, want unexpected EOF", err)
		}
		evs := readEvents(t, b, false)
		if got := squash(types(evs)); got[len(got)-1] != "response.output_text.delta*" || strings.Count(string(b), "output_text.delta") != 2 {
			t.Fatalf("%v", got)
		}
	})

	t.Run("omit_usage", func(t *testing.T) {
		evs := streamResponse(t, srv, respBody(t, "grok-4.3", `#sim{"omit_usage":true}`, stream))
		if last := evs[len(evs)-1]; last.Type != "response.completed" || !strings.Contains(last.raw, `"usage":null`) {
			t.Fatalf("%s", last.raw)
		}
	})

	t.Run("cached_tokens and chunks", func(t *testing.T) {
		r := createResponse(t, srv, respBody(t, "grok-4.3", `abcd #sim{"cached_tokens":4,"chunks":3}`, nil))
		u := r.Usage
		if u.InputTokensDetails.CachedTokens != 4 || u.OutputTokens != 3 ||
			u.CostInUSDTicks != int64(u.InputTokens-4)*2000+4*500+3*5000 {
			t.Fatalf("%+v", u)
		}
	})

	t.Run("last user input", func(t *testing.T) {
		input := []any{map[string]any{"role": "user", "content": `#sim{"status":500}`},
			map[string]any{"role": "assistant", "content": "ok"},
			map[string]any{"role": "user", "content": `fine #sim{"chunks":1}`}}
		if r := createResponse(t, srv, respBody(t, "grok-4.3", input, nil)); r.Usage.OutputTokens != 1 {
			t.Fatalf("%+v", r.Usage)
		}
	})

	t.Run("timing", func(t *testing.T) {
		start := time.Now()
		streamResponse(t, srv, respBody(t, "grok-4.3", `#sim{"ttft_ms":80,"delay_ms":30,"chunks":3}`, stream))
		if el := time.Since(start); el < 80*time.Millisecond+2*30*time.Millisecond {
			t.Fatalf("stream took %v", el)
		}
		start = time.Now()
		createResponse(t, srv, respBody(t, "grok-4.3", `#sim{"ttft_ms":80,"delay_ms":30,"chunks":3}`, nil))
		if el := time.Since(start); el < 80*time.Millisecond+2*30*time.Millisecond {
			t.Fatalf("non-stream took %v", el)
		}
	})

	t.Run("hang", func(t *testing.T) {
		before := sim.Stats().StreamsCanceled
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, "POST", srv.URL+"/v1/responses",
			strings.NewReader(respBody(t, "grok-4.3", `#sim{"hang":true}`, stream)))
		req.Header.Set("Authorization", "Bearer k")
		if resp, err := srv.Client().Do(req); err == nil {
			resp.Body.Close()
			t.Fatalf("hang answered %d", resp.StatusCode)
		}
		waitStats(t, sim, func(s Stats) bool { return s.StreamsCanceled == before+1 })
	})
}

func itoa(i int) string { return strconv.Itoa(i) }

func TestModelByID(t *testing.T) {
	t.Parallel()
	_, srv := newServer(t, Options{})
	st, got := doJSON(t, srv, "GET", "/v1/models/grok-4-1-fast-reasoning", "")
	if st != 200 || len(got) != 4 || got["id"] != "grok-4.3" || got["object"] != "model" || got["owned_by"] != "xai" || got["created"] == nil {
		t.Fatalf("%d %v", st, got)
	}
	if st, got := doJSON(t, srv, "GET", "/v1/models/grok-9", ""); st != 404 || !isFlatError(got) {
		t.Fatalf("%d %v", st, got)
	}
}
