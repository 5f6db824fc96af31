package gateway

import (
	"encoding/json"
	"reflect"
	"testing"
)

// TestEditObject: members keep their bytes and order whatever they hold,
// named ones go, and added ones replace a member of the same name.
func TestEditObject(t *testing.T) {
	for _, c := range []struct {
		name, in string
		drop     []string
		add      []field
		want     string
	}{
		{"drop and add", `{"model":"m","stream":true,"stream_options":{"include_usage":true},"n":1}`,
			[]string{"stream_options"}, []field{{"stream", []byte("false")}}, `{"model":"m","n":1,"stream":false}`},
		{"bytes kept as sent", "{ \"a\" : [1, {\"}\":\"]\"}] ,\n\"b\":\"x\\\"}\" , \"c\":null }", nil, nil,
			"{\"a\" : [1, {\"}\":\"]\"}],\"b\":\"x\\\"}\",\"c\":null}"},
		{"escaped name", `{"str\u0065am":true,"x":1}`, []string{"stream"}, nil, `{"x":1}`},
		{"empty", `{}`, nil, []field{{"size", []byte(`"1024x1024"`)}}, `{"size":"1024x1024"}`},
		{"numbers and literals", `{"t":-1.5e3,"u":false,"v":true}`, []string{"u"}, nil, `{"t":-1.5e3,"v":true}`},
	} {
		got, err := editObject([]byte(c.in), c.drop, c.add...)
		if err != nil || string(got) != c.want {
			t.Errorf("%s: editObject = %s, %v; want %s", c.name, got, err, c.want)
			continue
		}
		var a, b any
		if json.Unmarshal(got, &a) != nil || json.Unmarshal([]byte(c.want), &b) != nil || !reflect.DeepEqual(a, b) {
			t.Errorf("%s: result is not the JSON wanted: %s", c.name, got)
		}
	}
	for _, bad := range []string{``, `[]`, `"s"`, `{"a":1`, `{"a"}`, `{"a":1,}`} {
		if got, err := editObject([]byte(bad), nil); err == nil {
			t.Errorf("editObject(%q) = %s, want an error", bad, got)
		}
	}
}
