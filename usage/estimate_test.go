package usage

import (
	"bytes"
	"testing"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
)

// estimateByDecoding is EstimatePromptTokens as it was before it shared its
// arithmetic with the chat validator: it decodes every string (with the
// same decoder and options). The new one must agree with it on every body.
func estimateByDecoding(body []byte) int64 {
	var req struct {
		Messages []struct {
			Content jsontext.Value `json:"content"`
		} `json:"messages"`
	}
	if json.Unmarshal(body, &req, lenient()...) != nil {
		return 0
	}
	var n int64
	for _, m := range req.Messages {
		n += messageOverheadTokens
		c := bytes.TrimSpace(m.Content)
		if len(c) == 0 {
			continue
		}
		switch c[0] {
		case '"':
			var s string
			if json.Unmarshal(c, &s, lenient()...) == nil {
				n += TokensForBytes(int64(len(s)))
			}
		case '[':
			var parts []struct {
				Type string `json:"type"`
				Text string `json:"text"`
			}
			if json.Unmarshal(c, &parts, lenient()...) != nil {
				continue
			}
			for _, p := range parts {
				switch p.Type {
				case "text":
					n += TokensForBytes(int64(len(p.Text)))
				case "image_url":
					n += imagePartTokens
				}
			}
		}
	}
	return n
}

// estimateBodies are chat bodies whose estimate is easy to get wrong.
var estimateBodies = []string{
	`{"model":"m","messages":[{"role":"user","content":"hi"}]}`,
	`{"model":"m","messages":[{"role":"user","content":""}]}`,
	`{"model":"m","messages":[{"role":"user","content":"12345"},{"role":"user","content":"1234"}]}`,
	// escapes: one byte each, \u by its UTF-8 length, pairs 4, lone
	// surrogates U+FFFD (3)
	`{"model":"m","messages":[{"role":"user","content":"line\nline\ttab \"quoted\" back\\slash \/ \b\f\r"}]}`,
	`{"model":"m","messages":[{"role":"user","content":"\u0000\u0041\u00e9\u20AC\uFFFD"}]}`,
	`{"model":"m","messages":[{"role":"user","content":"\ud83d\ude00 pair, \ud800 lone high, \udc00 lone low"}]}`,
	`{"model":"m","messages":[{"role":"user","content":"\ud800\u0041 \ud800\ud800\udc00 \udbff\udfff\ud800"}]}`,
	`{"model":"m","messages":[{"role":"user","content":"héllo ✓ 😀 \\"}]}`,
	// whitespace around values and keys
	` { "model" : "m" , "messages" : [ { "role" : "user" , "content" :  "a b c d e"  } ] } `,
	"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\n\t[ {\"type\" : \"text\", \"text\" :\r\n \"abcde\" } ] }]}",
	// null and absent content
	`{"model":"m","messages":[{"role":"assistant","content":null,"tool_calls":[{"id":"c"}]},{"role":"assistant"}]}`,
	// arrays of parts
	`{"model":"m","messages":[{"role":"user","content":[]}]}`,
	`{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"abcdefgh"},{"type":"image_url","image_url":{"url":"https://x/y.png"}}]}]}`,
	`{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":"b"},{"type":"text","text":"c\n\u00e9"}]}]}`,
	`{"model":"m","messages":[{"role":"user","content":[{"type":"text"},{"type":"text","text":null},{"type":"image_url","text":"not counted"},{"type":"input_audio","text":"nor this"}]}]}`,
	`{"model":"m","messages":[{"role":"user","content":[{"type":"Text","TEXT":"case-insensitive key, exact type"},{"TYPE":"text","Text":"abcd"}]}]}`,
	// a text that is not a string: the old decoder refused the array, so
	// the message counted no parts
	`{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"abc"},{"type":"image_url","image_url":{}},{"type":"text","text":5}]},{"role":"user","content":"next"}]}`,
	`{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":{"a":"b"}}]}]}`,
	`{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":["x"]}]}]}`,
	`{"model":"m","messages":[{"role":"user","content":[{"type":"image_url","text":true}]}]}`,
	// duplicated keys: the last string wins, a non-string anywhere voids
	`{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":1,"text":"abcdefgh"}]}]}`,
	`{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"abcdefgh","text":null}]}]}`,
	`{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"abcdefgh","text":"ab"}]}]}`,
	`{"model":"m","messages":[{"role":"user","content":"first","content":"second, longer"}]}`,
	`{"model":"m","messages":[{"role":"user","content":[{"type":null,"type":"text","text":"abcde"}]}]}`,
	// bodies the validator refuses, which the estimate still reads
	`{"messages":[{"content":5},{"content":{"text":"x"}},{"content":true}]}`,
	`{"messages":[{"content":[null,{"type":"text","text":"abcde"}]}]}`,
	`{"messages":[{"content":["x",{"type":"text","text":"abcde"}]}]}`,
	`{"messages":[{"content":[{"type":7,"text":"abcde"}]}]}`,
	"{\"messages\":[{\"content\":\"bad \xff utf-8 \xc3\"}]}",
	"{\"messages\":[{\"content\":[{\"type\":\"text\",\"text\":\"\xe2\x82 cut\"}]}]}",
	`{"messages":[]}`,
	`{"messages":null}`,
	`{"messages":[null]}`,
	`{"messages":"x"}`,
	`not json`,
	``,
}

func TestEstimateMatchesDecoding(t *testing.T) {
	for _, b := range estimateBodies {
		if got, want := EstimatePromptTokens([]byte(b)), estimateByDecoding([]byte(b)); got != want {
			t.Errorf("%s: %d, want %d", b, got, want)
		}
	}
}

func FuzzEstimatePromptTokens(f *testing.F) {
	for _, b := range estimateBodies {
		f.Add([]byte(b))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		if got, want := EstimatePromptTokens(body), estimateByDecoding(body); got != want {
			t.Fatalf("%q: %d, want %d", body, got, want)
		}
	})
}

// FuzzStringLen: the counted length of any JSON string is the length
// encoding/json decodes it to.
func FuzzStringLen(f *testing.F) {
	for _, s := range []string{`""`, `"plain"`, `"a\nb"`, `"\u00e9\ud83d\ude00"`, `"\ud800"`, `"\ud800\u0041"`, `"\udbff\udfff"`, "\"\xff\xfe\"", `"\\\""`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, s []byte) {
		var v string
		if len(s) == 0 || s[0] != '"' || json.Unmarshal(s, &v) != nil || len(bytes.TrimSpace(s)) != len(s) {
			return // not one JSON string literal
		}
		if got := stringLen(s); got != int64(len(v)) {
			t.Fatalf("%q: %d, decodes to %d bytes", s, got, len(v))
		}
	})
}
