package usage

import (
	"encoding/json"
	"strings"
	"testing"
)

var usageObjects = []struct {
	obj string
	ok  bool // readUsage reads it itself (else encoding/json decides)
}{
	{`{"prompt_tokens":165,"completion_tokens":2,"total_tokens":296,"prompt_tokens_details":{"text_tokens":165,"audio_tokens":0,"image_tokens":0,"cached_tokens":164},"completion_tokens_details":{"reasoning_tokens":129,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0},"num_sources_used":0,"cost_in_usd_ticks":739000}`, true},
	{` { "prompt_tokens" : 1 ,
	  "completion_tokens":2 } `, true},
	{`{}`, true},
	{`{"prompt_tokens":1,"prompt_tokens":7}`, true}, // the last wins, as in encoding/json
	{`{"prompt_tokens":-3}`, true},
	{`{"x":{"y":{"z":1}},"prompt_tokens":4}`, true},
	{`{"prompt_tokens":null}`, false},
	{`{"prompt_tokens":1.5}`, false},
	{`{"prompt_tokens":1e3}`, false},
	{`{"prompt_tokens":"5"}`, false},
	{`{"prompt_tokens":01}`, false},
	{`{"Prompt_Tokens":5}`, false}, // encoding/json matches it by case folding
	{`{"prompt_tokens_details":{"Cached_Tokens":5}}`, false},
	{`{"pr\u006fmpt_tokens":5}`, false},
	{`{"prompt_tokens":9223372036854775807}`, false}, // 19 digits: left to encoding/json
	{`{"names":["a"]}`, false},
	{`{"prompt_tokens":1,}`, false},
	{`{"prompt_tokens":1} x`, false},
	{`{"prompt_tokens":1`, false},
	{`[1]`, false},
}

func TestReadUsageAgreesWithEncodingJSON(t *testing.T) {
	for _, c := range usageObjects {
		got, ok := readUsage([]byte(c.obj))
		if ok != c.ok {
			t.Errorf("%s: read itself %v, want %v", c.obj, ok, c.ok)
			continue
		}
		if !ok {
			continue
		}
		var want wireUsage
		if err := json.Unmarshal([]byte(c.obj), &want); err != nil {
			t.Errorf("%s: read, but encoding/json refuses it: %v", c.obj, err)
		} else if got != want {
			t.Errorf("%s: %+v, encoding/json %+v", c.obj, got, want)
		}
	}
}

// Whatever readUsage reads itself, encoding/json reads the same way.
func FuzzReadUsage(f *testing.F) {
	for _, c := range usageObjects {
		f.Add([]byte(c.obj))
	}
	f.Fuzz(func(t *testing.T, obj []byte) {
		got, ok := readUsage(obj)
		if !ok {
			return
		}
		var want wireUsage
		if err := json.Unmarshal(obj, &want); err != nil {
			t.Fatalf("%q: read as %+v, but encoding/json refuses it: %v", obj, got, err)
		}
		if got != want {
			t.Fatalf("%q: %+v, encoding/json %+v", obj, got, want)
		}
	})
}

func TestReadUsageLeavesDeepNestingToEncodingJSON(t *testing.T) {
	obj := `{"x":` + strings.Repeat(`{"y":`, 20) + `1` + strings.Repeat(`}`, 20) + `,"prompt_tokens":3}`
	if _, ok := readUsage([]byte(obj)); ok {
		t.Error("read 20 levels of nesting itself")
	}
	if _, _, u, ok := ParseCompletion([]byte(`{"id":"a","model":"m","usage":` + obj + `}`)); !ok || u.Prompt != 3 {
		t.Errorf("ParseCompletion: %+v %v, want prompt 3 from encoding/json", u, ok)
	}
}
