package mediatype

import (
	"mime"
	"testing"
)

func TestOf(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"application/json", "application/json"},
		{"text/event-stream", "text/event-stream"},
		{"application/vnd.api+json", "application/vnd.api+json"},
		{"Application/JSON", "application/json"},
		{"application/json; charset=utf-8", "application/json"},
		{" application/json", "application/json"},
		{"", ""},
		{"application", "application"}, // as mime.ParseMediaType, which also reads Content-Disposition
		{"application/", ""},
		{"/json", ""},
		{"a/b/c", ""},
		{"application/json;", "application/json"},
		{"application/json; charset", ""},
		{"text/plain\x00", ""},
		{"téxt/plain", ""},
	} {
		if got := Of(tc.in); got != tc.want {
			t.Errorf("Of(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestOfAllocs(t *testing.T) {
	if n := testing.AllocsPerRun(100, func() { _ = Of("application/json") }); n != 0 {
		t.Errorf("Of(plain type) allocates %v times, want 0", n)
	}
}

// FuzzOf checks the fast path against mime.ParseMediaType, which it stands in for.
func FuzzOf(f *testing.F) {
	for _, s := range []string{"application/json", "text/event-stream", "a/b", "A/b", "a/b; c=d", "a//b", "*/*", "a/b\t"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		want, _, err := mime.ParseMediaType(v)
		if err != nil {
			want = ""
		}
		if got := Of(v); got != want {
			t.Fatalf("Of(%q) = %q, mime.ParseMediaType says %q (err %v)", v, got, want, err)
		}
	})
}
