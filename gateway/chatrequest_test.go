package gateway

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/grokgate/grokgate/usage"
)

var parseCases = []struct {
	body  string
	ok    bool
	param string
}{
	{`{"model":"grok-4.3","messages":[{"role":"user","content":"hi"}]}`, true, ""},
	{`{"model":"grok-4.3","messages":[{"role":"assistant","content":null,"tool_calls":[]}],"extra":{"x":1}}`, true, ""},
	{`{"model":"grok-4.3","messages":[{"role":"user","content":[{"type":"text","text":"a"},{"type":"image_url","image_url":{"url":"https://x/y.png"}}]}],"stream":true}`, true, ""},
	{`{"model":"grok-4.3","messages":[{"role":"user","content":"hi"}],"stream_options":{"include_usage":true},"stream":true}`, true, ""},
	{`{"model":"grok-4.3","messages":[{"role":"user","content":[{"text":"a"}]}]}`, false, "messages[0].content[0].type"},
	{`{"model":"grok-4.3","messages":[{"role":"user","content":5}]}`, false, "messages[0].content"},
	{`{"model":"grok-4.3","messages":[1]}`, false, "messages[0]"},
	// Names are matched exactly and given once, at any depth: decoders
	// disagree on "MODEL" and on which of two names wins, and xAI must
	// read the body as it was checked.
	{`{"model":"grok-4.3","messages":[{"role":"user","content":"x"}],"model":"grok-3"}`, false, "model"},
	// A name that differs only in case from one grokgate reads is refused,
	// named: a case-insensitive decoder upstream would take it for the other.
	{`{"model":"grok-4.3","MODEL":"grok-3","messages":[{"role":"user","content":"x"}]}`, false, "MODEL"},
	{`{"Model":"grok-4.3","messages":[{"role":"user","content":"x"}]}`, false, "Model"},
	{`{"model":"grok-4.3","Stream":true,"messages":[{"role":"user","content":"x"}]}`, false, "Stream"},
	{`{"model":"grok-4.3","messages":[{"Role":"system","role":"user","content":"x"}]}`, false, "messages[0].Role"},
	{`{"model":"grok-4.3","stream":true,"stream_options":{"Include_Usage":false},"messages":[{"role":"user","content":"x"}]}`, false, "stream_options.Include_Usage"},
	// A client's own data is not judged: a tool schema's "Model" property.
	{`{"model":"grok-4.3","tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object","properties":{"Model":{"type":"string"}}}}}],"messages":[{"role":"user","content":"x"}]}`, true, ""},
	{`{"model":"m","messages":[{"role":"user","content":"first","content":"second, longer"}]}`, false, "messages[0].content"},
	{`{"model":"m","messages":[{"role":"user","content":[{"type":null,"type":"text","text":"abcde"}]}]}`, false, "messages[0].content[0].type"},
	{`{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":1,"text":"abcdefgh"}]}]}`, false, "messages[0].content[0].text"},
	{`{"model":"m","messages":[{"role":"user","content":[{"TYPE":"text","text":"abcd"}]}]}`, false, "messages[0].content[0].TYPE"},
	{`{"model":"grok-4.3","messages":[{"role":"user","content":"x"}],"n":0}`, false, "n"},
	{`{"model":"grok-4.3","messages":[{"role":"user","content":"x"}],"temperature":3}`, false, "temperature"},
	{`{"model":"grok-4.3","messages":[{"role":"user","content":"x"}],"top_p":-1}`, false, "top_p"},
	{`{"model":"grok-4.3","messages":[{"role":"user","content":"x"}],"max_completion_tokens":1.5}`, false, "max_completion_tokens"},
	{`{"model":"grok-4.3","messages":[{"role":"user","content":"x"}],"stream_options":{"include_usage":"yes"}}`, false, "stream_options.include_usage"},
	{`{"model":"","messages":[{"role":"user","content":"x"}]}`, false, "model"},
	{`null`, false, ""},
	{`{"model":"grok-4.3","messages":[{"role":"user","content":"x"}]} trailing`, false, ""},
}

func TestParseChat(t *testing.T) {
	for _, c := range parseCases {
		p, e := parseChat([]byte(c.body))
		if (e == nil) != c.ok {
			t.Errorf("%s: ok=%v, error %v", c.body, e == nil, e)
			continue
		}
		if e != nil {
			if e.Status != 400 || e.Message == "" || e.Param != c.param {
				t.Errorf("%s: status %d param %q (want %q) message %q", c.body, e.Status, e.Param, c.param, e.Message)
			}
		}
		_ = p
	}
	p, _ := parseChat([]byte(parseCases[2].body))
	if !p.hasImage || !p.stream || p.model != "grok-4.3" {
		t.Errorf("image request parsed as %+v", p)
	}
	p, _ = parseChat([]byte(parseCases[3].body))
	if !p.includeUsage {
		t.Errorf("include_usage not seen: %+v", p)
	}
}

// FuzzParseChat: any body either parses into a usable request or yields a
// 400 with a message; never a panic.
func FuzzParseChat(f *testing.F) {
	for _, c := range parseCases {
		f.Add([]byte(c.body))
	}
	for _, b := range estimateBodies {
		f.Add([]byte(b))
	}
	f.Add([]byte(`{"model":"grok-4.3","messages":[{"role":"user","Content":"x"}],"STREAM":true}`))
	f.Add([]byte(`{"model":"grok-4.3","messages":[{"role":"user","content":"\\\"MODEL\":"}],"mod\u0065l":"x"}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		noVariantSkipped(t, body, reflect.TypeFor[*chatRequest]())
		p, e := parseChat(body)
		if e != nil {
			if e.Status != 400 || e.Message == "" {
				t.Fatalf("bad error %+v", e)
			}
			return
		}
		if p.model == "" || !json.Valid(body) {
			t.Fatalf("accepted %q as %+v", body, p)
		}
		if want := usage.EstimatePromptTokens(body); p.promptTokens != want {
			t.Fatalf("%q: prompt estimate %d, want %d", body, p.promptTokens, want)
		}
	})
}

// TestParseChatPromptTokens: the estimate parseChat adds up while validating
// is the one usage.EstimatePromptTokens makes of the same body.
func TestParseChatPromptTokens(t *testing.T) {
	for _, b := range append(estimateBodies, string(benchConversation())) {
		p, e := parseChat([]byte(b))
		if e != nil {
			t.Errorf("%s: %s", b, e.Message)
			continue
		}
		if want := usage.EstimatePromptTokens([]byte(b)); p.promptTokens != want || want == 0 {
			t.Errorf("%s: prompt estimate %d, want %d", b, p.promptTokens, want)
		}
	}
}

// estimateBodies are valid chat bodies whose prompt estimate is easy to get
// wrong: escapes, surrogates, arrays of parts, null and absent content,
// parts whose "text" is not a string, names in other cases, whitespace.
var estimateBodies = []string{
	`{"model":"m","messages":[{"role":"user","content":[{"type":"Text","text":"not text"},{"type":"text","text":"abcd"}]}]}`,
	`{"model":"m","messages":[{"role":"user","content":"hi"}]}`,
	`{"model":"m","messages":[{"role":"user","content":""},{"role":"user","content":"12345"},{"role":"user","content":"1234"}]}`,
	`{"model":"m","messages":[{"role":"user","content":"line\nline\ttab \"quoted\" back\\slash \/ \b\f\r"}]}`,
	`{"model":"m","messages":[{"role":"user","content":"\u0000\u0041\u00e9\u20AC\uFFFD \ud83d\ude00 \ud800 \udc00 \ud800\u0041 \udbff\udfff\ud800"}]}`,
	`{"model":"m","messages":[{"role":"user","content":"héllo ✓ 😀 \\"}]}`,
	" { \"model\" : \"m\" , \"messages\" : [ { \"role\" : \"user\" , \"content\" : \n [ {\"type\" : \"text\", \"text\" :\r\n \"abcde\" } ]  } ] } ",
	` {"model":"m","messages":[{"role":"system","content":  "a b c d e"  }]}`,
	`{"model":"m","messages":[{"role":"assistant","content":null,"tool_calls":[{"id":"c"}]},{"role":"assistant"},{"role":"user","content":"x"}]}`,
	`{"model":"m","messages":[{"role":"user","content":[]}]}`,
	`{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"abcdefgh"},{"type":"image_url","image_url":{"url":"https://x/y.png"}}]}]}`,
	`{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":"b"},{"type":"text","text":"c\n\u00e9"}]}]}`,
	`{"model":"m","messages":[{"role":"user","content":[{"type":"text"},{"type":"text","text":null},{"type":"image_url","text":"not counted"},{"type":"input_audio","text":"nor this"}]}]}`,
	`{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"abc"},{"type":"image_url","image_url":{}},{"type":"text","text":5}]},{"role":"user","content":"next"}]}`,
	`{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":{"a":"b"}}]},{"role":"user","content":[{"type":"image_url","text":true}]}]}`,
}

// TestParseChatFieldMessages pins the exact param and message of the errors
// that name a message or a content part by index.
func TestParseChatFieldMessages(t *testing.T) {
	for _, c := range []struct{ body, param, msg string }{
		{`{"model":"m","messages":[{"role":"user","content":"x"},{"content":"x"}]}`, "messages[1].role", "Missing required parameter: 'messages[1].role'."},
		{`{"model":"m","messages":[{"role":"user","content":"x"},{"role":"robot","content":"x"}]}`, "messages[1].role", "Invalid value for 'messages[1].role': \"robot\"; expected one of system, developer, user, assistant, tool."},
		{`{"model":"m","messages":[{"role":"user","content":"x"},{"role":"user","content":"x"},{"role":"user"}]}`, "messages[2].content", "Missing required parameter: 'messages[2].content' (a string or an array of content parts)."},
		{`{"model":"m","messages":[{"role":"user","content":null}]}`, "messages[0].content", "Missing required parameter: 'messages[0].content' (a string or an array of content parts)."},
		{`{"model":"m","messages":[{"role":"user","content":true}]}`, "messages[0].content", "Invalid type for 'messages[0].content': expected a string or an array of content parts."},
		{`{"model":"m","messages":[{"role":"user","content":{"type":"text"}}]}`, "messages[0].content", "Invalid type for 'messages[0].content': expected a string or an array of content parts."},
		{`{"model":"m","messages":[{"role":"user","content":"x"},{"role":"user","content":[{"type":"text","text":"a"},"x"]}]}`, "messages[1].content[1]", "Invalid 'messages[1].content[1]': each content part must be an object with a string \"type\"."},
		{`{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"a"},{"text":"b"}]}]}`, "messages[0].content[1].type", "Missing required parameter: 'messages[0].content[1].type'."},
		{`{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"a"},{"type":null}]}]}`, "messages[0].content[1].type", "Missing required parameter: 'messages[0].content[1].type'."},
		{`{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"a"},{"type":7}]}]}`, "messages[0].content[1]", "Invalid 'messages[0].content[1]': each content part must be an object with a string \"type\"."},
		{`{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"a"},null]}]}`, "messages[0].content[1].type", "Missing required parameter: 'messages[0].content[1].type'."},
	} {
		_, e := parseChat([]byte(c.body))
		if e == nil {
			t.Errorf("%s: accepted", c.body)
			continue
		}
		if e.Param != c.param || e.Message != c.msg {
			t.Errorf("%s:\n got %q %q\nwant %q %q", c.body, e.Param, e.Message, c.param, c.msg)
		}
	}
}
