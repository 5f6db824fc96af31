package usage

import (
	"bytes"
	"encoding/json"
	"testing"
)

// parseCompletionByDecoder is ParseCompletion as it was before it decoded
// only the usage object: its shortcut ran a json.Decoder over the rest of
// the body and decoded id and model with json.Unmarshal. The new one must
// agree with it on every body.
func parseCompletionByDecoder(body []byte) (id, model string, u Usage, ok bool) {
	fast := func() (string, string, Usage, bool) {
		key := []byte(`"usage":`)
		i := bytes.LastIndex(body, key)
		if i < 0 {
			return "", "", Usage{}, false
		}
		j := skipSpace(body, i+len(key))
		if j >= len(body) || body[j] != '{' {
			return "", "", Usage{}, false
		}
		var w wireUsage
		if json.NewDecoder(bytes.NewReader(body[j:])).Decode(&w) != nil {
			return "", "", Usage{}, false
		}
		// Its id and model were read as firstString reads them.
		id, okID := firstString(body, `"id":`)
		model, okModel := firstString(body, `"model":`)
		if !okID || !okModel {
			return "", "", Usage{}, false
		}
		return id, model, w.usage(), true
	}
	if id, model, u, ok := fast(); ok {
		return id, model, u, true
	}
	var c struct {
		ID    string     `json:"id"`
		Model string     `json:"model"`
		Usage *wireUsage `json:"usage"`
	}
	if json.Unmarshal(body, &c) != nil {
		return "", "", u, false
	}
	if c.Usage != nil {
		u, ok = c.Usage.usage(), true
	}
	return c.ID, c.Model, u, ok
}

// completionBodies are answers shaped to trip the shortcut in
// ParseCompletion.
var completionBodies = []struct {
	body string
	// full: a full decode reads the same, so the shortcut is right and not
	// just consistent.
	full bool
}{
	{string(benchCompletion()), true},
	// nested details objects, with fields grokgate does not keep
	{`{"id":"c1","model":"grok-4.3","choices":[],"usage":{"prompt_tokens":10,"prompt_tokens_details":{"text_tokens":10,"audio_tokens":0,"image_tokens":0,"cached_tokens":4},"completion_tokens":2,"completion_tokens_details":{"reasoning_tokens":7,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0},"num_sources_used":0,"cost_in_usd_ticks":55}}`, true},
	{`{"id":"c1","model":"m","usage":{"prompt_tokens_details":{"cached_tokens":4,"extra":{"deeper":[1,{"x":[]}]}},"prompt_tokens":10}}`, true},
	// usage not last, or first
	{`{"id":"c1","model":"m","usage":{"prompt_tokens":3,"completion_tokens":4},"choices":[{"message":{"content":"after"}}],"system_fingerprint":"fp"}`, true},
	{`{"usage":{"prompt_tokens":3,"completion_tokens":4},"id":"c1","model":"m","choices":[]}`, true},
	// "usage": inside strings, escaped, with braces and quotes in them
	{`{"id":"c1","model":"m","choices":[{"message":{"content":"say \"usage\":{\"prompt_tokens\":99}} and \"id\":\"x\""}}],"usage":{"prompt_tokens":5}}`, true},
	{`{"id":"c1","model":"m","choices":[{"message":{"content":"{\"usage\": {}}"}}],"usage":{"prompt_tokens":5},"system_fingerprint":"fp \"usage\":{\"prompt_tokens\":1}"}`, true},
	{`{"id":"c1","model":"m","usage":{"note":"}{ \"} ][","prompt_tokens":5,"tag":"\\","completion_tokens":6}}`, true},
	// whitespace variants: the shortcut's byte patterns miss some of them
	// and the full decode reads those
	{"{\"id\":\"c1\",\"model\":\"m\",\"usage\": \n\t{ \"prompt_tokens\" : 5 ,\n \"completion_tokens_details\" : { \"reasoning_tokens\" : 2 } } }", true},
	{`{"id":"c1","model":"m","usage" : {"prompt_tokens":5}}`, true},
	{`{ "id" : "c1" , "model" : "m" , "usage":{"prompt_tokens":5} }`, true},
	{"{\"id\": \"c1\",\"model\":\t\"m\",\"usage\":{\"prompt_tokens\":5}}", true},
	// ids and models that are not plain ASCII
	{`{"id":"c\u0032","model":"gr\u00f6k","usage":{"prompt_tokens":1}}`, true},
	{`{"id":"c\"1\"","model":"m\\","usage":{"prompt_tokens":1}}`, true},
	{`{"id":"ç1","model":"m","usage":{"prompt_tokens":1}}`, true},
	{"{\"id\":\"bad \xff\",\"model\":\"m\",\"usage\":{\"prompt_tokens\":1}}", true},
	{"{\"id\":\"ctl\x01\",\"model\":\"m\",\"usage\":{\"prompt_tokens\":1}}", true},
	{`{"id":"","model":"","usage":{}}`, true},
	// id or model missing or not strings
	{`{"model":"m","usage":{"prompt_tokens":1}}`, true},
	{`{"id":7,"model":"m","usage":{"prompt_tokens":1}}`, true},
	{`{"model":"m","id":"late","choices":[{"message":{"tool_calls":[{"id":"call_1"}]}}],"usage":{"completion_tokens":3}}`, true},
	// usage absent, null, not an object, or of the wrong shape
	{`{"id":"c1","model":"m","choices":[]}`, true},
	{`{"id":"c1","model":"m","usage":null}`, true},
	{`{"id":"c1","model":"m","usage":[1]}`, true},
	{`{"id":"c1","model":"m","usage":{"prompt_tokens":"5"}}`, true},
	{`{"id":"c1","model":"m","usage":{"prompt_tokens":1.5}}`, true},
	// broken bodies
	{`{"id":"c1","model":"m","usage":{"prompt_tokens":5`, true},
	{`{"id":"c1","model":"m","usage":{"prompt_tokens":5,}}`, true},
	{`{"id":"c1","model":"m","usage":{"prompt_tokens":5}`, false}, // the shortcut never needed the closing brace
	{`{"id":"c1","model":"m","usage":{"s":"unterminated}}`, true},
	{`{"id":"c1","model":"m","usage":{"prompt_tokens":5}} trailing`, false},
	// a later nested "usage" key wins over the top-level one, as it always
	// has; xAI sends none
	{`{"id":"c1","model":"m","usage":{"prompt_tokens":5},"x":{"usage":{"prompt_tokens":6}}}`, false},
	{``, true},
	{`null`, true},
}

func TestParseCompletionMatchesDecoder(t *testing.T) {
	full := func(body []byte) (string, string, Usage, bool) {
		var c struct {
			ID    string     `json:"id"`
			Model string     `json:"model"`
			Usage *wireUsage `json:"usage"`
		}
		if json.Unmarshal(body, &c) != nil || c.Usage == nil {
			return "", "", Usage{}, false
		}
		return c.ID, c.Model, c.Usage.usage(), true
	}
	for _, c := range completionBodies {
		b := []byte(c.body)
		id, model, u, ok := ParseCompletion(b)
		oid, omodel, ou, ook := parseCompletionByDecoder(b)
		if id != oid || model != omodel || u != ou || ok != ook {
			t.Errorf("%s:\n got %q %q %+v %v\nwant %q %q %+v %v", b, id, model, u, ok, oid, omodel, ou, ook)
		}
		if !c.full {
			continue
		}
		if fid, fmodel, fu, fok := full(b); fok != ok || ok && (id != fid || model != fmodel || u != fu) {
			t.Errorf("%s:\n got %q %q %+v %v\nfull %q %q %+v %v", b, id, model, u, ok, fid, fmodel, fu, fok)
		}
	}
}

func FuzzParseCompletion(f *testing.F) {
	for _, c := range completionBodies {
		f.Add([]byte(c.body))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		id, model, u, ok := ParseCompletion(b)
		oid, omodel, ou, ook := parseCompletionByDecoder(b)
		if id != oid || model != omodel || u != ou || ok != ook {
			t.Fatalf("%q:\n got %q %q %+v %v\nwant %q %q %+v %v", b, id, model, u, ok, oid, omodel, ou, ook)
		}
	})
}

func TestLastIndex(t *testing.T) {
	for _, b := range []string{"", `"`, `"usage"`, `"usage":`, `x"usage":`, `"usage":"usage":`, `""usage":`, `"usage""usage":x`, `"usag"usage:`} {
		if got, want := lastIndex([]byte(b), `"usage":`), bytes.LastIndex([]byte(b), []byte(`"usage":`)); got != want {
			t.Errorf("%q: %d, want %d", b, got, want)
		}
	}
}
