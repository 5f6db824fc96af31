package usage

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
)

func TestForceIncludeUsage(t *testing.T) {
	cases := []struct{ in, want string }{
		{`{"model":"m","stream":true,"messages":[]}`,
			`{"stream_options":{"include_usage":true},"model":"m","stream":true,"messages":[]}`},
		{"  {\n  \"model\": \"m\", \"x\": 1e3}",
			"  {\"stream_options\":{\"include_usage\":true},\n  \"model\": \"m\", \"x\": 1e3}"},
		{`{"model":"m","stream_options":null,"z":{"k":[1,2]}}`,
			`{"model":"m","stream_options":{"include_usage":true},"z":{"k":[1,2]}}`},
		{`{"model":"m","stream_options":{},"z":1}`,
			`{"model":"m","stream_options":{"include_usage":true},"z":1}`},
		{`{"model":"m","stream_options": { } }`,
			`{"model":"m","stream_options": {"include_usage":true } }`},
		{`{"model":"m","stream_options":{"include_usage":false,"future":"x"}}`,
			`{"model":"m","stream_options":{"include_usage":true,"future":"x"}}`},
		{`{"model":"m","stream_options":{"future":{"include_usage":false}},"include_usage":false}`,
			`{"model":"m","stream_options":{"include_usage":true,"future":{"include_usage":false}},"include_usage":false}`},
		{`{"model":"m","stream_options":{"include_usage" : null}}`,
			`{"model":"m","stream_options":{"include_usage" : true}}`},
		{`{"model":"m","messages":[{"role":"user","content":"\"stream_options\":{}"}]}`,
			`{"stream_options":{"include_usage":true},"model":"m","messages":[{"role":"user","content":"\"stream_options\":{}"}]}`},
	}
	for _, c := range cases {
		got, err := ForceIncludeUsage([]byte(c.in))
		if err != nil {
			t.Errorf("%s: %v", c.in, err)
			continue
		}
		if string(got) != c.want {
			t.Errorf("%s:\n got %s\nwant %s", c.in, got, c.want)
		}
		var v struct {
			StreamOptions struct {
				IncludeUsage bool `json:"include_usage"`
			} `json:"stream_options"`
		}
		if err := json.Unmarshal(got, &v); err != nil || !v.StreamOptions.IncludeUsage {
			t.Errorf("%s: result %s does not ask for usage (%v)", c.in, got, err)
		}
	}
}

// TestForceIncludeUsageKeepsEverythingElse decodes before and after: apart
// from stream_options, the documents are equal.
func TestForceIncludeUsageKeepsEverythingElse(t *testing.T) {
	in := `{"model":"grok-4.3","messages":[{"role":"user","content":[{"type":"text","text":"hi"}]}],"stream":true,` +
		`"unknown_field":{"nested":[1,"two",null,true]},"temperature":0.70,"stream_options":{"include_usage":false,"other":7}}`
	out, err := ForceIncludeUsage([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	var a, b map[string]any
	json.Unmarshal([]byte(in), &a)
	if err := json.Unmarshal(out, &b); err != nil {
		t.Fatalf("result is not JSON: %v", err)
	}
	a["stream_options"].(map[string]any)["include_usage"] = true
	if !reflect.DeepEqual(a, b) {
		t.Errorf("documents differ:\n in %v\nout %v", a, b)
	}
}

func TestForceIncludeUsageRejectsNonObjects(t *testing.T) {
	for _, in := range []string{``, `[]`, `{"model":`, `"x"`} {
		if _, err := ForceIncludeUsage([]byte(in)); err == nil {
			t.Errorf("%q: no error", in)
		}
	}
}

func FuzzForceIncludeUsage(f *testing.F) {
	f.Add(`{"model":"m","stream_options":{"include_usage":false}}`)
	f.Add(`{"model":"m"}`)
	f.Add(`{"model":"m","stream_options":null}`)
	f.Fuzz(func(t *testing.T, in string) {
		var orig map[string]any
		if json.Unmarshal([]byte(in), &orig) != nil || orig["model"] == nil {
			return
		}
		if so, ok := orig["stream_options"]; ok && so != nil {
			if _, isObj := so.(map[string]any); !isObj {
				return // parseChat rejects these before the rewrite
			}
		}
		out, err := ForceIncludeUsage([]byte(in))
		if err != nil {
			t.Fatalf("%q: %v", in, err)
		}
		if valid, err := ForceIncludeUsageValid([]byte(in)); err != nil || !bytes.Equal(valid, out) {
			t.Fatalf("%q: ForceIncludeUsageValid gave %q, %v; ForceIncludeUsage %q", in, valid, err, out)
		}
		var got map[string]any
		if err := json.Unmarshal(out, &got); err != nil {
			t.Fatalf("%q -> %q: not JSON: %v", in, out, err)
		}
		so, _ := got["stream_options"].(map[string]any)
		if so == nil || so["include_usage"] != true {
			t.Fatalf("%q -> %q: include_usage not true", in, out)
		}
		delete(got, "stream_options")
		delete(orig, "stream_options")
		if !reflect.DeepEqual(got, orig) {
			t.Fatalf("%q -> %q: other members changed", in, out)
		}
	})
}
