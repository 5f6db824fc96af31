package usage

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// benchCompletion is a non-streaming answer shaped as xAI sends it (see
// simulator/chat.go): id and model first, a few KB of generated text with
// escapes, then usage with both details objects, then system_fingerprint.
func benchCompletion() []byte {
	content := strings.Repeat(`A gateway holds the upstream key and gives each team its own key.\nIt records usage per key, \"retries\" on 5xx, and relays answers unchanged. `, 12)
	reasoning := strings.Repeat(`The user asks what a gateway does; list the duties, keep it short.\n`, 10)
	return []byte(`{"id":"53ae1f0c-0c5c-4e57-9c8d-1b0f8d3e7a21","object":"chat.completion","created":1773345550,"model":"grok-4.3",` +
		`"choices":[{"index":0,"message":{"role":"assistant","content":"` + content + `","reasoning_content":"` + reasoning + `","refusal":null},"finish_reason":"stop"}],` +
		`"usage":{"prompt_tokens":812,"completion_tokens":431,"total_tokens":1410,"prompt_tokens_details":{"text_tokens":812,"audio_tokens":0,"image_tokens":0,"cached_tokens":640},` +
		`"completion_tokens_details":{"reasoning_tokens":167,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0},"num_sources_used":0,"cost_in_usd_ticks":2913000},` +
		`"system_fingerprint":"fp_3d7ed3b779"}`)
}

func BenchmarkParseCompletion(b *testing.B) {
	body := benchCompletion()
	want := Usage{Prompt: 812, Completion: 431, Reasoning: 167, Cached: 640, CostTicks: 2913000}
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		id, model, u, ok := ParseCompletion(body)
		if !ok || u != want || id == "" || model != "grok-4.3" {
			b.Fatalf("%q %q %+v %v", id, model, u, ok)
		}
	}
}

// benchPrompt is a multi-turn chat body of about 2 KB with escapes and one
// array content.
func benchPrompt() []byte {
	para := `Our service sends about 2,000 requests a minute to the model API.\nEach request carries the team's \"house style\" prompt and the user's question. `
	msgs := []string{
		`{"role":"system","content":"You are a concise assistant for an engineering team.\n- Answer in plain prose.\n- Keep every answer under one hundred words."}`,
		`{"role":"user","content":"` + strings.Repeat(para, 4) + `What should sit between the service and the API?"}`,
		`{"role":"assistant","content":"A gateway: it holds the upstream key, gives each team its own key with limits, and records usage per key."}`,
		`{"role":"user","content":[{"type":"text","text":"` + strings.Repeat(para, 2) + `"},{"type":"image_url","image_url":{"url":"https://example.com/diagram.png"}}]}`,
		`{"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"lookup","arguments":"{\"topic\":\"tokens\"}"}}]}`,
		`{"role":"tool","tool_call_id":"call_1","content":"About four bytes a token, plus a few tokens per message."}`,
	}
	return []byte(`{"model":"grok-4.3","max_tokens":600,"messages":[` + strings.Join(msgs, ",") + `]}`)
}

func BenchmarkEstimatePromptTokens(b *testing.B) {
	body := benchPrompt()
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if EstimatePromptTokens(body) == 0 {
			b.Fatal("no estimate")
		}
	}
}

// BenchmarkForceIncludeUsage is the rewrite every metered stream's body gets
// before it goes upstream, on a multi-turn conversation: the scan of a body
// without stream_options (ForceIncludeUsage) against what the gateway calls
// on a validated one (ForceIncludeUsageValid), in the same run.
func BenchmarkForceIncludeUsage(b *testing.B) {
	body := benchPrompt()
	for _, f := range []struct {
		name string
		fn   func([]byte) ([]byte, error)
	}{{"scan", ForceIncludeUsage}, {"valid", ForceIncludeUsageValid}} {
		b.Run(f.name, func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := f.fn(body); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkMeterStream meters one whole stream as the simulator sends it
// (20 text deltas, testdata/*-stream.jsonl): the work the relay does per
// stream besides moving bytes. Reported per stream.
func BenchmarkMeterStream(b *testing.B) {
	load := func(name string) [][]byte {
		data, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			b.Fatal(err)
		}
		return bytes.Split(bytes.TrimSpace(data), []byte("\n"))
	}
	chat, responses := load("chat-stream.jsonl"), load("responses-stream.jsonl")
	b.Run("chat", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var m StreamMeter
			for _, ev := range chat {
				m.Observe(ev)
			}
			if !m.HaveUsage {
				b.Fatal("no usage")
			}
		}
	})
	b.Run("responses", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			m := NewResponsesMeter()
			for _, ev := range responses {
				m.Observe(ev)
			}
			if !m.HaveUsage {
				b.Fatal("no usage")
			}
		}
	})
}
