package simulator

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

const weatherTools = `[{"type":"function","function":{"name":"get_time","parameters":{"type":"object"}}},` +
	`{"type":"function","function":{"name":"get_weather","parameters":{"type":"object","properties":{"city":{"type":"string"}}}}}]`

// toolChatBody is a chat request offering weatherTools; extra is spliced
// into the top-level object, messages is the array.
func toolChatBody(messages, extra string) string {
	return `{"model":"grok-4.3","tools":` + weatherTools + `,"messages":` + messages + extra + `}`
}

const askWeather = `[{"role":"user","content":"Weather? #sim{\"tool_call\":\"get_weather\",\"arguments\":{\"city\": \"Paris\"}}"}]`

type wireToolCall struct {
	Index    *int   `json:"index"`
	ID       string `json:"id"`
	Type     string `json:"type"`
	Function struct {
		Name      *string `json:"name"`
		Arguments *string `json:"arguments"`
	} `json:"function"`
}

type toolChunk struct {
	Choices []struct {
		Delta struct {
			Role      string         `json:"role"`
			Content   *string        `json:"content"`
			ToolCalls []wireToolCall `json:"tool_calls"`
		} `json:"delta"`
		FinishReason *string `json:"finish_reason"`
	} `json:"choices"`
}

func TestToolCallNonStreaming(t *testing.T) {
	t.Parallel()
	_, srv := newServer(t, Options{})
	body := toolChatBody(askWeather, "")
	resp := post(t, srv, "/v1/chat/completions", body)
	raw := readBody(t, resp)
	var c struct {
		Choices []struct {
			Message struct {
				Role      string         `json:"role"`
				Content   string         `json:"content"`
				ToolCalls []wireToolCall `json:"tool_calls"`
			} `json:"message"`
			FinishReason string `json:"finish_reason"`
		} `json:"choices"`
		Usage Usage `json:"usage"`
	}
	if err := json.Unmarshal(raw, &c); err != nil || resp.StatusCode != 200 {
		t.Fatalf("%d %v: %s", resp.StatusCode, err, raw)
	}
	m := c.Choices[0].Message
	if c.Choices[0].FinishReason != "tool_calls" || m.Content != "" || len(m.ToolCalls) != 1 {
		t.Fatalf("not a tool call answer: %s", raw)
	}
	call := m.ToolCalls[0]
	if call.Index != nil || !strings.HasPrefix(call.ID, "call_") || call.Type != "function" ||
		*call.Function.Name != "get_weather" || *call.Function.Arguments != `{"city":"Paris"}` {
		t.Fatalf("tool call: %s", raw)
	}
	want, err := ExpectedUsage([]byte(body))
	if err != nil || c.Usage != want || c.Usage.CompletionTokens != (len("get_weather")+len(`{"city":"Paris"}`)+3)/4 {
		t.Fatalf("usage %+v, want %+v (%v)", c.Usage, want, err)
	}
}

// TestToolCallStreaming: the whole call in one chunk (xAI's way), or the
// name first and the arguments in deltas; then finish_reason tool_calls.
func TestToolCallStreaming(t *testing.T) {
	t.Parallel()
	_, srv := newServer(t, Options{})
	for _, deltas := range []int{0, 1, 3} {
		messages := askWeather
		if deltas > 0 {
			messages = strings.Replace(askWeather, `\"tool_call\"`, `\"tool_call_deltas\":`+string(rune('0'+deltas))+`,\"tool_call\"`, 1)
		}
		resp := post(t, srv, "/v1/chat/completions", toolChatBody(messages, `,"stream":true`))
		events := splitEvents(t, readBody(t, resp))
		if events[len(events)-1] != "[DONE]" {
			t.Fatalf("deltas %d: no [DONE]: %v", deltas, events)
		}
		var chunks []toolChunk
		for _, ev := range events[:len(events)-1] {
			var c toolChunk
			if err := json.Unmarshal([]byte(ev), &c); err != nil || len(c.Choices) != 1 {
				t.Fatalf("deltas %d: chunk %s", deltas, ev)
			}
			chunks = append(chunks, c)
		}
		callChunks, fin := chunks[:len(chunks)-1], chunks[len(chunks)-1].Choices[0]
		if fin.FinishReason == nil || *fin.FinishReason != "tool_calls" || len(fin.Delta.ToolCalls) != 0 {
			t.Fatalf("deltas %d: finish chunk %v", deltas, events[len(events)-2])
		}
		wantChunks := 1
		if deltas > 0 {
			wantChunks = 1 + deltas
		}
		if len(callChunks) != wantChunks {
			t.Fatalf("deltas %d: %d call chunks: %v", deltas, len(callChunks), events)
		}
		var args strings.Builder
		for i, c := range callChunks {
			d := c.Choices[0].Delta
			if (i == 0) != (d.Role == "assistant") || d.Content != nil || len(d.ToolCalls) != 1 || *d.ToolCalls[0].Index != 0 {
				t.Fatalf("deltas %d: chunk %d: %s", deltas, i, events[i])
			}
			tc := d.ToolCalls[0]
			if i == 0 {
				if !strings.HasPrefix(tc.ID, "call_") || tc.Type != "function" || *tc.Function.Name != "get_weather" {
					t.Fatalf("deltas %d: first call chunk %s", deltas, events[0])
				}
			} else if tc.ID != "" || tc.Function.Name != nil {
				t.Fatalf("deltas %d: argument chunk repeats the call's id or name: %s", deltas, events[i])
			}
			if deltas > 0 && i == 0 && *tc.Function.Arguments != "" {
				t.Fatalf("deltas %d: the name chunk carries arguments: %s", deltas, events[0])
			}
			args.WriteString(*tc.Function.Arguments)
		}
		if args.String() != `{"city":"Paris"}` {
			t.Fatalf("deltas %d: arguments %q", deltas, args.String())
		}
	}
}

// TestToolCallWhen: which requests get a call, which get text, which an
// error.
func TestToolCallWhen(t *testing.T) {
	t.Parallel()
	_, srv := newServer(t, Options{})
	plain := `[{"role":"user","content":"What now?"}]`
	followUp := `[{"role":"user","content":"Weather? #sim{\"tool_call\":\"get_weather\"}"},` +
		`{"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{}"}}]},` +
		`{"role":"tool","tool_call_id":"call_1","content":"sunny, 21 C"}]`
	for _, c := range []struct {
		name, body string
		call       string // "" expects text
		status     int
	}{
		{"directive", toolChatBody(askWeather, ""), "get_weather", 200},
		{"required takes the first tool", toolChatBody(plain, `,"tool_choice":"required"`), "get_time", 200},
		{"a named function", toolChatBody(plain, `,"tool_choice":{"type":"function","function":{"name":"get_weather"}}`), "get_weather", 200},
		{"auto without a directive", toolChatBody(plain, `,"tool_choice":"auto"`), "", 200},
		{"none beats the directive", toolChatBody(askWeather, `,"tool_choice":"none"`), "", 200},
		{"the tool result is answered with text", toolChatBody(followUp, `,"tool_choice":"required"`), "", 200},
		{"no tools offered", `{"model":"grok-4.3","messages":` + askWeather + `}`, "", 200},
		{"a tool not offered", toolChatBody(strings.Replace(askWeather, "get_weather", "get_news", 1), ""), "", 400},
		{"a bad tool_choice", toolChatBody(plain, `,"tool_choice":"always"`), "", 400},
		{"arguments not an object", toolChatBody(strings.Replace(askWeather, `{\"city\": \"Paris\"}`, `[1]`, 1), ""), "", 400},
	} {
		resp := post(t, srv, "/v1/chat/completions", c.body)
		raw := readBody(t, resp)
		if resp.StatusCode != c.status {
			t.Fatalf("%s: status %d: %s", c.name, resp.StatusCode, raw)
		}
		if c.status != http.StatusOK {
			continue
		}
		var got struct {
			Choices []struct {
				Message struct {
					Content   string         `json:"content"`
					ToolCalls []wireToolCall `json:"tool_calls"`
				} `json:"message"`
				FinishReason string `json:"finish_reason"`
			} `json:"choices"`
		}
		json.Unmarshal(raw, &got)
		ch := got.Choices[0]
		if c.call == "" {
			if ch.FinishReason != "stop" || ch.Message.Content == "" || strings.Contains(string(raw), "tool_calls") {
				t.Fatalf("%s: want text: %s", c.name, raw)
			}
			continue
		}
		if ch.FinishReason != "tool_calls" || len(ch.Message.ToolCalls) != 1 || *ch.Message.ToolCalls[0].Function.Name != c.call {
			t.Fatalf("%s: want a call of %s: %s", c.name, c.call, raw)
		}
	}
}
